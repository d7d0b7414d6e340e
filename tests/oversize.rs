//! A value larger than gRPC's 4 MiB default under a watched prefix (etcd accepts it with a
//! raised `--max-request-bytes`): with the default `[etcd] max_message_size` (64 MiB) it
//! renders like any other; with a limit below it, the watch falls back to a full read, that
//! read fails too and is retried with a growing backoff (a bounded number of log lines), and
//! deleting the key returns everything to normal.
//!
//! Every wait is bounded (`wait_content`); the one plain sleep proves, for a stated time, how
//! few lines the daemon logs while it cannot follow etcd.

mod util;

use std::time::Duration;

use util::{Daemon, Etcd, Tree};

const EVENT: Duration = Duration::from_secs(30);
const BIG: usize = 5_000_000;

/// Two resources: `big` lists the keys under /big with their values' length, `small` the
/// keys under /small with their values.
fn resources(t: &Tree) {
    t.template(
        "big.tera",
        "{% for kv in gets(pattern=\"/big/*\") %}{{ kv.key }} {{ kv.value | length }}\n{% endfor %}",
    );
    t.template(
        "small.tera",
        "{% for kv in gets(pattern=\"/small/*\") %}{{ kv.key }}={{ kv.value }}\n{% endfor %}",
    );
    for name in ["big", "small"] {
        t.resource(
            name,
            &format!("[template]\nsrc = \"{name}.tera\"\ndest = \"@OUT@/{name}.conf\"\nkeys = [\"/{name}\"]\ndebounce = \"0\"\nmax_shrink = \"none\"\n"),
        );
    }
}

/// The resources turn the guard off (`max_shrink = "none"`): deleting the big key empties the
/// file, which the default guard would hold (tests/guard.rs tests that).
fn start() -> (Etcd, Tree) {
    let etcd = Etcd::start_with(&["--max-request-bytes", "10000000"]);
    let t = Tree::new();
    resources(&t);
    etcd.put("/small/a", "1");
    (etcd, t)
}

/// WARN and ERROR lines in the daemon's log.
fn complaints(d: &Daemon) -> usize {
    d.log()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count()
}

#[test]
fn a_5_mb_value_renders_and_every_other_resource_keeps_following() {
    let (etcd, t) = start();
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    etcd.put("/big/v", &"x".repeat(BIG));
    d.wait_content(EVENT, &t.out().join("big.conf"), &format!("/big/v {BIG}\n"));
    etcd.put("/small/b", "2");
    d.wait_content(
        EVENT,
        &t.out().join("small.conf"),
        "/small/a=1\n/small/b=2\n",
    );
    etcd.delete("/big/v");
    d.wait_content(EVENT, &t.out().join("big.conf"), "");
    etcd.put("/small/c", "3");
    d.wait_content(
        EVENT,
        &t.out().join("small.conf"),
        "/small/a=1\n/small/b=2\n/small/c=3\n",
    );
    assert_eq!(complaints(&d), 0, "daemon log:\n{}", d.log());
}

#[test]
fn a_value_over_max_message_size_is_retried_with_backoff_and_its_deletion_heals() {
    let (etcd, t) = start();
    let config = t.out().join("reconfd.toml");
    // The smallest limit allowed, below the value.
    std::fs::write(&config, "[etcd]\nmax_message_size = 2097152\n").unwrap();
    let config = config.display().to_string();
    let d = t.daemon(&etcd, &["--config", &config]);
    d.wait_ready();
    etcd.put("/big/v", &"x".repeat(3_000_000));
    // The watch cannot deliver it; the full read instead cannot either.
    d.wait_log(EVENT, "larger than [etcd] max_message_size", 1);
    d.wait_log(EVENT, "no etcd endpoint can be followed", 1);
    // Retried with a growing backoff: a few lines in 6 s, not hundreds.
    std::thread::sleep(Duration::from_secs(6));
    let lines = complaints(&d);
    assert!(lines <= 12, "{lines} warnings and errors:\n{}", d.log());
    assert!(
        d.log().contains("raise [etcd] max_message_size"),
        "the failed read says what to do: {}",
        d.log()
    );
    assert!(
        d.log()
            .contains("larger than [etcd] max_message_size (2097152 bytes)"),
        "the error says which limit: {}",
        d.log()
    );
    // Deleting the key heals everything, the other resource included.
    etcd.delete("/big/v");
    etcd.put("/small/b", "2");
    d.wait_content(
        EVENT,
        &t.out().join("small.conf"),
        "/small/a=1\n/small/b=2\n",
    );
    d.wait_log(EVENT, "etcd reachable again", 1);
}
