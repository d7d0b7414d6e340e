//! The reconnect backoff, seen from the network: an "etcd" that accepts every connection and
//! closes it at once (a member that is up but broken) must see the daemon's attempts spread
//! out, the gap doubling per failed round (100 ms up to 10 s, plus up to half again of
//! jitter), never a tight reconnect loop.

mod util;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::{Daemon, Tree};

/// Accepts and drops connections on a free loopback port, recording when each arrived.
fn slammer() -> (u16, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            log.lock().unwrap().push(Instant::now());
            drop(conn);
        }
    });
    (port, seen)
}

/// Connections less than 50 ms apart belong to one attempt (a client may open more than one).
fn attempts(times: &[Instant]) -> Vec<Instant> {
    let mut out: Vec<Instant> = Vec::new();
    for &t in times {
        if out
            .last()
            .is_none_or(|&last| t.duration_since(last) > Duration::from_millis(50))
        {
            out.push(t);
        }
    }
    out
}

#[test]
fn a_member_that_drops_every_connection_is_retried_with_growing_gaps() {
    let (port, seen) = slammer();
    let t = Tree::new();
    t.template("app.tera", "{{ getv(key=\"/a\") }}\n");
    t.resource(
        "app",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/a\"]\n",
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let d = Daemon::spawn(t.reconfd(None, &["run", "--endpoint", &endpoint]));
    // Six failed rounds take at least 0.1+0.2+0.4+0.8+1.6 = 3.1 s and at most 1.5 times that
    // plus the time each attempt takes; wait for them, bounded.
    let found = util::wait_for(Duration::from_secs(30), "six connection attempts", || {
        let a = attempts(&seen.lock().unwrap());
        (a.len() >= 6).then_some(a)
    });
    let gaps: Vec<Duration> = found.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(90)),
        "an attempt came sooner than the shortest backoff: {gaps:?}\n{}",
        d.log()
    );
    assert!(
        gaps[4] >= gaps[0] * 4,
        "the gaps do not grow (expected about doubling): {gaps:?}\n{}",
        d.log()
    );
    assert!(
        gaps.windows(3).all(|w| w[2] > w[0]),
        "a gap two rounds later is not longer: {gaps:?}\n{}",
        d.log()
    );
    assert!(!t.out().join("app.conf").exists());
}
