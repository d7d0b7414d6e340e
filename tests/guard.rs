//! The guard against destructive renders, end to end with a real etcd on loopback: a deleted
//! prefix and a revoked lease are held (the live file stays, nothing reloads, one warning
//! names the counts), keys coming back install normally, `min_keys` holds `reconfd once`
//! (exit 1) and `once --force` installs anyway.
//!
//! The approval goes through the real control socket: `reconfd status` shows the resource
//! `held` (exit 1), `reconfd approve NAME` installs the held render once. The one-shot path's
//! `--force` is tested too.

mod util;

use std::time::Duration;

use util::{run, Etcd, Tree};

const UPSTREAM: &str = "upstream web {\n{% for s in getvs(pattern=\"/services/web/*\") %}    server {{ s }};\n{% endfor %}}\n";

/// Long enough for any single event on a loaded machine; never reached when things work.
const EVENT: Duration = Duration::from_secs(20);

/// The warning a held render logs.
const HELD: &str = "render held, the live file stays as it is";

/// `conf.d/web.toml` rendering the upstream into `out/web.conf`, reloads logged to
/// `out/../reloads`, plus `extra` fields.
fn web_resource(t: &Tree, extra: &str) {
    t.template("web.tera", UPSTREAM);
    let reloads = t.root.path().join("reloads");
    t.resource(
        "web",
        &format!(
            "[template]\nsrc = \"web.tera\"\ndest = \"@OUT@/web.conf\"\nkeys = [\"/services/web\"]\ndebounce = \"0\"\nreload_cmd = \"echo run >> {}\"\n{extra}",
            reloads.display()
        ),
    );
}

fn reloads(t: &Tree) -> usize {
    std::fs::read_to_string(t.root.path().join("reloads")).map_or(0, |s| s.lines().count())
}

/// Waits until `n` reloads ran: the reload comes right after the rename that makes the new
/// content visible, so a test that saw the content must wait for it rather than race it.
fn wait_reloads(t: &Tree, n: usize) {
    util::wait_for(EVENT, "the reload after the install", || {
        (reloads(t) == n).then_some(())
    });
}

fn upstream(servers: &[&str]) -> String {
    let mut s = String::from("upstream web {\n");
    for srv in servers {
        s.push_str(&format!("    server {srv};\n"));
    }
    s.push_str("}\n");
    s
}

/// `reconfd ARGS…` as a client of the daemon of `t` (its control socket, as `Tree::reconfd`
/// sets it for `run`).
fn client(t: &Tree, args: &[&str]) -> std::process::Command {
    let mut c = util::reconfd();
    c.args(args)
        .env("RECONFD_CONTROL_SOCKET", t.root.path().join("control.sock"));
    c
}

/// Deleting the whole prefix (the operator's mistake) is held by the default guard: the live
/// file and the service stay, one warning names the counts; once the keys are back the
/// render installs and reloads normally.
#[test]
fn deleting_the_prefix_holds_the_file_until_the_keys_come_back() {
    let etcd = Etcd::start();
    let t = Tree::new();
    web_resource(&t, "");
    let four = [
        ("/services/web/a", "10.0.0.1:80"),
        ("/services/web/b", "10.0.0.2:80"),
        ("/services/web/c", "10.0.0.3:80"),
        ("/services/web/d", "10.0.0.4:80"),
    ];
    etcd.put_all(&four);
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let dest = t.out().join("web.conf");
    let all = upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]);
    d.wait_content(EVENT, &dest, &all);
    assert_eq!(reloads(&t), 1);

    etcd.etcdctl(&["del", "--prefix", "/services/web/"]);
    d.wait_log(EVENT, HELD, 1);
    let log = d.log();
    let line = log.lines().find(|l| l.contains(HELD)).unwrap();
    assert!(
        line.contains("dropped from 4 at the last install to 0")
            && line.contains("max_shrink = \"99%\"")
            && line.contains("reconfd approve web")
            && line.contains("web.toml"),
        "{line}"
    );
    assert_eq!(t.read("web.conf"), all);
    assert_eq!(reloads(&t), 1);

    etcd.put_all(&four[..3]);
    d.wait_content(
        EVENT,
        &dest,
        &upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]),
    );
    assert_eq!(d.log_count(HELD), 1, "{}", d.log());
    assert_eq!(d.log_count("no longer held"), 1, "{}", d.log());
    wait_reloads(&t, 2);
    assert_eq!(t.out_files(), vec!["web.conf"]);
}

/// Revoking the one lease every backend's key hangs on deletes them all in one revision:
/// held with `max_shrink = "50%"`, as the example nginx resource sets it. A change that
/// leaves the keys outside the guard is evaluated again (and still held) without a second
/// warning; one that brings them within it installs.
#[test]
fn a_revoked_lease_is_held() {
    let etcd = Etcd::start();
    let t = Tree::new();
    web_resource(&t, "max_shrink = \"50%\"\n");
    let granted = etcd.etcdctl(&["lease", "grant", "300"]);
    // "lease 694d8a2c4e3b0b0a granted with TTL(300s)"
    let lease = granted.split_whitespace().nth(1).unwrap().to_owned();
    for (k, v) in [
        ("a", "10.0.0.1:80"),
        ("b", "10.0.0.2:80"),
        ("c", "10.0.0.3:80"),
    ] {
        etcd.etcdctl(&[
            "put",
            &format!("--lease={lease}"),
            &format!("/services/web/{k}"),
            v,
        ]);
    }
    etcd.put("/services/web/static", "10.0.0.9:80");
    let d = t.daemon(&etcd, &["--log-level", "debug"]);
    d.wait_ready();
    let before = upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.9:80"]);
    d.wait_content(EVENT, &t.out().join("web.conf"), &before);

    etcd.etcdctl(&["lease", "revoke", &lease]);
    d.wait_log(EVENT, HELD, 1);
    assert!(
        d.log()
            .contains("dropped from 4 at the last install to 1, more than max_shrink = \"50%\""),
        "{}",
        d.log()
    );
    assert_eq!(t.read("web.conf"), before);
    assert_eq!(reloads(&t), 1);

    etcd.put("/services/web/static", "10.0.0.8:80");
    d.wait_log(EVENT, "held by the guard", 2);
    assert_eq!(d.log_count(HELD), 1, "{}", d.log());
    assert_eq!(t.read("web.conf"), before);
    etcd.put("/services/web/d", "10.0.0.4:80");
    d.wait_content(
        EVENT,
        &t.out().join("web.conf"),
        &upstream(&["10.0.0.4:80", "10.0.0.8:80"]),
    );
    wait_reloads(&t, 2);
}

/// `min_keys` on the one-shot path: too few keys is a held resource, exit 1, the file is not
/// written and the error names the counts; `--force` installs it; enough keys install
/// without it.
#[test]
fn min_keys_holds_once_and_force_installs() {
    let etcd = Etcd::start();
    let t = Tree::new();
    web_resource(&t, "min_keys = 3\n");
    etcd.put_all(&[
        ("/services/web/a", "10.0.0.1:80"),
        ("/services/web/b", "10.0.0.2:80"),
    ]);
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("its watched keys hold 2 keys, fewer than min_keys = 3")
            && err.contains("reconfd once --force"),
        "{err}"
    );
    assert!(t.out_files().is_empty());

    let o = run(t.reconfd(Some(&etcd), &["once", "--force"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        t.read("web.conf"),
        upstream(&["10.0.0.1:80", "10.0.0.2:80"])
    );

    etcd.put("/services/web/c", "10.0.0.3:80");
    let o = run(t.reconfd(Some(&etcd), &["once"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        t.read("web.conf"),
        upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
    );
    assert_eq!(reloads(&t), 2);
}

/// The operator accepts a held render on purpose, without editing the config or restarting:
/// `reconfd status` shows it held, `reconfd approve web` installs it (and reloads) once, and
/// the resource is in sync again.
#[test]
fn an_approval_through_the_control_socket_installs_the_held_render() {
    let etcd = Etcd::start();
    let t = Tree::new();
    web_resource(&t, "");
    etcd.put_all(&[
        ("/services/web/a", "10.0.0.1:80"),
        ("/services/web/b", "10.0.0.2:80"),
    ]);
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let dest = t.out().join("web.conf");
    d.wait_content(EVENT, &dest, &upstream(&["10.0.0.1:80", "10.0.0.2:80"]));

    etcd.etcdctl(&["del", "--prefix", "/services/web/"]);
    d.wait_log(EVENT, HELD, 1);
    let status = run(client(&t, &["status"]));
    let table = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(1), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.contains("held")),
        "{table}"
    );
    assert_eq!(reloads(&t), 1);

    let approve = run(client(&t, &["approve", "web"]));
    assert_eq!(
        String::from_utf8_lossy(&approve.stdout),
        "web: accepted\n",
        "{}",
        d.log()
    );
    assert_eq!(approve.status.code(), Some(0));
    d.wait_content(EVENT, &dest, &upstream(&[]));
    wait_reloads(&t, 2);
    let status = util::wait_for(EVENT, "status in sync after the approval", || {
        let o = run(client(&t, &["status"]));
        (o.status.code() == Some(0)).then_some(o)
    });
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("in_sync"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    // Nothing is held any more.
    let again = run(client(&t, &["approve", "web"]));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "web: not_held\n");
}
