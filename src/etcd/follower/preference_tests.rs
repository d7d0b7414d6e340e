//! The follower going back to the preferred member after a failover ([`super::super::preference`]):
//! the probe is asked for once the watch on another member opens, after the minimum stay; a
//! healthy probe moves the watch back, resuming from the next revision without a read; an
//! unhealthy one asks for the next probe one stay later.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::Snapshot;

const STAY: Duration = Duration::from_secs(30);

fn follower() -> Follower {
    Follower::new(
        FollowerConfig {
            watched: vec!["/a".into()],
            endpoints: vec!["first".into(), "second".into()],
            user: None,
            progress_every: Duration::from_secs(30),
            denied_recheck: Duration::from_secs(60),
            prefer_first_after: Some(STAY),
            rediscover: false,
            reread_jitter: Duration::ZERO,
            jitter_first_read: false,
        },
        Arc::new(Snapshot::default()),
    )
}

fn read(revision: i64) -> Read {
    Read {
        snapshot: Snapshot {
            revision,
            ..Default::default()
        },
        denied: Vec::new(),
        endpoint: String::new(),
        cluster_id: 1,
        linearizable: true,
    }
}

fn probes(actions: &[Action]) -> Vec<(String, Duration)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe { endpoint, after } => Some((endpoint.clone(), *after)),
            _ => None,
        })
        .collect()
}

/// Follows "first", which fails; fails over to "second" and opens the watch there.
fn failed_over(f: &mut Follower) -> Vec<Action> {
    f.start();
    f.handle(Input::Connected);
    f.handle(Input::ReadDone(read(5)));
    assert!(
        probes(&f.handle(Input::WatchOpened)).is_empty(),
        "on the preferred member"
    );
    let a = f.handle(Input::Failed("watch on first failed".into()));
    assert_eq!(a, vec![Action::Connect("second".into())]);
    f.handle(Input::Connected);
    f.handle(Input::WatchOpened)
}

#[test]
fn back_to_the_preferred_member_after_a_healthy_probe() {
    let mut f = follower();
    let a = failed_over(&mut f);
    assert_eq!(probes(&a), vec![("first".to_owned(), STAY)]);
    let a = f.handle(Input::Probed { healthy: true });
    assert_eq!(a, vec![Action::Connect("first".into())]);
    // Resumes the watch from the next revision: no read.
    let a = f.handle(Input::Connected);
    assert!(!a.iter().any(|a| matches!(a, Action::Read(_))), "{a:?}");
    let starts: Vec<i64> = a
        .iter()
        .filter_map(|a| match a {
            Action::Watch { watchers, .. } => Some(watchers[0].start_revision),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![6]);
    assert!(probes(&f.handle(Input::WatchOpened)).is_empty());
}

#[test]
fn an_unhealthy_preferred_member_is_probed_once_per_stay() {
    let mut f = follower();
    failed_over(&mut f);
    for _ in 0..3 {
        let a = f.handle(Input::Probed { healthy: false });
        assert_eq!(
            a,
            vec![Action::Probe {
                endpoint: "first".into(),
                after: STAY
            }]
        );
    }
}

#[test]
fn a_failed_return_fails_over_again_at_once() {
    let mut f = follower();
    failed_over(&mut f);
    f.handle(Input::Probed { healthy: true });
    let a = f.handle(Input::Failed("cannot connect to first".into()));
    assert_eq!(a, vec![Action::Connect("second".into())]);
}
