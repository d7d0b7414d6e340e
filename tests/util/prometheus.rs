//! A real Prometheus server (Debian's `prometheus`) scraping one target on loopback, queried
//! through its HTTP API; `promtool check metrics`; a minimal HTTP GET for the daemon's
//! `/metrics`, `/healthz` and `/readyz`. Every wait is bounded; the server is killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, have_program, prerequisite, wait_for};

/// `GET path` on 127.0.0.1:`port`: the status code and body, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// Whether Prometheus and promtool are installed (a prerequisite under CI).
pub fn available() -> bool {
    prerequisite(
        have_program("prometheus") && have_program("promtool"),
        "prometheus is not installed (apt-get install prometheus), see .ci/install-deps",
    )
}

/// A Prometheus server scraping `127.0.0.1:TARGET/metrics` every second as job "reconfd".
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

impl Prometheus {
    /// Starts it and waits (at most 30 s) until it is ready.
    pub fn start(target: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: reconfd\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start prometheus");
        let p = Prometheus { child, dir, port };
        wait_for(Duration::from_secs(30), "prometheus to be ready", || {
            http_get(port, "/-/ready").filter(|(c, _)| *c == 200)
        });
        p
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/…`, parsed; `None` when it does not answer with success.
    fn api(&self, path: &str) -> Option<serde_json::Value> {
        let (code, body) = http_get(self.port, path)?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["status"] == "success").then_some(v)
    }

    /// An instant query: each series' labels and value.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Value, f64)> {
        let Some(v) = self.api(&format!("/api/v1/query?query={}", encode(expr))) else {
            return Vec::new();
        };
        v["data"]["result"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let value = r["value"][1].as_str()?.parse().ok()?;
                        Some((r["metric"].clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of `expr`, when it has exactly one series.
    pub fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Waits (at most `timeout`) until `expr` has one series and `want` holds for its value.
    pub fn wait_value(&self, timeout: Duration, expr: &str, want: impl Fn(f64) -> bool) -> f64 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.value(expr);
            if let Some(v) = got.filter(|v| want(*v)) {
                return v;
            }
            if std::time::Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting on {expr}: last value {got:?}; targets: {}", self.targets());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The active targets as Prometheus reports them (health, lastError, …).
    pub fn targets(&self) -> serde_json::Value {
        self.api("/api/v1/targets")
            .map(|v| v["data"]["activeTargets"].clone())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `promtool check metrics` on `exposition`: the problems it reports, except one that is
/// the format's and not ours. The exposition is OpenMetrics; promtool reads the Prometheus
/// text format, where a counter's samples carry the TYPE line's name, so it sees each
/// OpenMetrics counter sample (`x_total` under `# TYPE x counter`) as a metric without help.
/// Those lines are dropped when `x` is declared a counter; everything else is returned.
pub fn promtool_problems(exposition: &str) -> Vec<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let counter_artifact = l.strip_suffix(" no help text").is_some_and(|name| {
                name.strip_suffix("_total")
                    .is_some_and(|base| exposition.contains(&format!("# TYPE {base} counter\n")))
            });
            !counter_artifact
        })
        .map(str::to_owned)
        .collect()
}
