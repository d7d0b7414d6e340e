//! Test helpers: a real etcd on loopback, talked to through its JSON gateway, and the
//! reconfd binary. Every wait is bounded; every process is stopped on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn etcd_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let p = Path::new(dir).join("etcd");
        if p.is_file() {
            return p;
        }
    }
    panic!("etcd is not installed: these tests need a real etcd (Debian: apt-get install etcd-server), see .ci/install-deps");
}

/// One etcd member on 127.0.0.1 with free ports and a temporary data directory.
pub struct Etcd {
    child: Child,
    /// Holds the data directory and the log.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    port: u16,
    peer: u16,
}

impl Etcd {
    /// Starts etcd and waits (at most 20 s) until it answers.
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = spawn_etcd(dir.path(), port, peer, log);
        let etcd = Etcd {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            peer,
        };
        etcd.wait_ready();
        etcd
    }

    /// etcd's process id, e.g. to SIGSTOP it (a hung member: its sockets stay open but
    /// nothing answers) and SIGCONT it again. A stopped etcd still dies on drop (SIGKILL).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn wait_ready(&self) {
        wait_for(Duration::from_secs(20), "etcd to answer", || {
            self.try_post("/v3/kv/range", r#"{"key":"AA=="}"#)
                .ok()
                .filter(|b| b.contains("header"))
        });
    }

    /// Stops etcd (SIGTERM, then waits) and starts it again on the same ports and data
    /// directory; returns once it answers (at most 20 s). Its log is appended to.
    pub fn restart(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        // The ports were ours a moment ago; etcd sets SO_REUSEADDR, so they bind again at once.
        self.child = spawn_etcd(self.dir.path(), self.port, self.peer, log);
        self.wait_ready();
    }

    fn try_post(&self, path: &str, body: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// POSTs to the JSON gateway and returns the body; panics on a non-200 answer.
    pub fn post(&self, path: &str, body: &str) -> String {
        let resp = self
            .try_post(path, body)
            .unwrap_or_else(|e| panic!("etcd {path}: {e}"));
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "etcd {path} {body}: {resp}"
        );
        resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
    }

    /// Writes a key.
    pub fn put(&self, key: &str, value: &str) {
        self.post(
            "/v3/kv/put",
            &format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value)),
        );
    }

    /// Writes several keys in one transaction (one revision).
    pub fn put_all(&self, kvs: &[(&str, &str)]) {
        let ops: Vec<String> = kvs
            .iter()
            .map(|(k, v)| {
                format!(
                    r#"{{"request_put":{{"key":"{}","value":"{}"}}}}"#,
                    b64(k),
                    b64(v)
                )
            })
            .collect();
        self.post(
            "/v3/kv/txn",
            &format!(r#"{{"success":[{}]}}"#, ops.join(",")),
        );
    }

    /// Deletes a key.
    pub fn delete(&self, key: &str) {
        self.post(
            "/v3/kv/deleterange",
            &format!(r#"{{"key":"{}"}}"#, b64(key)),
        );
    }

    /// The log etcd wrote, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The store's current revision, from a range response's header.
    pub fn revision(&self) -> i64 {
        let body = self.post("/v3/kv/range", r#"{"key":"AA=="}"#);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        int64(&v["header"]["revision"]).unwrap_or_else(|| panic!("no revision in {body}"))
    }

    /// Compacts the history up to `revision` (physically, so it is gone when this returns).
    pub fn compact(&self, revision: i64) {
        self.post(
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
    }

    /// Writes a key attached to a new lease of `ttl_secs` (the key vanishes when the lease
    /// expires, as a sidekick's registration does when it stops refreshing). Returns the lease id.
    pub fn put_with_lease(&self, key: &str, value: &str, ttl_secs: i64) -> i64 {
        let body = self.post("/v3/lease/grant", &format!(r#"{{"TTL":"{ttl_secs}"}}"#));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let id = int64(&v["ID"]).unwrap_or_else(|| panic!("no lease ID in {body}"));
        self.post(
            "/v3/kv/put",
            &format!(
                r#"{{"key":"{}","value":"{}","lease":"{id}"}}"#,
                b64(key),
                b64(value)
            ),
        );
        id
    }

    /// GETs a path (e.g. `/metrics`) from the client port and returns the body.
    pub fn get_text(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "etcd GET {path}: {out}");
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
    }

    /// A gauge or counter from etcd's `/metrics` (the sum of its series), e.g.
    /// `etcd_debugging_mvcc_watcher_total`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get_text("/metrics");
        let mut found = None;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
            let series_name = series.split('{').next().unwrap_or("");
            if series_name == name {
                *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
            }
        }
        found.unwrap_or_else(|| panic!("etcd has no metric {name}"))
    }
}

fn spawn_etcd(dir: &Path, port: u16, peer: u16, log: std::fs::File) -> Child {
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    Command::new(etcd_binary())
        .args(["--name", "t", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("t={peer_url}")])
        .args(["--log-level", "warn", "--logger", "zap"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("cannot start etcd")
}

/// The JSON gateway writes int64 fields as strings; accepts either form.
fn int64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        v => v.as_i64(),
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The reconfd binary under test, with no config file of the host's leaking in.
pub fn reconfd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reconfd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RECONFD_") {
            c.env_remove(k);
        }
    }
    c.env("RECONFD_CONFIG", "/dev/null").stdin(Stdio::null());
    c
}

/// Runs a command to completion with a bounded wait (60 s), killing it if it hangs.
pub fn run(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish in 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A confdir in a temporary directory: write resources and templates into it.
pub struct Tree {
    /// The temporary root; `confdir()` and `out()` live inside.
    pub root: tempfile::TempDir,
}

impl Tree {
    /// An empty tree with `conf.d/`, `templates/` and `out/`.
    pub fn new() -> Tree {
        let root = tempfile::tempdir().unwrap();
        for d in ["conf/conf.d", "conf/templates", "out"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        Tree { root }
    }
    /// The confdir.
    pub fn confdir(&self) -> PathBuf {
        self.root.path().join("conf")
    }
    /// Where tests point their destinations.
    pub fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }
    /// Writes `conf.d/NAME.toml`; `@OUT@` in the text becomes the out directory.
    pub fn resource(&self, name: &str, text: &str) -> PathBuf {
        let p = self.confdir().join("conf.d").join(format!("{name}.toml"));
        std::fs::write(&p, text.replace("@OUT@", &self.out().display().to_string())).unwrap();
        p
    }
    /// Writes `templates/NAME`.
    pub fn template(&self, name: &str, text: &str) {
        std::fs::write(self.confdir().join("templates").join(name), text).unwrap();
    }
    /// Reads `out/NAME`.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out().join(name)).unwrap_or_else(|e| panic!("out/{name}: {e}"))
    }
    /// Files in `out/`, sorted (to prove no staged file was left).
    pub fn out_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.out())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
    /// `reconfd SUBCOMMAND --confdir … --endpoint …`.
    pub fn reconfd(&self, etcd: Option<&Etcd>, args: &[&str]) -> Command {
        let mut c = reconfd();
        c.args(args).arg("--confdir").arg(self.confdir());
        if let Some(e) = etcd {
            c.args(["--endpoint", &e.endpoint]);
        }
        c
    }
}

/// A running `reconfd run`: stdout and stderr go to a log file in a temporary directory.
/// Dropping it kills the process (SIGKILL) and reaps it, so no test leaves a daemon behind.
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Spawns `cmd` (normally [`Tree::daemon`]'s) with its output captured to the log.
    pub fn spawn(mut cmd: Command) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start reconfd run");
        Daemon {
            child,
            dir,
            status: None,
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `sig` to the daemon (only to it, not to its commands' process groups).
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(self.pid(), sig)
            .unwrap_or_else(|e| panic!("cannot send {sig} to reconfd: {e}"));
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until at least `n` log lines contain `needle`; the log is in the panic message.
    pub fn wait_log(&self, timeout: Duration, needle: &str, n: usize) {
        let deadline = Instant::now() + timeout;
        while self.log_count(needle) < n {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {n} log line(s) with {needle:?}; daemon log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 20 s) until the first reconcile of every resource is done: the daemon's
    /// READY point, which it logs as "first reconcile done; ready".
    pub fn wait_ready(&self) {
        self.wait_log(Duration::from_secs(20), READY, 1);
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "reconfd did not exit within {timeout:?}; daemon log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What `reconfd run` logs once every resource had its first reconcile.
pub const READY: &str = "first reconcile done; ready";

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() {
            // A stopped (SIGSTOP) process dies of SIGKILL too.
            let _ = nix::sys::signal::kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Tree {
    /// Starts `reconfd run --confdir … --endpoint … EXTRA…` under a [`Daemon`] guard.
    pub fn daemon(&self, etcd: &Etcd, extra: &[&str]) -> Daemon {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        Daemon::spawn(self.reconfd(Some(etcd), &args))
    }
}
