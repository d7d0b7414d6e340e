//! Test helpers: a real etcd on loopback, talked to through its JSON gateway, and the
//! reconfd binary. Every wait is bounded; every process is stopped on drop.
#![allow(dead_code)]

pub mod dns;
pub mod prometheus;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
pub mod restore;

pub mod nginx;

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take). One test
/// binary never hands out the same port twice: its tests run in parallel, and the kernel may
/// give a port just released here to another test's `bind(0)` before the first child took it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Whether this run is CI's (`CI=true`, as `.ci/run` is run): there a missing prerequisite
/// fails the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A test's prerequisite: returns `true` when `available`. When it is not, under CI this
/// panics (the machine lacks something `.ci/install-deps` should have provided); elsewhere it
/// prints `SKIPPED: TEST: WHY` straight to the process's stderr, where `cargo test` shows it
/// even for a passing test (its capture only takes `print!`/`eprint!`), and returns `false`
/// so the caller returns.
///
/// ```ignore
/// if !util::prerequisite(have_strace, "strace is not installed (apt-get install strace)") {
///     return;
/// }
/// ```
#[track_caller]
pub fn prerequisite(available: bool, why: &str) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if in_ci() {
        panic!("{test}: prerequisite missing under CI: {why}");
    }
    let line = format!("SKIPPED: {test}: {why} (under CI=true this fails)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Whether `program` is on PATH (or is an executable path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
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
    /// Extra etcd arguments, kept so a restart starts the same server.
    extra: Vec<String>,
    /// The TLS listener's port, when started with [`Etcd::start_tls`].
    tls_port: Option<u16>,
    /// root's password once [`Etcd::enable_auth`] ran: the helpers then act as root.
    root_password: Option<String>,
    /// How many times the helpers logged in as root since etcd (re)started, so
    /// [`Etcd::logins_by_others`] can tell reconfd's logins from ours.
    own_logins: std::sync::atomic::AtomicUsize,
}

impl Etcd {
    /// Starts etcd and waits (at most 20 s) until it answers.
    pub fn start() -> Etcd {
        Self::launch(&[], None)
    }

    /// Starts etcd with extra arguments, e.g. `["--auth-token-ttl", "2"]`.
    pub fn start_with(args: &[&str]) -> Etcd {
        Self::launch(args, None)
    }

    /// Starts etcd with a TLS client listener ([`Etcd::tls_endpoint`]) besides the plain one
    /// ([`Etcd::endpoint`]) that the helpers keep using.
    pub fn start_tls(tls: &ServerTls) -> Etcd {
        let mut args = vec![
            "--cert-file".to_owned(),
            tls.cert.display().to_string(),
            "--key-file".to_owned(),
            tls.key.display().to_string(),
        ];
        if let Some(ca) = &tls.client_ca {
            args.push("--trusted-ca-file".into());
            args.push(ca.display().to_string());
            args.push("--client-cert-auth".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::launch(&args, Some(free_port()))
    }

    fn launch(args: &[&str], tls_port: Option<u16>) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let extra: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn_etcd(dir.path(), port, peer, tls_port, &extra, log);
        let mut etcd = Etcd {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            peer,
            extra,
            tls_port,
            root_password: None,
            own_logins: Default::default(),
        };
        etcd.wait_ready();
        etcd
    }

    /// etcd's process id, e.g. to SIGSTOP it (a hung member: its sockets stay open but
    /// nothing answers) and SIGCONT it again. A stopped etcd still dies on drop (SIGKILL).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// `https://127.0.0.1:PORT` of a server started with [`Etcd::start_tls`].
    pub fn tls_endpoint(&self) -> String {
        format!(
            "https://127.0.0.1:{}",
            self.tls_port.expect("etcd was not started with TLS")
        )
    }

    /// `https://HOST:PORT` of the TLS listener, for a host name the certificate may carry.
    pub fn tls_endpoint_as(&self, host: &str) -> String {
        format!(
            "https://{host}:{}",
            self.tls_port.expect("etcd was not started with TLS")
        )
    }

    /// Runs `etcdctl ARGS` against the plain listener (as root once auth is enabled), with
    /// `stdin` as its input; panics on failure. Returns stdout.
    pub fn etcdctl_in(&self, args: &[&str], stdin: &str) -> String {
        if self.root_password.is_some() {
            self.own_logins
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        etcdctl_at(&self.endpoint, self.root_password.as_deref(), args, stdin)
    }

    /// Runs `etcdctl ARGS`; see [`Etcd::etcdctl_in`].
    pub fn etcdctl(&self, args: &[&str]) -> String {
        self.etcdctl_in(args, "")
    }

    /// Creates user root with `root_password` and turns authentication on, as
    /// docs/operations.md does. From now on the helpers (put, delete, …) log in as root.
    pub fn enable_auth(&mut self, root_password: &str) {
        self.etcdctl_in(
            &["user", "add", "root", "--interactive=false"],
            &format!("{root_password}\n"),
        );
        self.etcdctl(&["auth", "enable"]);
        self.root_password = Some(root_password.to_owned());
    }

    /// Creates role `ROLE` with read permission on each of `prefixes` (etcd key prefixes)
    /// and user `name` with that role, as docs/operations.md does.
    pub fn add_reader(&self, name: &str, password: &str, role: &str, prefixes: &[&str]) {
        self.etcdctl(&["role", "add", role]);
        for p in prefixes {
            self.etcdctl(&["role", "grant-permission", role, "--prefix=true", "read", p]);
        }
        self.etcdctl_in(
            &["user", "add", name, "--interactive=false"],
            &format!("{password}\n"),
        );
        self.etcdctl(&["user", "grant-role", name, role]);
    }

    /// Waits (at most 20 s) until etcd answers a read; fails at once, with etcd's log, when
    /// the process exits first (say its port was taken).
    fn wait_ready(&mut self) {
        let timeout = Duration::from_secs(20);
        let deadline = Instant::now() + timeout;
        loop {
            let answered = self
                .try_post("/v3/kv/range", r#"{"key":"AA=="}"#)
                .is_ok_and(|b| b.contains("header"));
            if answered {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "etcd exited ({status}) before answering; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "etcd did not answer within {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
        self.respawn();
    }

    /// Starts etcd again on its data dir, ports and arguments (after it stopped), appending to
    /// its log, and waits until it answers.
    fn respawn(&mut self) {
        // etcd's counters start again from zero.
        self.own_logins
            .store(0, std::sync::atomic::Ordering::SeqCst);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        // The ports were ours a moment ago; etcd sets SO_REUSEADDR, so they bind again at once.
        self.child = spawn_etcd(
            self.dir.path(),
            self.port,
            self.peer,
            self.tls_port,
            &self.extra,
            log,
        );
        self.wait_ready();
    }

    fn try_post(&self, path: &str, body: &str) -> std::io::Result<String> {
        // Once auth is on, every call logs in as root first (a fresh token, so the tests'
        // own writes never keep another client's token alive).
        let auth = match &self.root_password {
            Some(pw) => {
                let resp = self.raw_post(
                    "/v3/auth/authenticate",
                    &format!(r#"{{"name":"root","password":"{pw}"}}"#),
                    "",
                )?;
                if resp.starts_with("HTTP/1.1 200") {
                    self.own_logins
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                token_header(&resp).ok_or_else(|| {
                    std::io::Error::other(format!("etcd authenticate: no token in {resp}"))
                })?
            }
            None => String::new(),
        };
        self.raw_post(path, body, &auth)
    }

    fn raw_post(&self, path: &str, body: &str, headers: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

    /// Registers `n` backends `/services/apache/kNNNNN = 10.a.b.c:80`, 100 to a transaction:
    /// the benchmarks' load.
    pub fn put_backends(&self, n: usize) {
        let keys: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    format!("/services/apache/k{i:05}"),
                    format!("10.{}.{}.{}:80", i / 65536, (i / 256) % 256, i % 256),
                )
            })
            .collect();
        for chunk in keys.chunks(100) {
            let refs: Vec<(&str, &str)> = chunk
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.put_all(&refs);
        }
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

    /// Successful logins (gRPC `Authenticate` calls answered OK) since etcd last (re)started,
    /// less the helpers' own: the logins of the clients under test.
    pub fn logins_by_others(&self) -> f64 {
        let text = self.get_text("/metrics");
        let total: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("grpc_server_handled_total{")
                    && l.contains("grpc_method=\"Authenticate\"")
                    && l.contains("grpc_code=\"OK\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        total - self.own_logins.load(std::sync::atomic::Ordering::SeqCst) as f64
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

fn spawn_etcd(
    dir: &Path,
    port: u16,
    peer: u16,
    tls_port: Option<u16>,
    extra: &[String],
    log: std::fs::File,
) -> Child {
    let mut client_url = format!("http://127.0.0.1:{port}");
    if let Some(tls) = tls_port {
        client_url = format!("{client_url},https://127.0.0.1:{tls}");
    }
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
        .args(extra)
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

/// The `Authorization:` header line carrying the token of a JSON-gateway
/// `/v3/auth/authenticate` response (whole HTTP response), `None` when it has none.
pub fn token_header(response: &str) -> Option<String> {
    let body = response.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(format!("Authorization: {}\r\n", v["token"].as_str()?))
}

/// Runs `etcdctl ARGS` against `endpoints` (comma-separated), as root when `root_password`
/// is given, with `stdin` as its input; panics on failure. Returns stdout.
pub fn etcdctl_at(
    endpoints: &str,
    root_password: Option<&str>,
    args: &[&str],
    stdin: &str,
) -> String {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3").args(["--endpoints", endpoints]);
    if let Some(pw) = root_password {
        c.arg(format!("--user=root:{pw}"));
    }
    let mut child = c
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run etcdctl (Debian: apt-get install etcd-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        // `run`'s control socket, per tree instead of /run/reconfd/control.sock.
        c.env(
            "RECONFD_CONTROL_SOCKET",
            self.root.path().join("control.sock"),
        );
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

    /// Waits until `path` holds exactly `want`; what it holds (its first 200 characters) and
    /// the daemon's log are in the panic message.
    pub fn wait_content(&self, timeout: Duration, path: &Path, want: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = std::fs::read_to_string(path).ok();
            if got.as_deref() == Some(want) {
                return;
            }
            if Instant::now() > deadline {
                let shown = got.map(|g| g.chars().take(200).collect::<String>());
                panic!(
                    "timed out after {timeout:?} waiting for {} to hold {want:?}; it holds {shown:?}\ndaemon log:\n{}",
                    path.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// The files of an etcd server with TLS: its certificate and key, and the CA that signs the
/// client certificates it requires (`--client-cert-auth`), if any.
pub struct ServerTls {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
    /// CA for client certificates; `None` means none are required.
    pub client_ca: Option<PathBuf>,
}

/// How a test key is encoded.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// RSA in PKCS#8 (`BEGIN PRIVATE KEY`).
    RsaPkcs8,
    /// RSA in PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    RsaPkcs1,
    /// EC P-256 in SEC1 (`BEGIN EC PRIVATE KEY`).
    EcSec1,
}

/// A private PKI in a temporary directory, made with the openssl CLI as docs/operations.md
/// shows.
pub struct Pki {
    /// Holds every file.
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// An empty directory.
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("cannot run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed CA: `NAME.pem` and `NAME-key.pem`; returns the certificate's path.
    pub fn ca(&self, name: &str) -> PathBuf {
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.path(&format!("{name}.pem"))
    }

    /// A certificate `NAME.pem` with key `NAME-key.pem`, signed by CA `ca`, with the
    /// extensions `ext` (openssl syntax, e.g. `subjectAltName=IP:127.0.0.1`). Returns
    /// (certificate, key).
    pub fn issue(&self, ca: &str, name: &str, kind: KeyKind, ext: &str) -> (PathBuf, PathBuf) {
        let key = format!("{name}-key.pem");
        match kind {
            KeyKind::RsaPkcs8 => self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &key,
            ]),
            KeyKind::RsaPkcs1 => self.openssl(&["genrsa", "-traditional", "-out", &key, "2048"]),
            KeyKind::EcSec1 => self.openssl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ]),
        }
        std::fs::write(self.path(&format!("{name}.ext")), format!("{ext}\n")).unwrap();
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
        (self.path(&format!("{name}.pem")), self.path(&key))
    }
}

/// etcd's gRPC proxy (`etcd grpc-proxy start`, in Debian's etcd-server) in front of an
/// [`Etcd`], on a free port with its own data directory. Dropping it kills the proxy.
pub struct Proxy {
    child: Child,
    /// Holds the proxy's data directory and its log.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, or `https://…` when started with TLS arguments.
    pub endpoint: String,
    port: u16,
    /// The arguments after `start`, kept so a restart starts the same proxy.
    args: Vec<String>,
}

impl Proxy {
    /// A proxy for `etcd`'s plain listener, waited for (at most 20 s).
    pub fn start(etcd: &Etcd) -> Proxy {
        Self::start_with(etcd, &[])
    }

    /// A proxy with extra arguments, e.g. `--cert-file F --key-file F` for TLS towards its
    /// clients (the endpoint is then `https://`).
    pub fn start_with(etcd: &Etcd, extra: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let upstream = etcd.endpoint.trim_start_matches("http://").to_owned();
        let mut args: Vec<String> = vec![
            "--endpoints".into(),
            upstream,
            "--listen-addr".into(),
            format!("127.0.0.1:{port}"),
            "--advertise-client-url".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let tls = extra.contains(&"--cert-file");
        let scheme = if tls { "https" } else { "http" };
        let child = Self::spawn(dir.path(), &args);
        let mut proxy = Proxy {
            child,
            dir,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            port,
            args,
        };
        proxy.wait_ready();
        proxy
    }

    fn spawn(dir: &Path, args: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("proxy.log"))
            .unwrap();
        Command::new(etcd_binary())
            .args(["grpc-proxy", "start"])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start etcd grpc-proxy")
    }

    /// Waits (at most 20 s) until the proxy accepts connections; fails at once, with its
    /// log, when it exits first.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "etcd grpc-proxy exited ({status}); its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "etcd grpc-proxy did not listen within 20 s; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the proxy (its clients' connections break) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a stopped proxy again on the same port and arguments (its cache starts empty).
    pub fn start_again(&mut self) {
        self.child = Self::spawn(self.dir.path(), &self.args);
        self.wait_ready();
    }

    /// The proxy's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}
