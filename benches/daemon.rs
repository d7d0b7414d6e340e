//! Benchmarks of `reconfd run` and `reconfd once` against a real etcd on loopback. Prints
//! figures; asserts nothing. Run by hand: `cargo bench --bench daemon` (release build).
//!
//! Env: `BENCH_SAMPLES` (latency samples per size, default 120), `BENCH_IDLE_SECS` (idle
//! measurement, default 60), `BENCH_ONLY` (comma list of latency,idle,first,burst),
//! `BENCH_METRICS=1` (the metrics listener on and scraped every second).
//!
//! Method (as confd's figures in shared/research/confd.md §8 were taken): each sample PUTs a
//! unique value through etcd's JSON gateway (fresh connection), then polls the destination's
//! metadata until the file holds the value. "from start" is measured from just before the
//! PUT is sent, "from return" from when its response arrived. Percentiles are nearest-rank.

#[path = "../tests/util/mod.rs"]
mod util;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use util::{Etcd, Tree};

const TEMPLATE: &str = "upstream apache_pool {\n{% for s in getvs(pattern=\"/services/apache/*\") %}    server {{ s }};\n{% endfor %}}\n";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| "latency,idle,first,burst".into());
    let samples: usize = std::env::var("BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let idle_secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    if only.contains("latency") || only.contains("idle") {
        for n in [1usize, 100, 10_000] {
            latency(n, samples, only.contains("idle") && n == 10_000, idle_secs);
        }
    }
    if only.contains("first") {
        first_reconcile(100, 10_000);
    }
    if only.contains("burst") {
        burst(500, 2);
    }
}

fn spawn_run(t: &Tree, etcd: &Etcd) -> Child {
    let mut c = t.reconfd(Some(etcd), &["run", "--log-level", "warn"]);
    // BENCH_METRICS=1: the metrics listener on, scraped every second (a pessimistic
    // Prometheus), to compare with the default (off).
    let scrape = std::env::var_os("BENCH_METRICS").is_some_and(|v| v == "1");
    let port = util::free_port();
    if scrape {
        c.args(["--metrics-listen", &format!("127.0.0.1:{port}")]);
    }
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start reconfd run");
    if scrape {
        std::thread::spawn(move || {
            let mut misses = 0;
            while misses < 30 {
                match util::prometheus::http_get(port, "/metrics") {
                    Some(_) => misses = 0,
                    None => misses += 1,
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    child
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

fn wait_contains(path: &Path, needle: &str, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    let mut last = (0u64, 0i64, 0i64);
    loop {
        if let Ok(m) = std::fs::metadata(path) {
            let id = (m.ino(), m.mtime(), m.mtime_nsec());
            if id != last {
                last = id;
                if std::fs::read_to_string(path)
                    .map(|s| s.contains(needle))
                    .unwrap_or(false)
                {
                    return Instant::now();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never contained {needle}",
            path.display()
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        pct(&v, 50.0),
        pct(&v, 90.0),
        pct(&v, 99.0),
        v[v.len() - 1]
    )
}

/// Sums a Prometheus counter over all its label sets whose labels contain `filter`.
fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metrics(etcd: &Etcd) -> String {
    let port = etcd.endpoint.rsplit(':').next().unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

struct Counters {
    range: f64,
    txn: f64,
    sent: f64,
}

fn counters(etcd: &Etcd) -> Counters {
    let m = metrics(etcd);
    Counters {
        range: metric(&m, "grpc_server_handled_total", "grpc_method=\"Range\""),
        txn: metric(&m, "grpc_server_handled_total", "grpc_method=\"Txn\""),
        sent: metric(&m, "etcd_network_client_grpc_sent_bytes_total", ""),
    }
}

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / hz, rss_kb)
}

fn latency(n: usize, samples: usize, idle: bool, idle_secs: u64) {
    let etcd = Etcd::start();
    etcd.put_backends(n);
    let t = Tree::new();
    t.template("up.tera", TEMPLATE);
    t.resource(
        "up",
        "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\nreload_limit = \"none\"\n",
    );
    etcd.put("/services/apache/a1", "start:1");
    let child = spawn_run(&t, &etcd);
    let dest = t.out().join("up.conf");
    wait_contains(&dest, "start:1", Duration::from_secs(60));
    // Baseline: puts outside the watched prefix cost the gateway's own traffic only.
    let b0 = counters(&etcd);
    for i in 0..samples {
        etcd.put("/unwatched/x", &format!("b{i}"));
    }
    let b1 = counters(&etcd);
    let (mut from_start, mut from_return) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let value = format!("10.99.{}.{}:{}", i / 256, i % 256, 10000 + i);
        let t0 = Instant::now();
        etcd.put("/services/apache/a1", &value);
        let t1 = Instant::now();
        let t2 = wait_contains(&dest, &value, Duration::from_secs(10));
        from_start.push((t2 - t0).as_secs_f64() * 1000.0);
        from_return.push(t2.saturating_duration_since(t1).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(5 + (i as u64 * 7) % 20));
    }
    let b2 = counters(&etcd);
    let per = |a: f64, b: f64, c: f64| ((c - b) - (b - a)) / samples as f64;
    println!(
        "latency  keys={n:>6} n={samples}  from return p50/p90/p99/max ms: {}   from start: {}",
        summary(from_return),
        summary(from_start)
    );
    println!(
        "per change keys={n:>6}  Range RPCs {:.2}  Txn RPCs {:.2}  bytes sent by etcd {:.0}",
        per(b0.range, b1.range, b2.range),
        per(b0.txn, b1.txn, b2.txn),
        per(b0.sent, b1.sent, b2.sent)
    );
    if idle {
        let pid = child.id();
        let (cpu0, _) = proc_stat(pid);
        std::thread::sleep(Duration::from_secs(idle_secs));
        let (cpu1, rss) = proc_stat(pid);
        println!(
            "idle     keys={n:>6}  RSS {:.1} MB  CPU {:.2} s over {idle_secs} s",
            rss as f64 / 1024.0,
            cpu1 - cpu0
        );
    }
    stop(child);
}

#[allow(clippy::zombie_processes)] // the child is reaped by wait4
fn first_reconcile(resources: usize, n: usize) {
    let etcd = Etcd::start();
    etcd.put_backends(n);
    let t = Tree::new();
    t.template("up.tera", TEMPLATE);
    for i in 0..resources {
        t.resource(
            &format!("r{i:03}"),
            &format!("[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/r{i:03}.conf\"\nkeys = [\"/services/apache\"]\n"),
        );
    }
    for round in ["dest absent", "in sync"] {
        let started = Instant::now();
        let child = t
            .reconfd(Some(&etcd), &["once", "--log-level", "warn"])
            .spawn()
            .unwrap();
        // wait4 (which reaps the child, so `Child::wait` is not needed) gives this child's own peak RSS (getrusage of all children would include
        // etcd instances started and stopped earlier).
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
        let wall = started.elapsed();
        assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        println!(
            "first reconcile (once) {resources} resources x {n} keys, {round}: {:.3} s, peak RSS {:.1} MB",
            wall.as_secs_f64(),
            ru.ru_maxrss as f64 / 1024.0
        );
    }
}

fn burst(rate: u64, secs: u64) {
    let etcd = Etcd::start();
    let t = Tree::new();
    let reloads = t.root.path().join("reloads");
    t.template("up.tera", TEMPLATE);
    t.resource(
        "up",
        &format!(
            "[template]\nsrc = \"up.tera\"\ndest = \"@OUT@/up.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"500ms\"\nmax_wait = \"5s\"\nreload_limit = \"none\"\nreload_cmd = \"echo x >> {}\"\n",
            reloads.display()
        ),
    );
    etcd.put("/services/apache/a1", "start:1");
    let child = spawn_run(&t, &etcd);
    let dest = t.out().join("up.conf");
    wait_contains(&dest, "start:1", Duration::from_secs(30));
    let count = || {
        std::fs::read_to_string(&reloads)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let before = count();
    let total = rate * secs;
    let started = Instant::now();
    for i in 0..total {
        let due = started + Duration::from_micros(i * 1_000_000 / rate);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        etcd.put("/services/apache/a1", &format!("burst:{i}"));
    }
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    wait_contains(
        &dest,
        &format!("burst:{}", total - 1),
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(1500)); // bounded: let a stray extra render show up
    println!(
        "burst    {total} puts at {achieved:.0}/s, debounce 500ms, max_wait 5s: {} renders+reloads",
        count() - before
    );
    stop(child);
}
