//! Test helpers: a real etcd on loopback, talked to through its JSON gateway, and the
//! reconfd binary. Every wait is bounded; every process is stopped on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

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
}

impl Etcd {
    /// Starts etcd and waits (at most 20 s) until it answers.
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(etcd_binary())
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
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
            .expect("cannot start etcd");
        let etcd = Etcd {
            child,
            dir,
            endpoint: client_url,
            port,
        };
        wait_for(Duration::from_secs(20), "etcd to answer", || {
            etcd.try_post("/v3/kv/range", r#"{"key":"AA=="}"#)
                .ok()
                .filter(|b| b.contains("header"))
        });
        etcd
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
