//! Watching a running daemon: Prometheus metrics scraped by a real Prometheus, `/healthz`
//! and `/readyz`, and `reconfd status`/`approve` over the control socket (issue 13).
//!
//! Real parts: etcd on loopback, Prometheus (Debian's package) scraping the daemon every
//! second, promtool, a second user (`nobody`, through setpriv) for the socket's refusal. Every
//! wait is bounded; the one plain sleep proves for a stated time that nothing changed.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;
use util::prometheus::{self, http_get, Prometheus};
use util::{free_port, have_program, prerequisite, wait_for, Daemon, Etcd, Tree};

/// Long enough for any single event on a loaded machine; never reached when things work.
const EVENT: Duration = Duration::from_secs(30);

const TEMPLATE: &str = "{% for v in getvs(pattern=\"/svc/*\") %}{{ v }}\n{% endfor %}";

/// `conf.d/NAME.toml` rendering `/svc/*` into `out/NAME.conf` with `extra` fields; no
/// debounce, so each change is reconciled at once.
fn resource(t: &Tree, name: &str, extra: &str) {
    t.template("svc.tera", TEMPLATE);
    t.resource(
        name,
        &format!("[template]\nsrc = \"svc.tera\"\ndest = \"@OUT@/{name}.conf\"\nkeys = [\"/svc\"]\ndebounce = \"0\"\n{extra}"),
    );
}

/// A check that fails while any value reads "broken".
const CHECK_NOT_BROKEN: &str = "check_cmd = \"! grep -q broken {{.src}}\"\n";

fn wait_http(d: &Daemon, port: u16, path: &str, code: u16) -> String {
    let deadline = std::time::Instant::now() + EVENT;
    loop {
        let got = http_get(port, path);
        if let Some((c, body)) = &got {
            if *c == code {
                return body.clone();
            }
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {path} to answer {code}; last {got:?}; daemon log:\n{}",
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn prometheus_scrapes_states_and_counters_that_follow_etcd() {
    if !prometheus::available() {
        return;
    }
    let etcd = Etcd::start();
    etcd.put("/svc/a", "10.0.0.1:80");
    let t = Tree::new();
    resource(&t, "good", "");
    resource(&t, "picky", CHECK_NOT_BROKEN);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let sock = t.root.path().join("control.sock");
    let d = t.daemon(
        &etcd,
        &[
            "--metrics-listen",
            &listen,
            "--control-socket",
            sock.to_str().unwrap(),
        ],
    );
    d.wait_ready();
    let prom = Prometheus::start(port);

    let state =
        |r: &str, s: &str| format!("reconfd_resource_state{{resource=\"{r}\",state=\"{s}\"}}");
    let installs = "reconfd_resource_installs_total{resource=\"good\"}";
    prom.wait_value(EVENT, &state("picky", "in_sync"), |v| v == 1.0);
    prom.wait_value(EVENT, installs, |v| v == 1.0);

    // One change breaks picky's check and installs a new file for good.
    etcd.put("/svc/b", "broken");
    prom.wait_value(EVENT, &state("picky", "failing"), |v| v == 1.0);
    assert_eq!(prom.value(&state("picky", "in_sync")), Some(0.0));
    prom.wait_value(EVENT, installs, |v| v == 2.0);
    prom.wait_value(
        EVENT,
        "reconfd_resource_check_failures_total{resource=\"picky\"}",
        |v| v >= 1.0,
    );
    assert_eq!(prom.value(&state("good", "in_sync")), Some(1.0));
    // The fix brings it back.
    etcd.put("/svc/b", "10.0.0.2:80");
    prom.wait_value(EVENT, &state("picky", "in_sync"), |v| v == 1.0);
    assert_eq!(
        prom.value("reconfd_etcd_connected"),
        Some(1.0),
        "{}",
        d.log()
    );
    let rev = etcd.revision() as f64;
    prom.wait_value(EVENT, "reconfd_etcd_revision", |v| v == rev);
    prom.wait_value(EVENT, "reconfd_resource_revision{resource=\"good\"}", |v| {
        v == rev
    });
    assert!(prom.value("process_resident_memory_bytes").unwrap_or(0.0) > 0.0);
    assert_eq!(
        prom.value("reconfd_build_info"),
        Some(1.0),
        "build info with its version label"
    );

    // The target is up and Prometheus had nothing to say about the exposition.
    assert_eq!(prom.value("up{job=\"reconfd\"}"), Some(1.0));
    let targets = prom.targets();
    let target = &targets[0];
    assert_eq!(target["health"], "up", "{targets}");
    assert_eq!(target["lastError"], "", "{targets}");
    assert!(!prom.log().contains("level=error"), "{}", prom.log());

    let (code, exposition) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    let problems = prometheus::promtool_problems(&exposition);
    assert!(problems.is_empty(), "promtool: {problems:#?}\n{exposition}");
}

#[test]
fn healthz_follows_etcd_and_readyz_the_first_reconcile_and_failures() {
    let etcd = Etcd::start();
    etcd.put("/svc/a", "10.0.0.1:80");
    let t = Tree::new();
    // The first reconcile takes 3 s (a slow check), so /readyz can be caught before it.
    resource(
        &t,
        "slow",
        "check_cmd = \"sh -c 'sleep 3; ! grep -q broken {{.src}}'\"\ncheck_timeout = \"30s\"\n",
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let sock = t.root.path().join("control.sock");
    let mut cmd = t.reconfd(
        Some(&etcd),
        &[
            "run",
            "--metrics-listen",
            &listen,
            "--control-socket",
            sock.to_str().unwrap(),
        ],
    );
    // A 2 s watchdog window: /healthz tolerates 2 s of etcd silence (progress every 0.5 s).
    cmd.env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("NOTIFY_SOCKET");
    let d = Daemon::spawn(cmd);

    let body = wait_http(&d, port, "/readyz", 503);
    assert!(
        body.contains("slow: pending") || body.contains("starting"),
        "{body}"
    );
    assert_eq!(
        d.log_count(util::READY),
        0,
        "the first reconcile cannot be done yet"
    );
    wait_http(&d, port, "/readyz", 200);
    d.wait_ready();
    wait_http(&d, port, "/healthz", 200);

    // etcd frozen: no progress answers, /healthz turns within the window (2 s + a margin
    // for a loaded machine), and back once etcd runs again.
    let stopped = std::time::Instant::now();
    nix::sys::signal::kill(etcd.pid(), Signal::SIGSTOP).unwrap();
    let body = wait_http(&d, port, "/healthz", 503);
    let took = stopped.elapsed();
    nix::sys::signal::kill(etcd.pid(), Signal::SIGCONT).unwrap();
    assert!(body.contains("etcd last answered"), "{body}");
    assert!(
        took < Duration::from_secs(10),
        "unhealthy only after {took:?}"
    );
    wait_http(&d, port, "/healthz", 200);

    // A failing resource makes /readyz 503 with its name; the fix makes it 200 again.
    etcd.put("/svc/b", "broken");
    let body = wait_http(&d, port, "/readyz", 503);
    assert_eq!(body, "slow: failing\n");
    etcd.put("/svc/b", "10.0.0.2:80");
    wait_http(&d, port, "/readyz", 200);
}

fn status(sock: &Path, extra: &[&str]) -> Output {
    let mut c = util::reconfd();
    c.arg("status")
        .args(extra)
        .arg("--control-socket")
        .arg(sock);
    util::run(c)
}

#[test]
fn status_shows_good_failing_and_deferred_resources() {
    let etcd = Etcd::start();
    etcd.put("/svc/a", "10.0.0.1:80");
    let t = Tree::new();
    resource(&t, "good", "");
    resource(&t, "failing", "check_cmd = \"false\"\n");
    // One reload per hour: the first install spends it, the next change is deferred.
    resource(
        &t,
        "limited",
        "reload_cmd = \"true\"\nreload_limit = \"1/h\"\n",
    );
    let sock = t.root.path().join("control.sock");
    let d = t.daemon(&etcd, &["--control-socket", sock.to_str().unwrap()]);
    d.wait_ready();
    let meta = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());

    etcd.put("/svc/b", "10.0.0.2:80");
    let revision = etcd.revision();
    // Each resource batches the change on its own: wait for both to have acted on it.
    let json: serde_json::Value = wait_for(EVENT, "limited deferred, good installed", || {
        let out = status(&sock, &["--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let resources = v["resources"].as_array()?;
        let deferred = resources
            .iter()
            .any(|r| r["name"] == "limited" && r["state"] == "deferred");
        let installed = resources
            .iter()
            .any(|r| r["name"] == "good" && r["revision"] == revision);
        (deferred && installed).then_some(v)
    });
    let by_name = |n: &str| {
        json["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} missing from {json}"))
    };
    let good = by_name("good");
    assert_eq!(good["state"], "in_sync", "{json}");
    assert_eq!(good["revision"], revision, "{json}");
    assert_eq!(good["pending"], serde_json::Value::Null, "{json}");
    assert!(good["last_install_unix"].as_u64().is_some(), "{json}");
    let failing = by_name("failing");
    assert_eq!(failing["state"], "failing", "{json}");
    assert!(
        failing["last_error"]
            .as_str()
            .unwrap()
            .contains("check_cmd \"false\" failed"),
        "{json}"
    );
    let limited = by_name("limited");
    assert_eq!(limited["pending"], "reload deferred", "{json}");
    assert!(
        json["etcd"]["member"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{json}"
    );

    let out = status(&sock, &[]);
    assert_eq!(out.status.code(), Some(1), "failing resource: exit 1");
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |n: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row for {n}:\n{table}"))
            .to_owned()
    };
    assert!(
        table.lines().nth(1).unwrap().starts_with("RESOURCE"),
        "{table}"
    );
    assert!(
        row("good").contains("in_sync") && row("good").contains("s ago"),
        "{table}"
    );
    assert!(
        row("failing").contains("check_cmd \"false\" failed"),
        "{table}"
    );
    assert!(
        row("limited").contains("deferred") && row("limited").contains("reload deferred"),
        "{table}"
    );

    // approve: nothing is held; an unknown name says so.
    let mut c = util::reconfd();
    c.args(["approve", "good", "--control-socket"]).arg(&sock);
    let out = util::run(c);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "good: not_held\n");
    assert_eq!(out.status.code(), Some(1));
    let mut c = util::reconfd();
    c.args(["approve", "nosuch", "--control-socket"]).arg(&sock);
    assert_eq!(
        String::from_utf8_lossy(&util::run(c).stdout),
        "nosuch: unknown\n"
    );
    drop(d);
}

#[test]
fn status_in_sync_exits_0_and_without_a_daemon_exits_3() {
    let etcd = Etcd::start();
    etcd.put("/svc/a", "10.0.0.1:80");
    let t = Tree::new();
    resource(&t, "good", "");
    let sock = t.root.path().join("control.sock");
    let mut d = t.daemon(&etcd, &["--control-socket", sock.to_str().unwrap()]);
    d.wait_ready();
    let out = status(&sock, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit(EVENT).success());
    assert!(!sock.exists(), "the socket is removed at exit");
    let out = status(&sock, &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reconfd is not running") && err.contains(sock.to_str().unwrap()),
        "{err}"
    );
}

/// Runs `reconfd status` as nobody.
fn status_as_nobody(sock: &Path) -> Output {
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_reconfd"))
        .args(["status", "--control-socket"])
        .arg(sock);
    util::run(c)
}

#[test]
fn another_user_is_refused_by_the_socket() {
    let root = nix::unistd::geteuid().is_root();
    if !prerequisite(
        root && have_program("setpriv"),
        "needs root and setpriv to act as another user",
    ) {
        return;
    }
    let etcd = Etcd::start();
    let t = Tree::new();
    resource(&t, "good", "");
    // nobody must reach the socket's directory to be refused by the socket itself.
    let dir: PathBuf = t.root.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [t.root.path(), dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sock = dir.join("control.sock");
    let d = t.daemon(&etcd, &["--control-socket", sock.to_str().unwrap()]);
    d.wait_ready();

    // The file's mode (0600, root's) stops nobody at connect.
    let out = status_as_nobody(&sock);
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );

    // With the mode opened, SO_PEERCRED still refuses: no overview, exit 77.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = status_as_nobody(&sock);
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused: uid 65534"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing about the resources: {out:?}"
    );
    d.wait_log(EVENT, "refused a request from uid 65534", 1);
}

#[test]
fn check_validates_metrics_and_control_and_run_refuses_a_busy_address() {
    let t = Tree::new();
    resource(&t, "good", "");
    let config = t.root.path().join("reconfd.toml");
    std::fs::write(
        &config,
        "[metrics]\nlisten = \"localhost\"\n[control]\nsocket = \"relative.sock\"\n",
    )
    .unwrap();
    let mut c = t.reconfd(None, &["check"]);
    c.env("RECONFD_CONFIG", &config);
    let out = util::run(c);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    assert!(
        err.contains(&format!("{file}: metrics.listen: \"localhost\" is neither")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}: control.socket \"relative.sock\" must be an absolute path"
        )),
        "{err}"
    );

    std::fs::write(&config, "[metrics]\nlisten = \"127.0.0.1:9612\"\n").unwrap();
    let mut c = t.reconfd(None, &["check"]);
    c.env("RECONFD_CONFIG", &config);
    assert_eq!(util::run(c).status.code(), Some(0));

    // An address another process holds: run stops at once with 78, naming it.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let etcd = Etcd::start();
    let mut d = t.daemon(&etcd, &["--metrics-listen", &addr]);
    assert_eq!(d.wait_exit(EVENT).code(), Some(78), "{}", d.log());
    assert!(
        d.log().contains(&format!("metrics.listen {addr}")),
        "{}",
        d.log()
    );
}

#[test]
fn metrics_are_served_on_a_unix_socket() {
    use std::io::{Read, Write};
    let etcd = Etcd::start();
    etcd.put("/svc/a", "10.0.0.1:80");
    let t = Tree::new();
    resource(&t, "good", "");
    let path = t.root.path().join("metrics.sock");
    let d = t.daemon(&etcd, &["--metrics-listen", path.to_str().unwrap()]);
    d.wait_ready();
    let get = |p: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(&path).ok()?;
        write!(
            s,
            "GET {p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let ready = wait_for(EVENT, "/readyz 200 on the unix socket", || {
        get("/readyz").filter(|r| r.starts_with("HTTP/1.1 200"))
    });
    assert!(ready.ends_with("ready: 1 resources\n"), "{ready}");
    let metrics = get("/metrics").unwrap();
    assert!(
        metrics.contains("application/openmetrics-text"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reconfd_resource_state{resource=\"good\",state=\"in_sync\"} 1"),
        "{metrics}"
    );
    assert!(get("/nothing").unwrap().starts_with("HTTP/1.1 404"));
}
