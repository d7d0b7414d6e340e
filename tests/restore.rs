//! etcd restored from an older snapshot, or re-created empty, behind the same endpoints while
//! `reconfd run` follows it: the daemon notices (its applied revision is above etcd's), warns
//! once naming both revisions, reads everything again and renders what etcd now holds — never a
//! mix of the old and the new cluster. And a value larger than gRPC's 4 MiB default under a
//! watched prefix: it renders, the other resources keep following, the log stays short.
//!
//! Every wait is bounded (`wait_content`, `Daemon::wait_log`).

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::{Etcd, Tree};

/// Long enough for a reconnect after the backoff of a short outage on a loaded machine.
const EVENT: Duration = Duration::from_secs(30);

/// What the daemon warns when etcd went back in time.
const RESTORED: &str = "etcd was restored from an older snapshot or re-created";

/// Every key under /app as `key=value` lines.
const LIST: &str =
    "{% for kv in gets(pattern=\"/app/*\") %}{{ kv.key }}={{ kv.value }}\n{% endfor %}";

fn app_resource(t: &Tree) {
    t.template("app.tera", LIST);
    t.resource(
        "app",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/app\"]\ndebounce = \"0\"\n",
    );
}

fn lines(kvs: &[(&str, &str)]) -> String {
    kvs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// The daemon follows etcd up to a revision R; etcd is then replaced by `replace` (which gets
/// the snapshot taken at R0 < R) and loaded with `after`; the file must end up holding exactly
/// `want`, with one warning naming R.
fn survives(replace: impl FnOnce(&mut Etcd, &Path), after: &[(&str, &str)], want: &str) {
    if !util::prerequisite(util::have_program("etcdctl"), "etcdctl is not installed") {
        return;
    }
    let mut etcd = Etcd::start();
    let t = Tree::new();
    app_resource(&t);
    etcd.put_all(&[("/app/a", "1"), ("/app/b", "1")]);
    let snapshot = t.out().join("r0.db");
    etcd.snapshot_save(&snapshot);
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    // Well past R0: keys added, changed and deleted after the snapshot.
    for i in 0..30 {
        etcd.put("/app/b", &i.to_string());
    }
    etcd.put("/app/late", "x");
    etcd.delete("/app/a");
    let rev = etcd.revision();
    let file = t.out().join("app.conf");
    d.wait_content(
        EVENT,
        &file,
        &lines(&[("/app/b", "29"), ("/app/late", "x")]),
    );

    replace(&mut etcd, &snapshot);
    let back = Instant::now();
    assert!(
        etcd.revision() < rev,
        "etcd must be behind the daemon for this test"
    );
    etcd.put_all(after);
    d.wait_content(EVENT, &file, want);
    eprintln!(
        "etcd back at revision {} (daemon had {rev}): file right {:?} later",
        etcd.revision(),
        back.elapsed()
    );
    d.wait_log(EVENT, RESTORED, 1);
    let log = d.log();
    let warning = log.lines().find(|l| l.contains(RESTORED)).unwrap();
    assert!(
        warning.contains(&format!("revision {rev}")),
        "the warning names the revision applied before: {warning}"
    );
    // A later put is seen, on top of what etcd holds now.
    etcd.put("/app/next", "1");
    let mut want: Vec<&str> = want.lines().chain(["/app/next=1"]).collect();
    want.sort();
    d.wait_content(EVENT, &file, &(want.join("\n") + "\n"));
    assert_eq!(d.log_count(RESTORED), 1, "one warning:\n{log}");
    // The keys the restore changed are named (values never are).
    let reread = log
        .lines()
        .find(|l| l.contains("after the restore; keys that differ"))
        .unwrap_or_else(|| panic!("no list of changed keys:\n{log}"));
    assert!(reread.contains("/app/late"), "{reread}");
    assert!(!reread.contains("=x"), "{reread}");
}

#[test]
fn a_restore_from_an_older_snapshot_is_read_again_not_mixed() {
    survives(
        |etcd, snapshot| etcd.replace_data(Some(snapshot)),
        &[("/app/c", "restored")],
        &lines(&[("/app/a", "1"), ("/app/b", "1"), ("/app/c", "restored")]),
    );
}

#[test]
fn a_new_empty_cluster_on_the_same_address_is_read_again() {
    survives(
        |etcd, _| etcd.replace_data(None),
        &[("/app/other", "1"), ("/app/z", "2")],
        &lines(&[("/app/other", "1"), ("/app/z", "2")]),
    );
}
