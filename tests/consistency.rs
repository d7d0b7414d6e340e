//! The consistency guarantees, against a real etcd with writers racing the daemon: every
//! render of a pass sees one revision, even when the read needs several transactions, and the
//! watch never publishes a transaction half applied.

mod util;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use util::{run, Etcd, Tree};

/// How many keys the consistent-read test watches: each is two range reads (the key and its
/// children), so 100 keys are 200 ranges, more than one transaction of etcd's 128 operations.
const KEYS: usize = 100;

fn key(i: usize) -> String {
    format!("/c/k{i:03}")
}

/// `once` reads 100 watched keys (200 ranges: two transactions, the second pinned to the
/// first's revision) while a writer keeps replacing all of them in single transactions, each
/// writing one round number to every key. A render of one revision shows one number 100
/// times; a read whose second transaction saw a later revision would show two. Three
/// resources watch the same keys: one pass, one revision, so their files are equal too.
/// `once` runs again and again until writes have landed during several passes.
#[test]
fn every_render_of_a_pass_sees_one_revision_across_split_reads() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let keys_toml = keys
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    t.template(
        "c.tera",
        "{% for v in getvs(pattern=\"/c/*\") %}{{ v }} {% endfor %}\n",
    );
    for name in ["c1", "c2", "c3"] {
        t.resource(
            name,
            &format!(
                "[template]\nsrc = \"c.tera\"\ndest = \"@OUT@/{name}.conf\"\nkeys = [{keys_toml}]\n"
            ),
        );
    }
    let round = |r: usize| -> Vec<(String, String)> {
        keys.iter().map(|k| (k.clone(), r.to_string())).collect()
    };
    let put_round = |r: usize| {
        let kvs = round(r);
        let kvs: Vec<(&str, &str)> = kvs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        etcd.put_all(&kvs);
    };
    put_round(0);

    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut r = 0;
            while !stop.load(Ordering::Relaxed) {
                r += 1;
                put_round(r);
                rounds.store(r, Ordering::Relaxed);
            }
        });
        let mut raced = 0;
        for pass in 0..40 {
            let before = rounds.load(Ordering::Relaxed);
            let o = run(t.reconfd(Some(&etcd), &["once"]));
            let after = rounds.load(Ordering::Relaxed);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "pass {pass}: {stderr}");
            let files: Vec<String> = ["c1", "c2", "c3"]
                .iter()
                .map(|n| t.read(&format!("{n}.conf")))
                .collect();
            for f in &files {
                let values: Vec<&str> = f.split_whitespace().collect();
                assert_eq!(values.len(), KEYS, "pass {pass}: {f}");
                assert!(
                    values.iter().all(|v| *v == values[0]),
                    "pass {pass}: a render mixed revisions: {f}\n{stderr}"
                );
            }
            assert!(
                files.iter().all(|f| *f == files[0]),
                "pass {pass}: resources of one pass rendered different revisions: {files:?}"
            );
            if after > before + 1 {
                raced += 1;
                if raced >= 10 {
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            raced >= 5,
            "the writer raced only {raced} passes: the test proved little"
        );
    });
}

/// The daemon follows a pair of watched keys that a writer always changes together, in one
/// transaction, 200 times as fast as it can. check_cmd records every file the daemon staged:
/// each shows both keys at the same round; a snapshot published between the two events of
/// one revision would stage a file with the two values apart.
#[test]
fn the_watch_never_publishes_a_transaction_half_applied() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let staged = t.root.path().join("staged");
    t.template(
        "p.tera",
        "a={{ getv(key=\"/pair/a\") }} b={{ getv(key=\"/pair/b\") }}\n",
    );
    t.resource(
        "p",
        &format!(
            "[template]\nsrc = \"p.tera\"\ndest = \"@OUT@/p.conf\"\nkeys = [\"/pair/a\", \"/pair/b\"]\ndebounce = \"0\"\nreload_limit = \"none\"\ncheck_cmd = \"cat {{{{.src}}}} >> {}\"\n",
            staged.display()
        ),
    );
    etcd.put_all(&[("/pair/a", "0"), ("/pair/b", "0")]);
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    const TXNS: usize = 200;
    for i in 1..=TXNS {
        let v = i.to_string();
        etcd.put_all(&[("/pair/a", &v), ("/pair/b", &v)]);
    }
    let last = format!("a={TXNS} b={TXNS}\n");
    util::wait_for(Duration::from_secs(30), "the last transaction", || {
        (std::fs::read_to_string(t.out().join("p.conf")).ok()? == last).then_some(())
    });
    let records = std::fs::read_to_string(&staged).unwrap();
    let mut renders = 0;
    for line in records.lines() {
        let (a, b) = line
            .strip_prefix("a=")
            .and_then(|l| l.split_once(" b="))
            .unwrap_or_else(|| panic!("bad record {line:?}"));
        assert_eq!(a, b, "a transaction was rendered half applied: {line:?}");
        renders += 1;
    }
    assert!(renders >= 2, "only {renders} renders: {records}");
}
