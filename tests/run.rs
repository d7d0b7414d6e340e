//! `reconfd run` against a real etcd on loopback: the daemon's promises end to end (watch,
//! batching, reload limit, leases, etcd restarts and compaction, retries, SIGHUP, SIGTERM,
//! polling).
//!
//! Every wait on an event is bounded (`wait_content`, `wait_until`, `Daemon::wait_log`); the
//! few plain sleeps either pace writes or prove, for a stated time, that something did *not*
//! happen. Assertions are about the order of events (what was installed and reloaded, in what
//! sequence) and lower bounds that load only makes easier; how fast things happen is measured
//! by `cargo bench --bench daemon`, and the batcher's exact timing by batch.rs's tests.

mod util;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use util::{Daemon, Etcd, Tree, READY};

const UPSTREAM: &str = "upstream apache_pool {\n{% for s in getvs(pattern=\"/services/apache/*\") %}    server {{ s }};\n{% endfor %}}\n";

/// Long enough for any single event on a loaded machine; never reached when things work.
const EVENT: Duration = Duration::from_secs(20);

/// `conf.d/nginx.toml` rendering `UPSTREAM` into `out/app.conf`, plus `extra` fields.
fn nginx_resource(t: &Tree, extra: &str) {
    t.template("nginx.tera", UPSTREAM);
    t.resource(
        "nginx",
        &format!("[template]\nsrc = \"nginx.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\n{extra}"),
    );
}

fn upstream(servers: &[&str]) -> String {
    let mut s = String::from("upstream apache_pool {\n");
    for srv in servers {
        s.push_str(&format!("    server {srv};\n"));
    }
    s.push_str("}\n");
    s
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Waits until `path` holds exactly `want`; the daemon log and the last content seen are in
/// the panic message.
fn wait_content(d: &Daemon, path: &Path, want: &str) {
    let deadline = Instant::now() + EVENT;
    loop {
        let got = read(path);
        if got.as_deref() == Some(want) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {} to hold {want:?}; it holds {got:?}\ndaemon log:\n{}",
                path.display(),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `f` holds; the daemon log is in the panic message.
fn wait_until(d: &Daemon, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENT;
    while !f() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; daemon log:\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the daemon logs for each install (not to be confused with "was installed, but
/// reload_cmd … failed").
const INSTALLED: &str = "}: installed ";

/// Seconds since the epoch, as `date +%s.%N` prints them.
fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The lines of a file a reload_cmd appends to (empty if it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    read(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Times recorded by a reload_cmd of the form `date +%s.%N >> FILE` (first field of each line).
fn times(path: &Path) -> Vec<f64> {
    lines(path)
        .iter()
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("bad reload record {l:?}"))
        })
        .collect()
}

/// Staged files (`.NAME.reconfd-*`) in `dir`.
fn staged_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".reconfd-"))
        .collect()
}

/// Case 1: A change reaches the destination; "ready" is logged only after the first reconcile,
/// and the daemon follows etcd with a watch.
#[test]
fn change_reaches_destination_after_ready() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "debounce = \"100ms\"\n");
    etcd.put("/services/apache/10.0.0.6", "10.0.0.6:8888");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    // READY comes after the first reconcile: the file is already there when it is logged.
    assert_eq!(
        read(&t.out().join("app.conf")).as_deref(),
        Some(upstream(&["10.0.0.6:8888"]).as_str()),
        "destination not rendered when ready was logged; daemon log:\n{}",
        d.log()
    );
    // The watch starts right after the first read, so it may trail READY by a moment.
    wait_until(&d, "the daemon's one watch on etcd", || {
        etcd.metric("etcd_debugging_mvcc_watcher_total") == 1.0
    });
    etcd.put("/services/apache/10.0.0.7", "10.0.0.7:7777");
    wait_content(
        &d,
        &t.out().join("app.conf"),
        &upstream(&["10.0.0.6:8888", "10.0.0.7:7777"]),
    );
    etcd.delete("/services/apache/10.0.0.6");
    wait_content(&d, &t.out().join("app.conf"), &upstream(&["10.0.0.7:7777"]));
    assert_eq!(t.out_files(), vec!["app.conf"], "{}", d.log());
}

/// Case 2: 100 writes inside the debounce → exactly one render, install and reload after the
/// burst.
#[test]
fn burst_inside_debounce_gives_one_install_and_one_reload() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let reloads = t.root.path().join("reloads");
    nginx_resource(
        &t,
        &format!(
            "debounce = \"2s\"\nmax_wait = \"20s\"\nreload_limit = \"none\"\nreload_cmd = \"date +%s.%N >> {}\"\n",
            reloads.display()
        ),
    );
    for k in 0..10 {
        etcd.put(&format!("/services/apache/{k}"), "init:80");
    }
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    assert_eq!(lines(&reloads).len(), 1, "initial reconcile: {}", d.log());
    assert_eq!(d.log_count(INSTALLED), 1, "{}", d.log());

    // 100 writes, to 10 keys, each well inside the 2 s quiet period of the previous one.
    let mut last_write = 0.0;
    for i in 0..100 {
        etcd.put(
            &format!("/services/apache/{}", i % 10),
            &format!("10.0.0.{}:{i}", i % 10),
        );
        last_write = now_epoch();
    }
    let want: Vec<String> = (90..100)
        .map(|i| format!("10.0.0.{}:{i}", i % 10))
        .collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_content(&d, &t.out().join("app.conf"), &upstream(&want));
    wait_until(&d, "the reload after the burst", || {
        lines(&reloads).len() >= 2
    });
    // Stated bounded wait: nothing else may follow within another debounce period.
    std::thread::sleep(Duration::from_secs(2));
    let log = d.log();
    let recorded = times(&reloads);
    assert_eq!(recorded.len(), 2, "one reload after the burst; log:\n{log}");
    assert_eq!(
        d.log_count(INSTALLED),
        2,
        "one install after the burst; log:\n{log}"
    );
    assert_eq!(
        d.log_count("in sync"),
        0,
        "no render besides the initial one and the one after the burst; log:\n{log}"
    );
    // The quiet period runs from the last write: the reload comes after it has passed (a
    // lower bound, which load only makes easier; 0.1 s for the watch event possibly arriving
    // before the put's HTTP answer did). How soon after is a figure for the benchmark.
    let after = recorded[1] - last_write;
    assert!(
        after >= 1.9,
        "reload {after:.3} s after the last write, inside the 2 s debounce; log:\n{log}"
    );
    assert_eq!(staged_files(&t.out()), Vec::<String>::new());
}

/// With `leading = true` the first change after a quiet period is installed while the burst it
/// starts is still going; a trailing-only batcher (debounce 3 s, max_wait 60 s) would install
/// nothing until the burst stops. The burst's end still gives one more install.
#[test]
fn leading_installs_the_first_change_of_a_burst_at_once() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(
        &t,
        "debounce = \"3s\"\nmax_wait = \"60s\"\nleading = true\nreload_limit = \"none\"\n",
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    // Stated wait, not a synchronisation: leading needs one debounce of quiet after the
    // first reconcile.
    std::thread::sleep(Duration::from_millis(3500));
    let app = t.out().join("app.conf");
    etcd.put("/services/apache/b", "10.0.0.2:80");
    // The burst: a change every 0.5 s (inside the debounce) for up to 15 s.
    let mut during_burst = false;
    let mut i = 0;
    while i < 30 {
        if read(&app).is_some_and(|s| s.contains("10.0.0.2:80")) {
            during_burst = true;
            break;
        }
        etcd.put("/services/apache/c", &format!("10.0.0.3:{i}"));
        i += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        during_burst,
        "the first change waited for the burst:\n{}",
        d.log()
    );
    etcd.put("/services/apache/c", "10.0.0.3:80");
    wait_content(
        &d,
        &app,
        &upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]),
    );
}

/// Case 3: Continuous churn that never leaves the 1 s debounce quiet still installs before it
/// stops (max_wait 2 s, 6 s of churn): reload_cmd records each installed value, and some are
/// values the churn later overwrote; the recorded values only ever go forward; the final
/// value is installed last. A batcher honouring only the debounce would install nothing until
/// the churn stopped. (How close installs come to max_wait is for batch.rs's paused-time
/// tests and the benchmark.)
#[test]
fn continuous_churn_installs_before_it_stops() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let reloads = t.root.path().join("reloads");
    let dest = t.out().join("c.conf");
    t.template("c.tera", "{{ getv(key=\"/churn/k\") }}\n");
    t.resource(
        "c",
        &format!(
            "[template]\nsrc = \"c.tera\"\ndest = \"@OUT@/c.conf\"\nkeys = [\"/churn\"]\ndebounce = \"1s\"\nmax_wait = \"2s\"\nreload_limit = \"none\"\nreload_cmd = 'echo \"$(date +%s.%N) $(cat {})\" >> {}'\n",
            dest.display(),
            reloads.display()
        ),
    );
    etcd.put("/churn/k", "c0");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    assert_eq!(lines(&reloads).len(), 1, "{}", d.log());

    // A put every 200 ms for 6 s: the 1 s quiet period never comes while it lasts.
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(6) {
        i += 1;
        etcd.put("/churn/k", &format!("c{i}"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = format!(" c{i}");
    wait_until(&d, "the reload of the final value", || {
        lines(&reloads).last().is_some_and(|l| l.ends_with(&last))
    });
    assert_eq!(read(&dest), Some(format!("c{i}\n")), "{}", d.log());
    let log = d.log();
    let installed: Vec<u32> = lines(&reloads)
        .iter()
        .map(|l| {
            let v = l.split_whitespace().nth(1).unwrap_or_default();
            v.trim_start_matches('c')
                .parse()
                .unwrap_or_else(|_| panic!("bad reload record {l:?}"))
        })
        .collect();
    assert!(
        installed.windows(2).all(|w| w[0] < w[1]),
        "installed values went backwards or repeated: {installed:?}; log:\n{log}"
    );
    let overwritten = installed.iter().filter(|&&v| v > 0 && v < i as u32).count();
    assert!(
        overwritten >= 1,
        "nothing was installed while the churn went on ({i} puts): {installed:?}; log:\n{log}"
    );
}

/// Case 4: reload_limit "2/4s": a burst of 8 changes gets fewer reloads than changes, the
/// limit is logged, and the final state is installed and reloaded (deferred, not dropped),
/// the reloads in order.
#[test]
fn reload_limit_defers_and_never_drops() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let reloads = t.root.path().join("reloads");
    let dest = t.out().join("v.conf");
    t.template("v.tera", "{{ getv(key=\"/rl/k\") }}\n");
    t.resource(
        "v",
        &format!(
            "[template]\nsrc = \"v.tera\"\ndest = \"@OUT@/v.conf\"\nkeys = [\"/rl\"]\ndebounce = \"0\"\nreload_limit = \"2/4s\"\nreload_cmd = 'echo \"$(date +%s.%N) $(cat {})\" >> {}'\n",
            dest.display(),
            reloads.display()
        ),
    );
    etcd.put("/rl/k", "v0");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    assert_eq!(lines(&reloads).len(), 1, "{}", d.log());

    for i in 1..=8 {
        etcd.put("/rl/k", &format!("v{i}"));
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until(&d, "the final state to be installed and reloaded", || {
        lines(&reloads).last().is_some_and(|l| l.ends_with(" v8"))
    });
    assert_eq!(read(&dest).as_deref(), Some("v8\n"), "{}", d.log());
    let log = d.log();
    let all = times(&reloads);
    let after_initial = all.len() - 1;
    assert!(
        after_initial < 8,
        "{after_initial} reloads for 8 changes; log:\n{log}"
    );
    assert!(
        log.contains("reload limit reached; install deferred"),
        "{log}"
    );
    // Installed in order, ending with the final value. How many reloads fit in a window is
    // the GCRA's (batch.rs's tests, with time passed in), not a wall-clock figure here.
    let values: Vec<u32> = lines(&reloads)
        .iter()
        .map(|l| {
            l.rsplit(" v")
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("bad reload record {l:?}"))
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]) && values.last() == Some(&8),
        "reloads out of order or not ending with the final value: {values:?}; log:\n{log}"
    );
}

/// Case 5: A key written with a lease that expires (a sidekick that stopped) leaves the output.
#[test]
fn expired_lease_removes_the_backend() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "debounce = \"0\"\n");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    etcd.put_with_lease("/services/apache/b", "10.0.0.2:80", 2);
    let dest = t.out().join("app.conf");
    wait_content(&d, &dest, &upstream(&["10.0.0.1:80", "10.0.0.2:80"]));
    // Nobody refreshes the lease: etcd deletes the key after ~2 s.
    wait_content(&d, &dest, &upstream(&["10.0.0.1:80"]));
}

/// Case 6: etcd restarted mid-watch: the daemon resumes its watch and later changes still arrive.
#[test]
fn etcd_restart_mid_watch_resumes() {
    let mut etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "debounce = \"0\"\n");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let dest = t.out().join("app.conf");
    etcd.put("/services/apache/b", "10.0.0.2:80");
    wait_content(&d, &dest, &upstream(&["10.0.0.1:80", "10.0.0.2:80"]));

    etcd.restart();
    // Written while the daemon is most likely still reconnecting (it backs off from 100 ms).
    etcd.put("/services/apache/c", "10.0.0.3:80");
    wait_content(
        &d,
        &dest,
        &upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]),
    );
    etcd.delete("/services/apache/a");
    wait_content(&d, &dest, &upstream(&["10.0.0.2:80", "10.0.0.3:80"]));
    d.wait_log(EVENT, "etcd reachable again", 1);
    // It resumed the watch from its revision rather than reading everything again.
    assert_eq!(
        d.log_count("read every watched key"),
        1,
        "resumed with a full re-read; log:\n{}\netcd log:\n{}",
        d.log(),
        etcd.log()
    );
}

/// Case 7: A paused daemon falls behind, etcd compacts past its revision: after SIGCONT it reads
/// everything again and renders the exact current state.
#[test]
fn compaction_while_paused_leads_to_full_resync() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "debounce = \"0\"\n");
    etcd.put_all(&[
        ("/services/apache/a", "10.0.0.1:80"),
        ("/services/apache/b", "10.0.0.2:80"),
    ]);
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let dest = t.out().join("app.conf");
    assert_eq!(
        read(&dest).as_deref(),
        Some(upstream(&["10.0.0.1:80", "10.0.0.2:80"]).as_str())
    );

    // Pause only once the watch is established and caught up.
    wait_until(
        &d,
        "the daemon's watch to be established and synced",
        || {
            etcd.metric("etcd_debugging_mvcc_watcher_total") == 1.0
                && etcd.metric("etcd_debugging_mvcc_slow_watcher_total") == 0.0
        },
    );
    d.signal(Signal::SIGSTOP);
    // A live watch gets every event however old, so etcd only tells a watcher about a
    // compaction once it has fallen behind. Make the paused daemon's watch a slow one:
    // write big values to a key inside its watched range (`/services/apache-bulk` sorts
    // between `/services/apache` and `/services/apache0`) but not one it watches, until
    // the stream's buffers fill and etcd reports a slow watcher.
    let big = "x".repeat(16 * 1024);
    let mut bulk = 0;
    while etcd.metric("etcd_debugging_mvcc_slow_watcher_total") < 1.0 {
        assert!(
            bulk < 4000,
            "etcd never marked the paused watch as slow; daemon log:\n{}",
            d.log()
        );
        for _ in 0..50 {
            bulk += 1;
            etcd.put("/services/apache-bulk", &format!("{bulk}{big}"));
        }
    }
    etcd.put("/services/apache/c", "10.0.0.3:80");
    etcd.delete("/services/apache/a");
    etcd.put("/services/apache/b", "10.0.0.22:80");
    let rev = etcd.revision();
    etcd.compact(rev);
    d.signal(Signal::SIGCONT);

    wait_content(&d, &dest, &upstream(&["10.0.0.22:80", "10.0.0.3:80"]));
    d.wait_log(
        EVENT,
        "etcd compacted past our revision; reading everything again",
        1,
    );
    d.wait_log(EVENT, "read every watched key", 2);
    let log = d.log();
    assert!(
        log.contains(&format!("compacted={rev}"))
            && log.contains(&format!("read every watched key revision={rev}")),
        "no re-read at the compacted revision {rev}; log:\n{log}"
    );
    // And it keeps following afterwards.
    etcd.put("/services/apache/d", "10.0.0.4:80");
    wait_content(
        &d,
        &dest,
        &upstream(&["10.0.0.22:80", "10.0.0.3:80", "10.0.0.4:80"]),
    );
    assert_eq!(t.out_files(), vec!["app.conf"]);
}

/// Case 8: A failing check_cmd that starts passing: the retry installs the file without any new
/// etcd change.
#[test]
fn failing_check_converges_once_it_passes() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let flag = t.root.path().join("flag");
    nginx_resource(
        &t,
        &format!(
            "debounce = \"0\"\ncheck_cmd = \"test -e {}\"\n",
            flag.display()
        ),
    );
    let dest = t.out().join("app.conf");
    std::fs::write(&dest, "old\n").unwrap();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    d.wait_log(EVENT, "check_cmd failed", 1);
    assert_eq!(read(&dest).as_deref(), Some("old\n"), "{}", d.log());
    // The failure is logged just before the staged file is removed.
    wait_until(&d, "the failed install's staged file to be removed", || {
        t.out_files() == ["app.conf"]
    });

    let revision = etcd.revision();
    std::fs::write(&flag, "").unwrap();
    // Retries back off 1 s, 2 s, 4 s…: the next one passes.
    wait_content(&d, &dest, &upstream(&["10.0.0.1:80"]));
    assert_eq!(etcd.revision(), revision, "etcd changed during the test");
    // The line is logged after the rename and the directory fsync, so wait for it too.
    d.wait_log(EVENT, INSTALLED, 1);
    assert_eq!(d.log_count(INSTALLED), 1, "{}", d.log());
    assert_eq!(t.out_files(), vec!["app.conf"], "{}", d.log());
}

/// Case 8d: A failing render converges once its cause is gone, without any new etcd change:
/// the template needs a file that appears only later (fileExists), and until then asks for a
/// key that does not exist, which fails the render. The live file is left alone meanwhile.
#[test]
fn failing_render_converges_once_it_passes() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let flag = t.root.path().join("flag");
    t.template(
        "r.tera",
        &format!(
            "{{% if not fileExists(path=\"{}\") %}}{{{{ getv(key=\"/r/not-yet\") }}}}{{% endif %}}v={{{{ getv(key=\"/r/v\") }}}}\n",
            flag.display()
        ),
    );
    t.resource(
        "r",
        "[template]\nsrc = \"r.tera\"\ndest = \"@OUT@/r.conf\"\nkeys = [\"/r\"]\ndebounce = \"0\"\n",
    );
    let dest = t.out().join("r.conf");
    std::fs::write(&dest, "old\n").unwrap();
    etcd.put("/r/v", "1");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    d.wait_log(EVENT, "/r/not-yet", 1);
    assert_eq!(read(&dest).as_deref(), Some("old\n"), "{}", d.log());
    assert_eq!(t.out_files(), vec!["r.conf"], "{}", d.log());

    let revision = etcd.revision();
    std::fs::write(&flag, "").unwrap();
    // Retries back off 1 s, 2 s, 4 s…: the next one renders.
    wait_content(&d, &dest, "v=1\n");
    assert_eq!(etcd.revision(), revision, "etcd changed during the test");
    assert_eq!(t.out_files(), vec!["r.conf"], "{}", d.log());
}

/// Case 8e: A failing install converges once its cause is gone, without any new etcd change:
/// the destination's directory does not exist yet (the service's package is not installed),
/// so the staged file cannot be written; once the directory is made, the retry installs.
#[test]
fn failing_install_converges_once_it_passes() {
    let etcd = Etcd::start();
    let t = Tree::new();
    t.template("i.tera", "v={{ getv(key=\"/i/v\") }}\n");
    t.resource(
        "i",
        "[template]\nsrc = \"i.tera\"\ndest = \"@OUT@/later/i.conf\"\nkeys = [\"/i\"]\ndebounce = \"0\"\n",
    );
    etcd.put("/i/v", "1");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let later = t.out().join("later");
    assert!(!later.exists());
    d.wait_log(EVENT, &later.display().to_string(), 1);

    let revision = etcd.revision();
    std::fs::create_dir(&later).unwrap();
    wait_content(&d, &later.join("i.conf"), "v=1\n");
    assert_eq!(etcd.revision(), revision, "etcd changed during the test");
    let mut left: Vec<String> = std::fs::read_dir(&later)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["i.conf"], "{}", d.log());
}

/// Case 8b: Without rollback, a failing reload_cmd is owed: the file is installed once, and the
/// reload is retried (the file no longer differs) until it passes, without any new etcd
/// change. (With rollback, the default, see tests/rollback.rs.)
#[test]
fn failing_reload_is_retried_until_it_passes() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let flag = t.root.path().join("flag");
    let reloads = t.root.path().join("reloads");
    nginx_resource(
        &t,
        &format!(
            "debounce = \"0\"\nrollback = false\nreload_cmd = \"test -e {} && date +%s.%N >> {}\"\n",
            flag.display(),
            reloads.display()
        ),
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    d.wait_log(EVENT, "reload_cmd failed", 1);
    let dest = t.out().join("app.conf");
    assert_eq!(
        read(&dest).as_deref(),
        Some(upstream(&["10.0.0.1:80"]).as_str()),
        "{}",
        d.log()
    );
    let revision = etcd.revision();
    std::fs::write(&flag, "").unwrap();
    wait_until(&d, "the owed reload", || lines(&reloads).len() == 1);
    assert_eq!(etcd.revision(), revision, "etcd changed during the test");
    assert_eq!(d.log_count(INSTALLED), 1, "{}", d.log());
}

/// Case 8c: Without rollback, a reload owed from a failed attempt is still owed after SIGHUP
/// (the file is already installed, so the new generation finds it in sync).
#[test]
fn owed_reload_survives_sighup() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let flag = t.root.path().join("flag");
    let reloads = t.root.path().join("reloads");
    nginx_resource(
        &t,
        &format!(
            "debounce = \"0\"\nrollback = false\nreload_cmd = \"test -e {} && date +%s.%N >> {}\"\n",
            flag.display(),
            reloads.display()
        ),
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    d.wait_log(EVENT, "reload_cmd failed", 1);
    d.signal(Signal::SIGHUP);
    d.wait_log(EVENT, READY, 2);
    std::fs::write(&flag, "").unwrap();
    // Before the SIGHUP the owed reload was retried within 1 s, 2 s, 4 s…
    wait_until(&d, "the owed reload after SIGHUP", || {
        lines(&reloads).len() == 1
    });
}

/// The reload budget outlives a SIGHUP: with reload_limit "1/min", a change after the first
/// reload is deferred, and reading the configuration again does not refill the budget.
#[test]
fn sighup_does_not_refill_the_reload_budget() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let reloads = t.root.path().join("reloads");
    nginx_resource(
        &t,
        &format!(
            "debounce = \"0\"\nreload_limit = \"1/min\"\nreload_cmd = \"date +%s.%N >> {}\"\n",
            reloads.display()
        ),
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    assert_eq!(lines(&reloads).len(), 1, "{}", d.log());
    etcd.put("/services/apache/b", "10.0.0.2:80");
    d.wait_log(EVENT, DEFERRED, 1);
    d.signal(Signal::SIGHUP);
    d.wait_log(EVENT, READY, 2);
    // The new generation's first reconcile finds the change still waiting for the budget.
    d.wait_log(EVENT, DEFERRED, 2);
    assert_eq!(lines(&reloads).len(), 1, "{}", d.log());
    assert_eq!(
        read(&t.out().join("app.conf")).as_deref(),
        Some(upstream(&["10.0.0.1:80"]).as_str())
    );
}

const DEFERRED: &str = "reload limit reached; install deferred";

/// Case 9: SIGHUP picks up an added resource, a changed one and a removed one.
#[test]
fn sighup_adds_changes_and_removes_resources() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let res = |name: &str| {
        t.resource(
            name,
            &format!("[template]\nsrc = \"{name}.tera\"\ndest = \"@OUT@/{name}.conf\"\nkeys = [\"/v\"]\ndebounce = \"0\"\n"),
        )
    };
    t.template("keep.tera", "keep {{ getv(key=\"/v\") }}\n");
    t.template("gone.tera", "gone {{ getv(key=\"/v\") }}\n");
    t.template("new.tera", "new {{ getv(key=\"/v\") }}\n");
    res("keep");
    let gone = res("gone");
    etcd.put("/v", "1");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    assert_eq!(
        read(&t.out().join("keep.conf")).as_deref(),
        Some("keep 1\n")
    );
    assert_eq!(
        read(&t.out().join("gone.conf")).as_deref(),
        Some("gone 1\n")
    );
    assert!(!t.out().join("new.conf").exists());

    t.template("keep.tera", "keep, changed {{ getv(key=\"/v\") }}\n");
    std::fs::remove_file(gone).unwrap();
    res("new");
    d.signal(Signal::SIGHUP);
    d.wait_log(EVENT, "SIGHUP: loading the configuration again", 1);
    d.wait_log(EVENT, READY, 2);
    // Both render at once, without an etcd change.
    wait_content(&d, &t.out().join("new.conf"), "new 1\n");
    wait_content(&d, &t.out().join("keep.conf"), "keep, changed 1\n");

    etcd.put("/v", "2");
    wait_content(&d, &t.out().join("new.conf"), "new 2\n");
    wait_content(&d, &t.out().join("keep.conf"), "keep, changed 2\n");
    // Stated bounded wait: the removed resource would have rendered with the others.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        read(&t.out().join("gone.conf")).as_deref(),
        Some("gone 1\n"),
        "a removed resource is still managed; log:\n{}",
        d.log()
    );
}

/// Case 10a: SIGHUP with a typo in a resource keeps the running version of that resource.
#[test]
fn sighup_with_resource_typo_keeps_the_old_resource() {
    let etcd = Etcd::start();
    let t = Tree::new();
    t.template("a.tera", "a {{ getv(key=\"/v\") }}\n");
    let file = t.resource(
        "a",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/v\"]\ndebounce = \"0\"\n",
    );
    etcd.put("/v", "1");
    let d = t.daemon(&etcd, &[]);
    d.wait_ready();
    assert_eq!(read(&t.out().join("a.conf")).as_deref(), Some("a 1\n"));

    // The edit moves the destination and has a typo on line 6.
    t.resource(
        "a",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/moved.conf\"\nkeys = [\"/v\"]\ndebounce = \"0\"\nrelaod_cmd = \"true\"\n",
    );
    d.signal(Signal::SIGHUP);
    d.wait_log(EVENT, READY, 2);
    let log = d.log();
    assert!(
        log.contains(&format!("{}:6: unknown field `relaod_cmd`", file.display())),
        "the error should name file:line; log:\n{log}"
    );
    assert!(log.contains("keeping the previous version"), "{log}");

    etcd.put("/v", "2");
    wait_content(&d, &t.out().join("a.conf"), "a 2\n");
    assert_eq!(t.out_files(), vec!["a.conf"], "{}", d.log());

    // A new resource naming the kept version's destination is refused, not run beside it.
    t.template("c.tera", "c {{ getv(key=\"/v\") }}\n");
    let c = t.resource(
        "c",
        "[template]\nsrc = \"c.tera\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/v\"]\ndebounce = \"0\"\n",
    );
    d.signal(Signal::SIGHUP);
    d.wait_log(EVENT, READY, 3);
    let log = d.log();
    assert!(
        log.contains(&format!("{}: dest ", c.display()))
            && log.contains("whose previous version is kept"),
        "{log}"
    );
    etcd.put("/v", "3");
    wait_content(&d, &t.out().join("a.conf"), "a 3\n");
}

/// Case 10b: SIGHUP with an invalid daemon config file (--config) keeps the running configuration.
#[test]
fn sighup_with_invalid_config_file_keeps_running() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(&config, "[batch]\ndebounce = \"0\"\n").unwrap();
    t.template("a.tera", "a {{ getv(key=\"/v\") }}\n");
    t.resource(
        "a",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/v\"]\n",
    );
    etcd.put("/v", "1");
    let d = t.daemon(&etcd, &["--config", config.to_str().unwrap()]);
    d.wait_ready();
    assert_eq!(read(&t.out().join("a.conf")).as_deref(), Some("a 1\n"));

    // Were this applied, the resources would vanish with the confdir; line 3 is invalid.
    std::fs::write(
        &config,
        "confdir = \"/nonexistent\"\n[batch]\nmax_wait = \"5 parsecs\"\n",
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log(EVENT, "keeping the running one", 1);
    d.wait_log(EVENT, READY, 2);
    let log = d.log();
    assert!(
        log.contains(&format!("{}:3:", config.display())) && log.contains("5 parsecs"),
        "the error should name file:line; log:\n{log}"
    );

    etcd.put("/v", "2");
    wait_content(&d, &t.out().join("a.conf"), "a 2\n");
}

/// Case 11: SIGTERM during an install: exit 0, the destination complete (old or new), no staged
/// file left.
#[test]
fn sigterm_during_install_leaves_no_staged_file() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(
        &t,
        "debounce = \"0\"\ncheck_cmd = \"sleep 1\"\nreload_limit = \"none\"\n",
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let mut d = t.daemon(&etcd, &[]);
    d.wait_ready();
    let dest = t.out().join("app.conf");
    let old = upstream(&["10.0.0.1:80"]);
    let new = upstream(&["10.0.0.1:80", "10.0.0.2:80"]);
    assert_eq!(read(&dest).as_deref(), Some(old.as_str()));

    etcd.put("/services/apache/b", "10.0.0.2:80");
    // The staged file exists while check_cmd (1 s) runs: stop right then.
    wait_until(&d, "the staged file of the second install", || {
        !staged_files(&t.out()).is_empty()
    });
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(EVENT);
    let log = d.log();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(log.contains("stopping"), "{log}");
    let content = read(&dest).unwrap_or_default();
    assert!(
        content == old || content == new,
        "destination is neither the old nor the new file: {content:?}; log:\n{log}"
    );
    assert_eq!(t.out_files(), vec!["app.conf"], "log:\n{log}");
}

/// Case 12: `--interval 1`: polling without a watch still brings changes to the destination.
#[test]
fn interval_polling_reaches_destination_without_watching() {
    let etcd = Etcd::start();
    let t = Tree::new();
    nginx_resource(&t, "debounce = \"0\"\n");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &["--interval", "1"]);
    d.wait_ready();
    let dest = t.out().join("app.conf");
    assert_eq!(
        read(&dest).as_deref(),
        Some(upstream(&["10.0.0.1:80"]).as_str())
    );
    etcd.put("/services/apache/b", "10.0.0.2:80");
    wait_content(&d, &dest, &upstream(&["10.0.0.1:80", "10.0.0.2:80"]));
    etcd.delete("/services/apache/a");
    wait_content(&d, &dest, &upstream(&["10.0.0.2:80"]));
    assert_eq!(
        etcd.metric("etcd_debugging_mvcc_watcher_total"),
        0.0,
        "--interval should not watch; log:\n{}",
        d.log()
    );
}
