//! Fleet benchmark: one etcd, optionally etcd's gRPC proxy in front of it, N `reconfd run`
//! daemons (each its own confdir and destination, as N hosts would be) on one prefix of K
//! keys. Prints figures; asserts nothing. Run by hand, never in CI:
//!
//!     FLEET_N=100 FLEET_K=10000 FLEET_PROXY=1 cargo bench --bench fleet
//!
//! Env: `FLEET_N` hosts (default 10), `FLEET_K` keys (default 10000), `FLEET_PROXY` 1 to put
//! a gRPC proxy between the hosts and etcd (default 0), `FLEET_READ` the hosts' `[etcd] read`
//! (default `serializable` with the proxy, `linearizable` without), `FLEET_CHANGES` single-key
//! changes measured (default 20), `FLEET_BURST` puts in the burst (default 200),
//! `FLEET_SPREAD_MS` spreads the daemons' starts evenly over that many milliseconds (default
//! 0: all at once), `FLEET_RECONFD` the reconfd binary to run (default: the one this bench was built with; an
//! older build works with `FLEET_READ=linearizable`, which writes no `read` key).
//!
//! What it reports, each from etcd's own `/metrics` where it says so:
//! - start: time from spawning every daemon at once until every destination is rendered;
//!   bytes etcd sent for that start (`etcd_network_client_grpc_sent_bytes_total`) and the
//!   Range/Txn calls etcd handled (`grpc_server_handled_total`);
//! - etcd's watch streams and watchers once every host follows
//!   (`etcd_debugging_mvcc_watch_stream_total`, `etcd_debugging_mvcc_watcher_total`);
//! - per single-key change (one at a time, each waited for on every host): bytes etcd sent,
//!   etcd's CPU seconds (`process_cpu_seconds_total`), and the time from the put until each
//!   host's file has the change, p50/p99 over hosts × changes;
//! - a burst of puts to one key as fast as the JSON gateway takes them: how long until every
//!   host has the last value, and how many hosts still lack it 10 s after the last put.
//!
//! Every destination starts with the marker key's value, so a host has "the change" when its
//! file's first line names the new marker; the rest of the file is the K backends.

#[path = "../tests/util/mod.rs"]
mod util;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use util::{Daemon, Etcd, Proxy, Tree};

const TEMPLATE: &str = "marker {{ getv(key=\"/services/apache/marker\") }}\n{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let n: usize = env("FLEET_N", "10").parse().expect("FLEET_N");
    let k: usize = env("FLEET_K", "10000").parse().expect("FLEET_K");
    let with_proxy = env("FLEET_PROXY", "0") == "1";
    let read = env(
        "FLEET_READ",
        if with_proxy {
            "serializable"
        } else {
            "linearizable"
        },
    );
    let changes: usize = env("FLEET_CHANGES", "20").parse().expect("FLEET_CHANGES");
    let burst: usize = env("FLEET_BURST", "200").parse().expect("FLEET_BURST");
    let bin = std::env::var("FLEET_RECONFD").ok();
    let spread: u64 = env("FLEET_SPREAD_MS", "0")
        .parse()
        .expect("FLEET_SPREAD_MS");
    println!(
        "fleet: N={n} K={k} proxy={with_proxy} read={read} spread={spread}ms reconfd={}; load: {}",
        bin.as_deref().unwrap_or(env!("CARGO_BIN_EXE_reconfd")),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    let etcd = Etcd::start_with(&["--max-txn-ops", "1024"]);
    etcd.put_backends(k);
    etcd.put("/services/apache/marker", "m0");
    let proxy = with_proxy.then(|| Proxy::start(&etcd));
    let endpoint = proxy
        .as_ref()
        .map_or(etcd.endpoint.clone(), |p| p.endpoint.clone());

    let hosts: Vec<(Tree, PathBuf)> = (0..n)
        .map(|_| {
            let t = Tree::new();
            t.template("app.tera", TEMPLATE);
            t.resource(
                "app",
                "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\n",
            );
            let cfg = t.root.path().join("reconfd.toml");
            let text = match read.as_str() {
                "linearizable" => String::new(),
                _ => format!("[etcd]\nread = \"{read}\"\n"),
            };
            std::fs::write(&cfg, text).unwrap();
            (t, cfg)
        })
        .collect();
    let dests: Vec<PathBuf> = hosts
        .iter()
        .map(|(t, _)| t.out().join("app.conf"))
        .collect();

    // Simultaneous start.
    let before = Metrics::take(&etcd);
    let t0 = Instant::now();
    let daemons: Vec<Daemon> = hosts
        .iter()
        .enumerate()
        .map(|(i, (t, cfg))| {
            let due = t0 + Duration::from_millis(spread * i as u64 / n as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let mut c = match &bin {
                Some(bin) => {
                    let mut c = std::process::Command::new(bin);
                    c.env("RECONFD_CONFIG", "/dev/null")
                        .stdin(std::process::Stdio::null())
                        .args(["run", "--log-level", "warn", "--confdir"])
                        .arg(t.confdir());
                    c
                }
                None => t.reconfd(None, &["run", "--log-level", "warn"]),
            };
            c.arg("--config").arg(cfg).args(["--endpoint", &endpoint]);
            Daemon::spawn(c)
        })
        .collect();
    let (done, stale) = wait_all_from(&dests, "m0", Duration::from_secs(120), t0);
    let start_secs = t0.elapsed().as_secs_f64();
    if stale > 0 {
        println!("start: {stale} of {n} hosts never rendered in 120 s");
    }
    // Let the watches settle (their creation is part of the start's cost).
    std::thread::sleep(Duration::from_secs(2));
    let after = Metrics::take(&etcd);
    println!(
        "start: every host rendered in {:.2} s (slowest host {:.2} s); etcd sent {} for it; Range calls {}, Txn calls {}",
        start_secs,
        done.iter().cloned().fold(0.0, f64::max),
        bytes(after.sent - before.sent),
        after.range - before.range,
        after.txn - before.txn
    );
    println!(
        "watch: etcd holds {} watch stream(s), {} watcher(s) for {n} hosts",
        after.streams, after.watchers
    );

    // Single-key changes, one at a time.
    let before = Metrics::take(&etcd);
    let mut lat = Vec::new();
    for i in 1..=changes {
        let marker = format!("c{i}");
        let t0 = Instant::now();
        etcd.put("/services/apache/marker", &marker);
        let (times, stale) = wait_all_from(&dests, &marker, Duration::from_secs(30), t0);
        assert_eq!(stale, 0, "{stale} hosts never got change {marker}");
        lat.extend(times);
    }
    let after = Metrics::take(&etcd);
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "change: per single-key change etcd sent {} and used {:.1} ms CPU; every host had it: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        bytes((after.sent - before.sent) / changes as f64),
        (after.cpu - before.cpu) * 1000.0 / changes as f64,
        pct(&lat, 50.0) * 1000.0,
        pct(&lat, 99.0) * 1000.0,
        lat[lat.len() - 1] * 1000.0,
        lat.len()
    );

    // A burst of puts to one key.
    let t0 = Instant::now();
    for i in 1..=burst {
        etcd.put("/services/apache/marker", &format!("b{i}"));
    }
    let put_secs = t0.elapsed().as_secs_f64();
    let last = format!("b{burst}");
    let t1 = Instant::now();
    let (times, stale) = wait_all_from(&dests, &last, Duration::from_secs(10), t1);
    println!(
        "burst: {burst} puts in {put_secs:.2} s; {stale} of {n} hosts stale 10 s after the last put; the rest had the last value after {:.1} ms at most",
        times.iter().cloned().fold(0.0, f64::max) * 1000.0
    );
    drop(daemons);
    drop(proxy);
}

/// Whether `path`'s first line is `marker MARKER`.
fn has(path: &Path, marker: &str) -> bool {
    let mut buf = [0u8; 64];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = f.read(&mut buf) else {
        return false;
    };
    let line = buf[..len].split(|b| *b == b'\n').next().unwrap_or(&[]);
    line == format!("marker {marker}").as_bytes()
}

/// Polls every destination until each has `marker` or `timeout` passes; returns the seconds
/// from `t0` at which each host had it, and how many never did.
fn wait_all_from(
    dests: &[PathBuf],
    marker: &str,
    timeout: Duration,
    t0: Instant,
) -> (Vec<f64>, usize) {
    let mut when: Vec<Option<f64>> = vec![None; dests.len()];
    let deadline = Instant::now() + timeout;
    while when.iter().any(Option::is_none) && Instant::now() < deadline {
        for (d, w) in dests.iter().zip(when.iter_mut()) {
            if w.is_none() && has(d, marker) {
                *w = Some(t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let stale = when.iter().filter(|w| w.is_none()).count();
    (when.into_iter().flatten().collect(), stale)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

/// The figures read from etcd's `/metrics`.
struct Metrics {
    sent: f64,
    range: f64,
    txn: f64,
    cpu: f64,
    streams: f64,
    watchers: f64,
}

impl Metrics {
    fn take(etcd: &Etcd) -> Metrics {
        let text = etcd.get_text("/metrics");
        Metrics {
            sent: metric(&text, "etcd_network_client_grpc_sent_bytes_total", ""),
            range: metric(&text, "grpc_server_handled_total", "grpc_method=\"Range\""),
            txn: metric(&text, "grpc_server_handled_total", "grpc_method=\"Txn\""),
            cpu: metric(&text, "process_cpu_seconds_total", ""),
            streams: metric(&text, "etcd_debugging_mvcc_watch_stream_total", ""),
            watchers: metric(&text, "etcd_debugging_mvcc_watcher_total", ""),
        }
    }
}

/// Sums a Prometheus series over all its label sets whose labels contain `filter`.
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
