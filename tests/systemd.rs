//! The systemd integration against a real etcd on loopback: what `reconfd run` tells the
//! service manager (READY, STATUS, RELOADING, STOPPING, WATCHDOG over `NOTIFY_SOCKET`) and
//! what its logs carry for journald (span fields and `MESSAGE_ID`s). docs/systemd.md is the
//! prose for the same promises.
//!
//! systemd is stood in for by a datagram socket bound at a temporary path: `NOTIFY_SOCKET`
//! points at it in the daemon's environment only, and a thread timestamps every datagram.
//! The journal is stood in for, when the machine has none, by binding its well-known socket
//! for the length of one test (tracing-journald cannot be pointed anywhere else).
//!
//! Every wait on an event is bounded; the plain sleeps prove that something did *not* happen
//! (a watchdog ping while etcd is frozen) for a stated time. Tolerances are for a loaded 2-core
//! machine.

mod util;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use util::{Daemon, Etcd, Tree};

/// Long enough for any single event on a loaded machine; never reached when things work.
const EVENT: Duration = Duration::from_secs(20);

const UPSTREAM: &str = "upstream apache_pool {\n{% for s in getvs(pattern=\"/services/apache/*\") %}    server {{ s }};\n{% endfor %}}\n";

fn upstream(servers: &[&str]) -> String {
    let mut s = String::from("upstream apache_pool {\n");
    for srv in servers {
        s.push_str(&format!("    server {srv};\n"));
    }
    s.push_str("}\n");
    s
}

/// `conf.d/NAME.toml` rendering `UPSTREAM` into `out/DEST`, plus `extra` fields.
fn upstream_resource(t: &Tree, name: &str, dest: &str, extra: &str) {
    t.template("upstream.tera", UPSTREAM);
    t.resource(
        name,
        &format!("[template]\nsrc = \"upstream.tera\"\ndest = \"@OUT@/{dest}\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\n{extra}"),
    );
}

// ---------------------------------------------------------------------------------------
// A stand-in for systemd's notification socket
// ---------------------------------------------------------------------------------------

/// One datagram the daemon sent to `NOTIFY_SOCKET`.
#[derive(Debug, Clone)]
struct Msg {
    /// When the reader thread received it.
    at: Instant,
    text: String,
    /// What the probe given to [`NotifySocket::bind`] returned on receipt (e.g. "the
    /// destination exists"), so an order between a file and a datagram can be asserted.
    probe: bool,
}

impl Msg {
    /// The datagram has exactly this line (`READY=1`).
    fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }
    /// The value of `NAME=` in the datagram.
    fn get(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    }
}

/// A datagram socket bound in a temporary directory and read by a thread that timestamps
/// each message. Dropping it stops the thread.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    msgs: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl NotifySocket {
    fn bind(probe: impl Fn() -> bool + Send + 'static) -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let msgs: Arc<Mutex<Vec<Msg>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (msgs, stop) = (msgs.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            let at = Instant::now();
                            let probe = probe();
                            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                            msgs.lock().unwrap().push(Msg { at, text, probe });
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => panic!("notify socket: {e}"),
                    }
                }
            })
        };
        NotifySocket {
            _dir: dir,
            path,
            msgs,
            stop,
            reader: Some(reader),
        }
    }

    /// Everything received so far, in order.
    fn messages(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    /// The messages, one per line, for failure messages.
    fn dump(&self) -> String {
        let msgs = self.messages();
        let t0 = msgs.first().map(|m| m.at);
        msgs.iter()
            .map(|m| {
                format!(
                    "  +{:.3}s {:?}\n",
                    m.at.duration_since(t0.unwrap()).as_secs_f64(),
                    m.text
                )
            })
            .collect()
    }

    /// Waits for the first message at index `from` or later that satisfies `f`; returns its
    /// index. The messages and the daemon log are in the panic message.
    fn wait(&self, d: &Daemon, from: usize, what: &str, f: impl Fn(&Msg) -> bool) -> usize {
        let deadline = Instant::now() + EVENT;
        loop {
            if let Some(i) = self
                .messages()
                .iter()
                .enumerate()
                .skip(from)
                .find_map(|(i, m)| f(m).then_some(i))
            {
                return i;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; notifications:\n{}daemon log:\n{}",
                    self.dump(),
                    d.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Times of the `WATCHDOG=1` pings received in `[from, to)`.
    fn pings(&self, from: Instant, to: Instant) -> Vec<Instant> {
        self.messages()
            .iter()
            .filter(|m| m.has("WATCHDOG=1") && m.at >= from && m.at < to)
            .map(|m| m.at)
            .collect()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// `reconfd run` with `NOTIFY_SOCKET` (and `env`) set in its environment only.
fn notified_daemon(t: &Tree, etcd: &Etcd, sock: &NotifySocket, env: &[(&str, &str)]) -> Daemon {
    let mut cmd = t.reconfd(Some(etcd), &["run"]);
    cmd.env("NOTIFY_SOCKET", &sock.path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Daemon::spawn(cmd)
}

/// CLOCK_MONOTONIC in microseconds: the clock `MONOTONIC_USEC=` is read from.
fn monotonic_usec() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    ts.tv_sec as i128 * 1_000_000 + ts.tv_nsec as i128 / 1_000
}

/// SIGTERM: `STOPPING=1` (with `STATUS=` cleared) is the last notification and the process
/// exits 0.
fn stop_and_expect_stopping(d: &mut Daemon, sock: &NotifySocket) {
    let before = sock.messages().len();
    d.signal(Signal::SIGTERM);
    let i = sock.wait(d, before, "STOPPING=1 after SIGTERM", |m| {
        m.has("STOPPING=1")
    });
    let status = d.wait_exit(EVENT);
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", d.log());
    assert_eq!(
        sock.messages()[i].get("STATUS"),
        Some(""),
        "{}",
        sock.dump()
    );
    // Give the reader thread a moment for anything still queued in the socket.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sock.messages().len(),
        i + 1,
        "notifications after STOPPING=1:\n{}",
        sock.dump()
    );
}

// ---------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------

/// READY=1 comes only once the first reconcile is done: the check_cmd sleeps 1 s, and READY
/// arrives after the destination exists and at least 1 s after the start. Its STATUS= says
/// what is in sync; a failing resource shows up in STATUS=, and so does its recovery.
/// SIGTERM sends STOPPING=1 and the process exits 0.
#[test]
fn ready_after_first_reconcile_then_status_and_stopping() {
    let etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(
        &t,
        "nginx",
        "app.conf",
        "check_cmd = \"sleep 1; ! grep -q bad {{.src}}\"\n",
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let rev = etcd.revision();
    let dest = t.out().join("app.conf");
    let sock = NotifySocket::bind({
        let dest = dest.clone();
        move || dest.exists()
    });
    let started = Instant::now();
    let mut d = notified_daemon(&t, &etcd, &sock, &[]);

    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));
    let msgs = sock.messages();
    // Nothing is sent before READY (no watchdog asked for, STATUS= starts with READY).
    assert_eq!(ready, 0, "notifications before READY:\n{}", sock.dump());
    let m = &msgs[ready];
    assert!(
        m.probe,
        "READY=1 arrived before {} existed; log:\n{}",
        dest.display(),
        d.log()
    );
    assert!(
        m.at.duration_since(started) >= Duration::from_secs(1),
        "READY=1 after {:?}, before the 1 s check_cmd could have finished",
        m.at.duration_since(started)
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        upstream(&["10.0.0.1:80"])
    );
    assert_eq!(
        m.get("STATUS"),
        Some(format!("1 resource in sync at revision {rev} via {}", etcd.endpoint).as_str()),
        "{}",
        sock.dump()
    );

    // A value the check rejects: STATUS= names the resource and why.
    etcd.put("/services/apache/b", "bad");
    let failing = format!(
        "0 resources in sync via {}; 1 failing (nginx: check failed)",
        etcd.endpoint
    );
    let f = sock.wait(&d, ready + 1, "STATUS= naming the failing resource", |m| {
        m.get("STATUS") == Some(failing.as_str())
    });
    assert!(!sock.messages()[f].has("READY=1"), "{}", sock.dump());
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        upstream(&["10.0.0.1:80"])
    );

    // Removing it heals the resource; STATUS= says so, at the new revision.
    etcd.delete("/services/apache/b");
    let rev = etcd.revision();
    let healed = format!("1 resource in sync at revision {rev} via {}", etcd.endpoint);
    sock.wait(&d, f + 1, "STATUS= back in sync", |m| {
        m.get("STATUS") == Some(healed.as_str())
    });
    // READY=1 was said once: STATUS= updates are not new READYs.
    let readies = sock.messages().iter().filter(|m| m.has("READY=1")).count();
    assert_eq!(readies, 1, "{}", sock.dump());

    stop_and_expect_stopping(&mut d, &sock);
}

/// SIGHUP: RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, as Type=notify-reload wants it)
/// in the same datagram, then READY=1 only after the new generation's first reconcile (a
/// resource added by the reload, with a 1 s check_cmd, is installed before READY).
/// WATCHDOG_PID naming another process means the watchdog is not ours: no pings.
#[test]
fn sighup_sends_reloading_then_ready_after_the_new_reconcile() {
    let etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let rev = etcd.revision();
    let added = t.out().join("added.conf");
    let sock = NotifySocket::bind({
        let added = added.clone();
        move || added.exists()
    });
    let mut d = notified_daemon(
        &t,
        &etcd,
        &sock,
        &[("WATCHDOG_USEC", "1000000"), ("WATCHDOG_PID", "1")],
    );
    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));

    upstream_resource(&t, "added", "added.conf", "check_cmd = \"sleep 1\"\n");
    let before = monotonic_usec();
    let hup = Instant::now();
    d.signal(Signal::SIGHUP);
    let r = sock.wait(&d, ready + 1, "RELOADING=1", |m| m.has("RELOADING=1"));
    let after = monotonic_usec();
    let m = sock.messages()[r].clone();
    let usec: i128 = m
        .get("MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC=: {:?}", m.text))
        .parse()
        .unwrap_or_else(|e| panic!("MONOTONIC_USEC= is not a number ({e}): {:?}", m.text));
    assert!(
        before <= usec && usec <= after,
        "MONOTONIC_USEC={usec} is not CLOCK_MONOTONIC between SIGHUP ({before}) and receipt ({after})"
    );
    assert_eq!(m.get("STATUS"), Some("reloading configuration"));
    assert!(!m.has("READY=1"), "{}", sock.dump());

    let again = sock.wait(&d, r + 1, "READY=1 after RELOADING=1", |m| m.has("READY=1"));
    let m = sock.messages()[again].clone();
    assert!(
        m.probe,
        "READY=1 after the reload arrived before the added resource was installed; log:\n{}",
        d.log()
    );
    assert!(
        m.at.duration_since(hup) >= Duration::from_secs(1),
        "READY=1 {:?} after SIGHUP, before the added resource's 1 s check_cmd could finish",
        m.at.duration_since(hup)
    );
    assert_eq!(
        m.get("STATUS"),
        Some(
            format!(
                "2 resources in sync at revision {rev} via {}",
                etcd.endpoint
            )
            .as_str()
        ),
        "{}",
        sock.dump()
    );
    assert_eq!(
        std::fs::read_to_string(&added).unwrap(),
        upstream(&["10.0.0.1:80"])
    );

    stop_and_expect_stopping(&mut d, &sock);
    let msgs = sock.messages();
    assert!(
        !msgs.iter().any(|m| m.has("WATCHDOG=1")),
        "pings although WATCHDOG_PID names another process:\n{}",
        sock.dump()
    );
}

/// WatchdogSec=1s: WATCHDOG=1 every ~0.5 s while etcd answers the progress requests. A
/// frozen etcd (SIGSTOP: its sockets stay open, nothing answers) stops the pings within
/// WatchdogSec, so systemd would restart the daemon; once the watch is declared broken STATUS=
/// says "degraded". SIGCONT brings the pings back, STATUS= heals, and the watch still follows
/// changes.
#[test]
fn watchdog_pings_only_while_etcd_answers() {
    let etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let rev = etcd.revision();
    let in_sync = format!("1 resource in sync at revision {rev} via {}", etcd.endpoint);
    let sock = NotifySocket::bind(|| true);
    let mut d = notified_daemon(&t, &etcd, &sock, &[("WATCHDOG_USEC", "1000000")]);
    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));

    // Pings at WatchdogSec/2.
    let from = sock.messages()[ready].at;
    std::thread::sleep(Duration::from_secs(3));
    let pings = sock.pings(from, from + Duration::from_secs(3));
    assert!(
        (4..=8).contains(&pings.len()),
        "{} pings in 3 s with WatchdogSec=1s (want ~6):\n{}",
        pings.len(),
        sock.dump()
    );
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(
        (0.4..=0.65).contains(&mean),
        "mean ping interval {mean:.3}s (want ~0.5 s): {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g < 1.0),
        "a gap of WatchdogSec or more would get the daemon killed: {gaps:?}"
    );

    // Freeze etcd. The last answer came before this instant; pings go on while it is less than
    // WatchdogSec old, so none may arrive after stop + 1 s (+ 1 s for a loaded machine).
    kill(etcd.pid(), Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(4500));
    let late = sock.pings(stopped + Duration::from_secs(2), Instant::now());
    assert!(
        late.is_empty(),
        "{} pings more than 2 s after etcd froze:\n{}",
        late.len(),
        sock.dump()
    );

    // Some 10 s later (the gRPC keep-alive: 5 s + 5 s) the watch is declared broken, and
    // STATUS= says so; still no pings.
    let degraded = sock.wait(&d, 0, "a degraded STATUS=", |m| {
        m.get("STATUS")
            .is_some_and(|s| s.starts_with("degraded: etcd unreachable ("))
    });
    assert!(
        sock.messages()[degraded]
            .get("STATUS")
            .unwrap()
            .ends_with(&in_sync),
        "{}",
        sock.dump()
    );
    let late = sock.pings(stopped + Duration::from_secs(2), Instant::now());
    assert!(late.is_empty(), "pings while degraded:\n{}", sock.dump());

    // Thaw it: pings come back, steadily, and STATUS= loses its "degraded".
    kill(etcd.pid(), Signal::SIGCONT).unwrap();
    let resumed = Instant::now();
    sock.wait(&d, degraded + 1, "STATUS= no longer degraded", |m| {
        m.get("STATUS") == Some(in_sync.as_str())
    });
    let deadline = resumed + EVENT;
    while sock.pings(resumed, Instant::now()).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "pings did not resume after SIGCONT:\n{}daemon log:\n{}",
            sock.dump(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the daemon still follows etcd.
    etcd.put("/services/apache/b", "10.0.0.2:80");
    let want = upstream(&["10.0.0.1:80", "10.0.0.2:80"]);
    let dest = t.out().join("app.conf");
    let deadline = Instant::now() + EVENT;
    while std::fs::read_to_string(&dest).ok().as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "change after SIGCONT not installed; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    stop_and_expect_stopping(&mut d, &sock);
}

/// A SIGHUP that arrives while an install's reload_cmd runs waits for it (an install is never
/// cut short), and the watchdog must keep being fed meanwhile: systemd keeps the watchdog armed
/// in its reload states (src/core/service.c, `service_set_state`: only START_POST, RUNNING and
/// RELOAD* keep it), so a reload_cmd or check_cmd longer than WatchdogSec in flight at a
/// SIGHUP gets reconfd killed (SIGABRT) in the middle of the reload.
#[test]
fn watchdog_keeps_pinging_while_a_sighup_waits_for_an_install() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let marker = t.root.path().join("reloading");
    upstream_resource(
        &t,
        "nginx",
        "app.conf",
        &format!(
            "reload_limit = \"none\"\nreload_cmd = \"touch {0}; sleep 3; rm -f {0}\"\n",
            marker.display()
        ),
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let sock = NotifySocket::bind(|| true);
    let mut d = notified_daemon(&t, &etcd, &sock, &[("WATCHDOG_USEC", "1000000")]);
    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));

    etcd.put("/services/apache/b", "10.0.0.2:80");
    let deadline = Instant::now() + EVENT;
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "reload_cmd did not start; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let hup = Instant::now();
    d.signal(Signal::SIGHUP);
    let r = sock.wait(&d, ready + 1, "RELOADING=1", |m| m.has("RELOADING=1"));
    sock.wait(&d, r + 1, "READY=1 after the reload", |m| m.has("READY=1"));
    let end = Instant::now();
    let mut pings = sock.pings(hup - Duration::from_secs(1), end);
    pings.insert(0, hup - Duration::from_secs(1));
    pings.push(end);
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g < 1.0),
        "no WATCHDOG=1 for WatchdogSec or longer while SIGHUP waited for reload_cmd: {gaps:?}\n{}",
        sock.dump()
    );
    stop_and_expect_stopping(&mut d, &sock);
}

/// No resources: READY=1 at once ("no resources to manage"), and with nothing to follow the
/// daemon is still alive, so the watchdog must still be fed (else systemd kills and restarts
/// it every WatchdogSec, e.g. right after a package install with an empty conf.d).
#[test]
fn watchdog_pings_with_no_resources() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let sock = NotifySocket::bind(|| true);
    let mut d = notified_daemon(&t, &etcd, &sock, &[("WATCHDOG_USEC", "1000000")]);
    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));
    assert_eq!(
        sock.messages()[ready].get("STATUS"),
        Some("no resources to manage")
    );
    let from = sock.messages()[ready].at;
    std::thread::sleep(Duration::from_secs(3));
    let pings = sock.pings(from, from + Duration::from_secs(3));
    assert!(
        pings.len() >= 4,
        "{} pings in 3 s after READY with WatchdogSec=1s:\n{}",
        pings.len(),
        sock.dump()
    );
    stop_and_expect_stopping(&mut d, &sock);
}

/// `--interval 2` with WatchdogSec=1s: etcd answers only once per poll, so the watchdog
/// tolerates WatchdogSec + interval of silence: pings never pause between polls, and stop once
/// a frozen etcd has not answered for 3 s.
#[test]
fn watchdog_with_interval_tolerates_one_poll_of_silence() {
    let etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let sock = NotifySocket::bind(|| true);
    let mut cmd = t.reconfd(Some(&etcd), &["run", "--interval", "2"]);
    cmd.env("NOTIFY_SOCKET", &sock.path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    let mut d = Daemon::spawn(cmd);
    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));

    let from = sock.messages()[ready].at;
    std::thread::sleep(Duration::from_secs(5));
    let mut pings = sock.pings(from, from + Duration::from_secs(5));
    pings.insert(0, from);
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.len() >= 8 && gaps.iter().all(|g| *g < 1.0),
        "pings paused between polls: {gaps:?}\n{}",
        sock.dump()
    );

    kill(etcd.pid(), Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(5500));
    let late = sock.pings(stopped + Duration::from_secs(4), Instant::now());
    kill(etcd.pid(), Signal::SIGCONT).unwrap();
    assert!(
        late.is_empty(),
        "{} pings more than 3 s (+1 s) after etcd froze:\n{}",
        late.len(),
        sock.dump()
    );
    let resumed = Instant::now();
    sock.wait(&d, 0, "pings after SIGCONT", |m| {
        m.has("WATCHDOG=1") && m.at > resumed
    });
    stop_and_expect_stopping(&mut d, &sock);
}

// ---------------------------------------------------------------------------------------
// Logs: JSON on stderr, the journal's native protocol, the fallback
// ---------------------------------------------------------------------------------------

/// `good` installs; `bad`'s check_cmd fails. Returns the etcd revision both render at.
fn good_and_bad(t: &Tree, etcd: &Etcd) -> i64 {
    t.template("a.tera", "v={{ getv(key=\"/app/v\") }}\n");
    t.resource(
        "good",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/good.conf\"\nkeys = [\"/app\"]\n",
    );
    t.resource(
        "bad",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/bad.conf\"\nkeys = [\"/app\"]\ncheck_cmd = \"echo nope >&2; false\"\n",
    );
    etcd.put("/app/v", "1");
    etcd.revision()
}

/// `reconfd once` with `--log-target stderr --log-format json`: the install and the failed
/// check carry the reconcile span's fields (`reconfd.resource`, `reconfd.dest`,
/// `reconfd.revision`: journald's RECONFD_*) and their `message_id`.
#[test]
fn json_logs_carry_span_fields_and_message_ids() {
    let etcd = Etcd::start();
    let t = Tree::new();
    let rev = good_and_bad(&t, &etcd);
    let mut cmd = t.reconfd(
        Some(&etcd),
        &["once", "--log-target", "stderr", "--log-format", "json"],
    );
    cmd.env_remove("JOURNAL_STREAM");
    let out = util::run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    let find = |id: &str| {
        events
            .iter()
            .find(|e| e["fields"]["message_id"] == id)
            .unwrap_or_else(|| panic!("no event with message_id {id}:\n{stderr}"))
    };

    let installed = find(reconfd::logging::INSTALLED);
    assert_eq!(installed["level"], "INFO");
    assert_eq!(installed["fields"]["message"], "installed");
    let span = &installed["span"];
    assert_eq!(span["name"], "reconcile");
    assert_eq!(span["reconfd.resource"], "good");
    assert_eq!(
        span["reconfd.dest"],
        t.out().join("good.conf").display().to_string()
    );
    assert_eq!(span["reconfd.revision"], rev);

    let check = find(reconfd::logging::CHECK_FAILED);
    assert_eq!(check["level"], "WARN");
    assert_eq!(check["fields"]["message"], "check_cmd failed");
    assert_eq!(check["fields"]["output"], "nope");
    let span = &check["span"];
    assert_eq!(span["reconfd.resource"], "bad");
    assert_eq!(
        span["reconfd.dest"],
        t.out().join("bad.conf").display().to_string()
    );
    assert_eq!(span["reconfd.revision"], rev);
}

/// Where tracing-journald sends, with no way to change it.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Serialises the tests that need the journal socket absent or faked.
static JOURNAL: Mutex<()> = Mutex::new(());

fn journal_lock() -> std::sync::MutexGuard<'static, ()> {
    JOURNAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `--log-target journald` with no journal: a warning, then every line on stderr.
#[test]
fn journald_target_without_a_journal_falls_back_to_stderr() {
    let _lock = journal_lock();
    if Path::new(JOURNAL_SOCKET).symlink_metadata().is_ok() {
        eprintln!("skipped: {JOURNAL_SOCKET} exists, so there is a journal to log to");
        return;
    }
    let etcd = Etcd::start();
    let t = Tree::new();
    good_and_bad(&t, &etcd);
    std::fs::remove_file(t.confdir().join("conf.d/bad.toml")).unwrap();
    let out = util::run(t.reconfd(Some(&etcd), &["once", "--log-target", "journald"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("WARN") && first.contains("journald is not reachable"),
        "first line is not the fallback warning:\n{stderr}"
    );
    assert!(first.contains("logging to stderr"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("installed") && l.contains("reconfd.resource=good")),
        "the install was not logged to stderr:\n{stderr}"
    );
    // The human text format leaves message_id to journald and JSON.
    assert!(!stderr.contains(reconfd::logging::INSTALLED), "{stderr}");
}

/// The journal's socket, bound by the test for as long as this lives; the socket and any
/// directory it had to create are removed on drop.
struct FakeJournal {
    sock: UnixDatagram,
    created: Vec<PathBuf>,
}

impl FakeJournal {
    /// `None` when something is already at the path (a real journal: leave it alone) or it
    /// cannot be bound (not root).
    fn bind() -> Option<FakeJournal> {
        let path = Path::new(JOURNAL_SOCKET);
        if path.symlink_metadata().is_ok() {
            return None;
        }
        let mut created = Vec::new();
        let mut missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|d| !d.exists())
            .collect();
        missing.reverse();
        for d in missing {
            if std::fs::create_dir(d).is_err() {
                remove_created(&created);
                return None;
            }
            created.push(d.to_owned());
        }
        match UnixDatagram::bind(path) {
            Ok(sock) => {
                created.push(path.to_owned());
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                Some(FakeJournal { sock, created })
            }
            Err(_) => {
                remove_created(&created);
                None
            }
        }
    }

    /// Every non-empty entry received until `until` returns true and the socket is drained.
    fn entries(&self, mut until: impl FnMut() -> bool) -> Vec<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut done = false;
        loop {
            match self.sock.recv(&mut buf) {
                Ok(0) => {} // tracing-journald's probe when it starts
                Ok(n) => out.push(parse_journal_entry(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if done {
                        return out;
                    }
                    done = until();
                    assert!(
                        Instant::now() < deadline,
                        "the logging process did not finish"
                    );
                }
                Err(e) => panic!("journal socket: {e}"),
            }
        }
    }
}

fn remove_created(created: &[PathBuf]) {
    for p in created.iter().rev() {
        let _ = if p.is_dir() {
            std::fs::remove_dir(p)
        } else {
            std::fs::remove_file(p)
        };
    }
}

impl Drop for FakeJournal {
    fn drop(&mut self) {
        remove_created(&self.created);
    }
}

/// One native-protocol datagram: `NAME=value\n`, or `NAME\n` + 64-bit little-endian length +
/// value + `\n` for values that may hold newlines (tracing-journald uses the latter).
fn parse_journal_entry(mut b: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("field without newline");
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let name = String::from_utf8_lossy(&line[..eq]).into_owned();
            let value = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            fields.push((name, value));
            b = &b[nl + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &b[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            assert_eq!(rest[8 + len], b'\n', "bad length-encoded field {name}");
            fields.push((name, value));
            b = &rest[8 + len + 1..];
        }
    }
    fields
}

/// Runs `cmd` while reading the fake journal; returns the entries and the process's stderr.
fn log_to_journal(
    journal: &FakeJournal,
    mut cmd: Command,
) -> (Vec<BTreeMap<String, Vec<String>>>, std::process::Output) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let entries = journal.entries(|| child.try_wait().unwrap().is_some());
    let out = child.wait_with_output().unwrap();
    let entries = entries
        .into_iter()
        .map(|e| {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in e {
                m.entry(k).or_default().push(v);
            }
            m
        })
        .collect();
    (entries, out)
}

/// The journal's native protocol, for real, against a socket bound at the journal's path
/// (only when the machine has no journal). Entries carry MESSAGE, PRIORITY, MESSAGE_ID,
/// SYSLOG_IDENTIFIER=reconfd and the span fields as RECONFD_RESOURCE, RECONFD_DEST,
/// RECONFD_REVISION, which is what `journalctl RECONFD_RESOURCE=…` filters on. Nothing goes to
/// stderr. `--log-target auto` picks the journal when JOURNAL_STREAM is set.
#[test]
fn journald_native_protocol_carries_reconfd_fields() {
    let _lock = journal_lock();
    let Some(journal) = FakeJournal::bind() else {
        eprintln!("skipped: {JOURNAL_SOCKET} exists or cannot be bound");
        return;
    };
    let etcd = Etcd::start();
    let t = Tree::new();
    let rev = good_and_bad(&t, &etcd);

    let mut cmd = t.reconfd(Some(&etcd), &["once", "--log-target", "journald"]);
    cmd.env_remove("JOURNAL_STREAM");
    let (entries, out) = log_to_journal(&journal, cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "", "logs went to stderr as well as to the journal");
    let one = |e: &BTreeMap<String, Vec<String>>, k: &str| -> String {
        match e.get(k).map(Vec::as_slice) {
            Some([v]) => v.clone(),
            other => panic!("{k}: {other:?} in {e:?}"),
        }
    };
    let find = |id: &str| {
        entries
            .iter()
            .find(|e| e.get("MESSAGE_ID").is_some_and(|v| v == &[id]))
            .unwrap_or_else(|| panic!("no entry with MESSAGE_ID={id}: {entries:#?}"))
    };

    let installed = find(reconfd::logging::INSTALLED);
    assert_eq!(one(installed, "MESSAGE"), "installed");
    assert_eq!(one(installed, "PRIORITY"), "5");
    assert_eq!(one(installed, "SYSLOG_IDENTIFIER"), "reconfd");
    assert_eq!(one(installed, "RECONFD_RESOURCE"), "good");
    assert_eq!(
        one(installed, "RECONFD_DEST"),
        t.out().join("good.conf").display().to_string()
    );
    assert_eq!(one(installed, "RECONFD_REVISION"), rev.to_string());
    assert_eq!(one(installed, "SPAN_NAME"), "reconcile");
    // No field prefix: not F_RECONFD_RESOURCE.
    assert!(
        !installed.keys().any(|k| k.starts_with("F_")),
        "{installed:?}"
    );

    let check = find(reconfd::logging::CHECK_FAILED);
    assert_eq!(one(check, "MESSAGE"), "check_cmd failed");
    assert_eq!(one(check, "PRIORITY"), "4");
    assert_eq!(one(check, "RECONFD_RESOURCE"), "bad");
    assert_eq!(
        one(check, "RECONFD_DEST"),
        t.out().join("bad.conf").display().to_string()
    );
    assert_eq!(one(check, "OUTPUT"), "nope");
    // The error that follows, and everything else about `bad`, is filterable too.
    let bad: Vec<_> = entries
        .iter()
        .filter(|e| e.get("RECONFD_RESOURCE").is_some_and(|v| v == &["bad"]))
        .collect();
    assert!(
        bad.iter().any(|e| one(e, "PRIORITY") == "3"),
        "no error entry for bad: {bad:#?}"
    );

    // auto + JOURNAL_STREAM (set by systemd when stderr is the journal): the journal again.
    let mut cmd = t.reconfd(Some(&etcd), &["once"]);
    cmd.env("JOURNAL_STREAM", "8:12345");
    let (entries, out) = log_to_journal(&journal, cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "", "auto with JOURNAL_STREAM wrote to stderr");
    assert!(
        entries.iter().any(|e| e
            .get("MESSAGE_ID")
            .is_some_and(|v| v == &[reconfd::logging::CHECK_FAILED])),
        "{entries:#?}"
    );
}

/// docs/systemd.md lists every MESSAGE_ID the code sends, so `journalctl MESSAGE_ID=…` from
/// the docs finds something.
#[test]
fn docs_list_every_message_id() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd.md"))
            .expect("docs/systemd.md");
    for id in [
        reconfd::logging::INSTALLED,
        reconfd::logging::CHECK_FAILED,
        reconfd::logging::RELOAD_FAILED,
        reconfd::logging::ETCD_UNREACHABLE,
        reconfd::logging::ETCD_RECOVERED,
        reconfd::logging::RENDER_FAILED,
    ] {
        assert!(
            doc.contains(id),
            "docs/systemd.md does not list MESSAGE_ID {id}"
        );
    }
}

/// etcd going away and coming back (a restart) is logged with ETCD_UNREACHABLE, then
/// ETCD_RECOVERED: what `journalctl MESSAGE_ID=…` finds for an outage.
#[test]
fn etcd_outage_is_logged_with_message_ids() {
    let mut etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let d = t.daemon(&etcd, &["--log-target", "stderr", "--log-format", "json"]);
    d.wait_ready();
    etcd.restart();
    d.wait_log(EVENT, reconfd::logging::ETCD_UNREACHABLE, 1);
    d.wait_log(EVENT, reconfd::logging::ETCD_RECOVERED, 1);
    let event = |id: &str| -> serde_json::Value {
        let log = d.log();
        let line = log.lines().find(|l| l.contains(id)).unwrap();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let down = event(reconfd::logging::ETCD_UNREACHABLE);
    assert_eq!(down["level"], "ERROR", "{down}");
    assert_eq!(
        down["fields"]["endpoints"],
        etcd.endpoint.as_str(),
        "{down}"
    );
    let up = event(reconfd::logging::ETCD_RECOVERED);
    assert_eq!(up["level"], "INFO", "{up}");
    assert_eq!(
        up["fields"]["reconfd.endpoint"],
        etcd.endpoint.as_str(),
        "{up}"
    );
}

/// The same with `--interval`: a failed poll is an outage too, and carries ETCD_UNREACHABLE
/// (its recovery already carries ETCD_RECOVERED).
#[test]
fn etcd_unreachable_in_interval_mode_has_its_message_id() {
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    let dead = format!("http://127.0.0.1:{}", util::free_port());
    let d = Daemon::spawn(t.reconfd(
        None,
        &[
            "run",
            "--interval",
            "1",
            "--log-target",
            "stderr",
            "--log-format",
            "json",
            "--endpoint",
            &dead,
        ],
    ));
    d.wait_log(EVENT, "trying again in", 1);
    let log = d.log();
    let line = log.lines().find(|l| l.contains("trying again in")).unwrap();
    assert!(
        line.contains(reconfd::logging::ETCD_UNREACHABLE),
        "a failed poll without MESSAGE_ID={}: {line}",
        reconfd::logging::ETCD_UNREACHABLE
    );
}

/// With `--interval`, STATUS= names the member that answered, not every configured one.
#[test]
fn status_in_interval_mode_names_the_member_that_answered() {
    let etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let rev = etcd.revision();
    let dead = format!("http://127.0.0.1:{}", util::free_port());
    let sock = NotifySocket::bind(|| true);
    let mut cmd = t.reconfd(
        None,
        &[
            "run",
            "--interval",
            "1",
            "--endpoint",
            &dead,
            "--endpoint",
            &etcd.endpoint,
        ],
    );
    cmd.env("NOTIFY_SOCKET", &sock.path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    let d = Daemon::spawn(cmd);
    let ready = sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));
    assert_eq!(
        sock.messages()[ready].get("STATUS"),
        Some(format!("1 resource in sync at revision {rev} via {}", etcd.endpoint).as_str()),
        "{}",
        sock.dump()
    );
}
