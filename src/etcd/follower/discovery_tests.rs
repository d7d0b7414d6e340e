//! The follower with DNS SRV endpoints: after a round in which every member failed it asks
//! DNS again (while backing off) and tries the new members first.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::Snapshot;

fn follower(rediscover: bool) -> Follower {
    Follower::new(
        FollowerConfig {
            watched: vec!["/a".into()],
            endpoints: vec!["a".into(), "b".into()],
            user: None,
            progress_every: Duration::from_secs(30),
            denied_recheck: Duration::from_secs(60),
            prefer_first_after: None,
            rediscover,
            reread_jitter: Duration::ZERO,
            jitter_first_read: false,
        },
        Arc::new(Snapshot::default()),
    )
}

#[test]
fn a_failed_round_asks_dns_again_and_tries_the_new_members() {
    let mut f = follower(true);
    f.start();
    assert_eq!(
        f.handle(Input::Failed("a".into())),
        vec![Action::Connect("b".into())],
        "one failure is not a round: no lookup"
    );
    let a = f.handle(Input::Failed("b".into()));
    assert!(matches!(a.last(), Some(Action::Rediscover)), "{a:?}");
    assert!(a.iter().any(|a| matches!(a, Action::Backoff(_))), "{a:?}");
    assert!(f
        .handle(Input::Discovered(vec!["c".into(), "a".into()]))
        .is_empty());
    assert_eq!(
        f.handle(Input::TimerFired),
        vec![Action::Connect("c".into())]
    );
}

#[test]
fn without_srv_nothing_is_asked() {
    let mut f = follower(false);
    f.start();
    f.handle(Input::Failed("a".into()));
    let a = f.handle(Input::Failed("b".into()));
    assert!(!a.iter().any(|a| matches!(a, Action::Rediscover)), "{a:?}");
}
