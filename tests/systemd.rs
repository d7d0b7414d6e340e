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
//! Every wait on an event is bounded. Assertions are about the order of events (pings before
//! and after a freeze, a STATUS=, a file); the one timed check left is the watchdog's contract
//! itself: while healthy, no gap between pings reaches WatchdogSec, or systemd would kill the
//! daemon. Ping rates and counts are figures for benchmarks, not asserted here.

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

    /// Waits until `n` `WATCHDOG=1` pings arrived at or after `from`; returns their times.
    fn wait_pings(&self, d: &Daemon, from: Instant, n: usize) -> Vec<Instant> {
        let deadline = Instant::now() + EVENT;
        loop {
            let pings = self.pings(from, Instant::now() + EVENT);
            if pings.len() >= n {
                return pings;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {n} pings; notifications:\n{}daemon log:\n{}",
                    self.dump(),
                    d.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until no `WATCHDOG=1` came for `quiet` (counted from `from` or the last ping,
    /// whichever is later); returns the time of the last ping before that silence, if any.
    fn wait_silence(&self, d: &Daemon, from: Instant, quiet: Duration) -> Option<Instant> {
        let deadline = Instant::now() + EVENT + quiet;
        loop {
            let last = self.pings(from, Instant::now() + EVENT).last().copied();
            if Instant::now().duration_since(last.unwrap_or(from)) >= quiet {
                return last;
            }
            if Instant::now() > deadline {
                panic!(
                    "the pings never stopped for {quiet:?}; notifications:\n{}daemon log:\n{}",
                    self.dump(),
                    d.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until everything already sent to the socket has been read: a marker datagram
    /// sent now queues behind it, so once the reader has it, nothing sent before is pending.
    fn drain(&self) {
        let marker = format!("TEST_MARKER={:?}", Instant::now());
        UnixDatagram::unbound()
            .unwrap()
            .send_to(marker.as_bytes(), &self.path)
            .unwrap();
        let deadline = Instant::now() + EVENT;
        while !self.msgs.lock().unwrap().iter().any(|m| m.text == marker) {
            assert!(Instant::now() < deadline, "the reader never got the marker");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.msgs.lock().unwrap().retain(|m| m.text != marker);
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
    // The process is gone: whatever it sent is queued; read all of it.
    sock.drain();
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

    // Pings keep coming while etcd answers, never WatchdogSec apart (systemd's contract).
    let from = sock.messages()[ready].at;
    let pings = sock.wait_pings(&d, from, 5);
    let mut times = vec![from];
    times.extend(pings);
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g < 1.0),
        "a gap of WatchdogSec or more would get the daemon killed: {gaps:?}\n{}",
        sock.dump()
    );

    // Freeze etcd: the pings stop (a silence of twice WatchdogSec comes), long before the
    // watch is declared broken (some 10 s later, the gRPC keep-alive: 5 s + 5 s), when
    // STATUS= says "degraded"; and none comes while it is degraded.
    kill(etcd.pid(), Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    let last = sock
        .wait_silence(&d, stopped, Duration::from_secs(2))
        .unwrap_or(stopped);
    let degraded = sock.wait(&d, 0, "a degraded STATUS=", |m| {
        m.get("STATUS")
            .is_some_and(|s| s.starts_with("degraded: etcd unreachable ("))
    });
    let degraded_at = sock.messages()[degraded].at;
    assert!(
        last + Duration::from_secs(1) <= degraded_at,
        "pings went on until the watch was declared broken:\n{}",
        sock.dump()
    );
    assert!(
        sock.messages()[degraded]
            .get("STATUS")
            .unwrap()
            .ends_with(&in_sync),
        "{}",
        sock.dump()
    );
    let late = sock.pings(last + Duration::from_millis(1), Instant::now());
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
    let sock = NotifySocket::bind({
        let marker = marker.clone();
        move || marker.exists()
    });
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
    d.signal(Signal::SIGHUP);
    let r = sock.wait(&d, ready + 1, "RELOADING=1", |m| m.has("RELOADING=1"));
    let again = sock.wait(&d, r + 1, "READY=1 after the reload", |m| m.has("READY=1"));
    // Between RELOADING=1 and READY=1 the SIGHUP waited for reload_cmd (3 s, six pings'
    // worth): pings went on while it still ran (the probe saw its marker).
    let during: Vec<Msg> = sock.messages()[r + 1..again]
        .iter()
        .filter(|m| m.has("WATCHDOG=1") && m.probe)
        .cloned()
        .collect();
    assert!(
        during.len() >= 2,
        "{} WATCHDOG=1 while SIGHUP waited for reload_cmd:\n{}",
        during.len(),
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
    // Pings go on after READY, for longer than WatchdogSec.
    let from = sock.messages()[ready].at;
    sock.wait_pings(&d, from + Duration::from_secs(2), 2);
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

    // Pings across more than two polls, never WatchdogSec apart (systemd's contract).
    let from = sock.messages()[ready].at;
    sock.wait_pings(&d, from + Duration::from_secs(4), 2);
    let mut pings = sock.pings(from, from + Duration::from_secs(4));
    pings.insert(0, from);
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g < 1.0),
        "pings paused between polls: {gaps:?}\n{}",
        sock.dump()
    );

    // Frozen, etcd answers no poll: the pings stop (a silence of twice WatchdogSec +
    // interval comes) and none comes until SIGCONT.
    kill(etcd.pid(), Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    let last = sock.wait_silence(&d, stopped, Duration::from_secs(6));
    let late = sock.pings(
        last.unwrap_or(stopped) + Duration::from_millis(1),
        Instant::now(),
    );
    kill(etcd.pid(), Signal::SIGCONT).unwrap();
    assert!(late.is_empty(), "pings after the silence:\n{}", sock.dump());
    let resumed = Instant::now();
    sock.wait(&d, 0, "pings after SIGCONT", |m| {
        m.has("WATCHDOG=1") && m.at > resumed
    });
    stop_and_expect_stopping(&mut d, &sock);
}

/// SIGINT (Ctrl-C in a terminal, or `KillSignal=SIGINT`) stops the daemon exactly as SIGTERM
/// does: sent while an install's check_cmd runs, the install finishes or is dropped whole,
/// STOPPING=1 is the last notification, the process exits 0, and no staged file is left.
#[test]
fn sigint_stops_like_sigterm() {
    let etcd = Etcd::start();
    let t = Tree::new();
    upstream_resource(
        &t,
        "nginx",
        "app.conf",
        "check_cmd = \"sleep 1\"\nreload_limit = \"none\"\n",
    );
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let sock = NotifySocket::bind(|| true);
    let mut d = notified_daemon(&t, &etcd, &sock, &[]);
    sock.wait(&d, 0, "READY=1", |m| m.has("READY=1"));
    let dest = t.out().join("app.conf");
    let (old, new) = (
        upstream(&["10.0.0.1:80"]),
        upstream(&["10.0.0.1:80", "10.0.0.2:80"]),
    );
    etcd.put("/services/apache/b", "10.0.0.2:80");
    // The staged file exists while check_cmd runs: interrupt right then.
    util::wait_for(EVENT, "the staged file of the second install", || {
        t.out_files()
            .iter()
            .any(|f| f.starts_with('.'))
            .then_some(())
    });
    let before = sock.messages().len();
    d.signal(Signal::SIGINT);
    let i = sock.wait(&d, before, "STOPPING=1 after SIGINT", |m| {
        m.has("STOPPING=1")
    });
    let status = d.wait_exit(EVENT);
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", d.log());
    sock.drain();
    assert_eq!(
        sock.messages().len(),
        i + 1,
        "notifications after STOPPING=1:\n{}",
        sock.dump()
    );
    let content = std::fs::read_to_string(&dest).unwrap_or_default();
    assert!(
        content == old || content == new,
        "destination is neither the old nor the new file: {content:?}; log:\n{}",
        d.log()
    );
    assert_eq!(t.out_files(), vec!["app.conf"], "log:\n{}", d.log());
}

/// Before etcd was reached even once (its only endpoint is down at start), the daemon is
/// starting, not hung: it keeps sending WATCHDOG=1 for longer than WatchdogSec, so systemd
/// does not kill it in a loop while etcd comes up after it. It says nothing of READY.
#[test]
fn watchdog_is_fed_before_etcd_was_first_reached() {
    let t = Tree::new();
    upstream_resource(&t, "nginx", "app.conf", "");
    let dead = format!("http://127.0.0.1:{}", util::free_port());
    let sock = NotifySocket::bind(|| true);
    let mut cmd = t.reconfd(None, &["run", "--endpoint", &dead]);
    cmd.env("NOTIFY_SOCKET", &sock.path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    let started = Instant::now();
    let mut d = Daemon::spawn(cmd);
    // Pings three WatchdogSecs after the start, etcd never having answered.
    sock.wait_pings(&d, started + Duration::from_secs(3), 2);
    assert!(
        !sock.messages().iter().any(|m| m.has("READY=1")),
        "READY=1 without etcd:\n{}",
        sock.dump()
    );
    assert!(
        d.log().contains("no etcd endpoint can be followed")
            || d.log().contains(reconfd::logging::ETCD_UNREACHABLE),
        "the dead endpoint was not reported; log:\n{}",
        d.log()
    );
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

// ---------------------------------------------------------------------------------------
// A private journal: the real systemd-journald in a mount namespace of its own
// ---------------------------------------------------------------------------------------

/// Runs a command in a private mount namespace with a fresh tmpfs on /run (and on
/// /var/log/journal, so nothing reaches the host's journal), optionally with the real
/// systemd-journald listening at its usual sockets there. tracing-journald can only send to
/// /run/systemd/journal/socket, so this is how a test gets a journal of its own whatever the
/// host runs.
///
/// Arguments: `journald|none`, the output directory, `direct|stream`, then the command.
/// `stream` runs it as systemd runs a unit with `StandardError=journal`: stdout and stderr
/// connected to journald's stream socket (systemd-cat) and `JOURNAL_STREAM` naming that socket.
/// The entries are left in `OUT/journal.json` (journalctl's JSON, one entry a line); the
/// command's own stdout and stderr (direct) in `OUT/stdout` and `OUT/stderr`.
const PRIVATE_RUN: &str = r#"set -eu
mode=$1 out=$2 how=$3
shift 3
mount -t tmpfs tmpfs /run
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
if [ "$mode" = journald ]; then
    mkdir -p /run/systemd/journal
    "$JOURNALD" >"$out/journald.log" 2>&1 &
    jd=$!
    n=0
    until [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ]; do
        n=$((n + 1))
        if [ "$n" -gt 400 ]; then
            echo "systemd-journald did not start within 20 s:" >&2
            cat "$out/journald.log" >&2
            exit 97
        fi
        sleep 0.05
    done
fi
rc=0
if [ "$how" = stream ]; then
    systemd-cat -t reconfd-stderr sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh "$@" || rc=$?
else
    "$@" >"$out/stdout" 2>"$out/stderr" || rc=$?
fi
if [ "$mode" = journald ]; then
    kill -TERM "$jd"
    wait "$jd" || true
    journalctl --directory=/run/log/journal --output=json --no-pager >"$out/journal.json"
fi
exit "$rc"
"#;

/// The systemd-journald binary, where Debian and Fedora put it.
fn journald_binary() -> Option<PathBuf> {
    [
        "/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Whether this process may make a mount namespace and mount in it (root, not in a
/// container that forbids it).
fn can_unshare_mounts() -> bool {
    nix::unistd::geteuid().is_root()
        && Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// What a run in a private namespace left behind.
struct PrivateRun {
    status: std::process::ExitStatus,
    /// The command's stderr (`direct` runs).
    stderr: String,
    /// Every journal entry (with `journald`), each field with all its values.
    entries: Vec<BTreeMap<String, Vec<String>>>,
    /// The wrapper's own stderr, for failure messages.
    wrapper: String,
}

impl PrivateRun {
    /// The entries reconfd sent itself (native protocol, `_COMM=reconfd`).
    fn native(&self) -> Vec<&BTreeMap<String, Vec<String>>> {
        self.entries
            .iter()
            .filter(|e| field(e, "_TRANSPORT") == "journal" && field(e, "_COMM") == "reconfd")
            .collect()
    }
    /// Every entry but the kernel's, one line each, for failure messages.
    fn dump(&self) -> String {
        self.entries
            .iter()
            .filter(|e| field(e, "_TRANSPORT") != "kernel")
            .map(|e| format!("  {e:?}\n"))
            .collect()
    }
    /// The lines that went to stderr and so, under `stream`, to journald's stream socket.
    fn stream_lines(&self) -> Vec<&BTreeMap<String, Vec<String>>> {
        self.entries
            .iter()
            .filter(|e| field(e, "SYSLOG_IDENTIFIER") == "reconfd-stderr")
            .collect()
    }
}

/// The single value of `name` in an entry ("" when absent; panics when repeated).
fn field(e: &BTreeMap<String, Vec<String>>, name: &str) -> String {
    match e.get(name).map(Vec::as_slice) {
        None => String::new(),
        Some([v]) => v.clone(),
        Some(more) => panic!("{name} has {} values in {e:?}", more.len()),
    }
}

/// One value of journalctl's JSON: a string, a byte array, or a list of either (a field sent
/// more than once).
fn journal_values(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let bytes = |a: &[Value]| -> Option<String> {
        a.iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_number) => bytes(a).into_iter().collect(),
        Value::Array(a) => a.iter().flat_map(journal_values).collect(),
        Value::Null => vec![],
        other => vec![other.to_string()],
    }
}

/// Runs `cmd` (program, arguments and environment) in a private namespace; see
/// [`PRIVATE_RUN`]. Bounded: the wrapper is killed after 60 s.
fn private_run(cmd: &Command, journald: bool, stream: bool) -> PrivateRun {
    let out = tempfile::tempdir().unwrap();
    let mut w = Command::new("unshare");
    w.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        PRIVATE_RUN,
        "sh",
    ])
    .arg(if journald { "journald" } else { "none" })
    .arg(out.path())
    .arg(if stream { "stream" } else { "direct" })
    .arg(cmd.get_program())
    .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    if let Some(j) = journald_binary() {
        w.env("JOURNALD", j);
    }
    let o = util::run(w);
    let wrapper = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_ne!(o.status.code(), Some(97), "{wrapper}");
    let entries = std::fs::read_to_string(out.path().join("journal.json"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("journalctl JSON ({e}): {l}"));
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), journal_values(v)))
                .collect()
        })
        .collect();
    PrivateRun {
        status: o.status,
        stderr: std::fs::read_to_string(out.path().join("stderr")).unwrap_or_default(),
        entries,
        wrapper,
    }
}

/// `--log-target journald` with no journal (a private /run without journald): a warning,
/// then every line on stderr.
#[test]
fn journald_target_without_a_journal_falls_back_to_stderr() {
    if !util::prerequisite(
        can_unshare_mounts(),
        "needs root and mount namespaces (unshare --mount) for a /run without a journal",
    ) {
        return;
    }
    let etcd = Etcd::start();
    let t = Tree::new();
    good_and_bad(&t, &etcd);
    std::fs::remove_file(t.confdir().join("conf.d/bad.toml")).unwrap();
    let mut cmd = t.reconfd(Some(&etcd), &["once", "--log-target", "journald"]);
    cmd.env_remove("JOURNAL_STREAM");
    let run = private_run(&cmd, false, false);
    let stderr = &run.stderr;
    assert_eq!(run.status.code(), Some(0), "{stderr}{}", run.wrapper);
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

/// The journal's native protocol, for real: systemd-journald itself, in a private namespace,
/// stores what `reconfd once --log-target journald` sends, and journalctl reads it back.
/// Entries carry MESSAGE, PRIORITY, MESSAGE_ID, SYSLOG_IDENTIFIER=reconfd and the span fields
/// as RECONFD_RESOURCE, RECONFD_DEST, RECONFD_REVISION, which is what
/// `journalctl RECONFD_RESOURCE=…` filters on. Nothing goes to stderr. Run as systemd runs a
/// unit whose stderr is the journal (`JOURNAL_STREAM` set), `--log-target auto` picks the
/// native protocol too, and writes no line to the stream.
#[test]
fn journald_native_protocol_carries_reconfd_fields() {
    if !util::prerequisite(
        can_unshare_mounts(),
        "needs root and mount namespaces (unshare --mount) to run a private systemd-journald",
    ) || !util::prerequisite(
        journald_binary().is_some()
            && util::have_program("journalctl")
            && util::have_program("systemd-cat"),
        "needs systemd-journald, journalctl and systemd-cat (Debian: apt-get install systemd)",
    ) {
        return;
    }
    let etcd = Etcd::start();
    let t = Tree::new();
    let rev = good_and_bad(&t, &etcd);

    let mut cmd = t.reconfd(Some(&etcd), &["once", "--log-target", "journald"]);
    cmd.env_remove("JOURNAL_STREAM");
    let run = private_run(&cmd, true, false);
    assert_eq!(run.status.code(), Some(1), "{}{}", run.stderr, run.wrapper);
    assert_eq!(
        run.stderr, "",
        "logs went to stderr as well as to the journal"
    );
    let entries = run.native();
    let find = |id: &str| {
        *entries
            .iter()
            .find(|e| field(e, "MESSAGE_ID") == id)
            .unwrap_or_else(|| panic!("no entry with MESSAGE_ID={id}:\n{}", run.dump()))
    };

    let installed = find(reconfd::logging::INSTALLED);
    assert_eq!(field(installed, "MESSAGE"), "installed");
    assert_eq!(field(installed, "PRIORITY"), "5");
    assert_eq!(field(installed, "SYSLOG_IDENTIFIER"), "reconfd");
    assert_eq!(field(installed, "RECONFD_RESOURCE"), "good");
    assert_eq!(
        field(installed, "RECONFD_DEST"),
        t.out().join("good.conf").display().to_string()
    );
    assert_eq!(field(installed, "RECONFD_REVISION"), rev.to_string());
    assert_eq!(field(installed, "SPAN_NAME"), "reconcile");
    // No field prefix: not F_RECONFD_RESOURCE.
    assert!(
        !installed.keys().any(|k| k.starts_with("F_")),
        "{installed:?}"
    );

    let check = find(reconfd::logging::CHECK_FAILED);
    assert_eq!(field(check, "MESSAGE"), "check_cmd failed");
    assert_eq!(field(check, "PRIORITY"), "4");
    assert_eq!(field(check, "RECONFD_RESOURCE"), "bad");
    assert_eq!(
        field(check, "RECONFD_DEST"),
        t.out().join("bad.conf").display().to_string()
    );
    assert_eq!(field(check, "OUTPUT"), "nope");
    // The error that follows, and everything else about `bad`, is filterable too.
    let bad: Vec<_> = entries
        .iter()
        .filter(|e| field(e, "RECONFD_RESOURCE") == "bad")
        .collect();
    assert!(
        bad.iter().any(|e| field(e, "PRIORITY") == "3"),
        "no error entry for bad: {bad:#?}"
    );

    // auto, with stderr connected to the journal as systemd does it: the native protocol
    // again, and nothing on the stream.
    let mut cmd = t.reconfd(Some(&etcd), &["once"]);
    cmd.env_remove("JOURNAL_STREAM");
    let run = private_run(&cmd, true, true);
    assert_eq!(run.status.code(), Some(1), "{}", run.wrapper);
    assert!(
        run.native()
            .iter()
            .any(|e| field(e, "MESSAGE_ID") == reconfd::logging::CHECK_FAILED),
        "no native entry under JOURNAL_STREAM:\n{}",
        run.dump()
    );
    assert_eq!(
        run.stream_lines(),
        Vec::<&BTreeMap<String, Vec<String>>>::new(),
        "auto under JOURNAL_STREAM wrote to stderr"
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
