//! etcd 3.4's gRPC proxy does not answer watch progress requests, so behind it a quiet prefix
//! would look dead to the watchdog. The daemon notices the unanswered request and asks etcd
//! with a small linearizable request instead, which keeps it followed (no "unreachable", no
//! failover) and changes still arrive.
//!
//! Every wait is bounded (`Daemon::wait_log`, `wait_content`).

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::{Daemon, Etcd, Proxy, Tree};

const EVENT: Duration = Duration::from_secs(20);

fn wait_content(d: &Daemon, path: &Path, want: &str) {
    let deadline = Instant::now() + EVENT;
    loop {
        let got = std::fs::read_to_string(path).ok();
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {} to hold {want:?}; it holds {got:?}\ndaemon log:\n{}",
            path.display(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon with WatchdogSec=1s (a progress request every 250 ms; no NOTIFY_SOCKET, so the
/// pings go nowhere) following `endpoint`, with the follower's debug lines.
fn daemon(endpoint: &str) -> (Tree, Daemon) {
    let t = Tree::new();
    t.template(
        "app.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "app",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\n",
    );
    let mut c = t.reconfd(None, &["run"]);
    c.args(["--endpoint", endpoint, "--log-level", "info,reconfd=debug"])
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID");
    let d = Daemon::spawn(c);
    d.wait_ready();
    (t, d)
}

const PROBE: &str = "the last progress request went unanswered; asking etcd directly";

#[test]
fn an_unanswered_progress_request_behind_a_proxy_is_replaced_by_a_direct_question() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(&etcd);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let (t, d) = daemon(&proxy.endpoint);
    d.wait_log(EVENT, PROBE, 3);
    let log = d.log();
    assert!(
        !log.contains("no etcd endpoint can be followed")
            && !log.contains("trying the next endpoint"),
        "{log}"
    );
    etcd.put("/services/apache/b", "10.0.0.2:80");
    wait_content(
        &d,
        &t.out().join("app.conf"),
        "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n",
    );
}

/// etcd itself answers progress requests: no extra request is sent. The sleep proves, for
/// 2 s (eight progress requests), that none is.
#[test]
fn etcd_answering_progress_requests_gets_no_extra_question() {
    let etcd = Etcd::start();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let (_t, d) = daemon(&etcd.endpoint);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.log_count(PROBE), 0, "{}", d.log());
}
