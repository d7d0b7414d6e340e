//! The follower's cases, each driven by the inputs etcd and the I/O task would give it.

use super::*;
use crate::etcd::endpoints::BACKOFF_MIN;

const PROGRESS: Duration = Duration::from_secs(30);
const RECHECK: Duration = Duration::from_secs(60);
const CLUSTER: u64 = 0xc1;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn follower(endpoints: &[&str], watched: &[&str]) -> Follower {
    Follower::new(
        FollowerConfig {
            watched: strings(watched),
            endpoints: strings(endpoints),
            user: Some("reader".into()),
            progress_every: PROGRESS,
            denied_recheck: RECHECK,
            reread_jitter: Duration::ZERO,
            jitter_first_read: false,
            prefer_first_after: None,
            rediscover: false,
        },
        Arc::new(Snapshot::default()),
    )
}

/// A full read's result at `revision`.
fn read(revision: i64, kvs: &[(&str, &str)], denied: &[&str]) -> Read {
    Read {
        snapshot: Snapshot {
            revision,
            kvs: kvs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        },
        denied: strings(denied),
        endpoint: String::new(),
        cluster_id: CLUSTER,
        linearizable: true,
    }
}

fn put(key: &str, value: &str, rev: i64) -> KeyEvent {
    KeyEvent {
        key: key.into(),
        value: Some(value.into()),
        mod_revision: rev,
        not_text: false,
    }
}

fn del(key: &str, rev: i64) -> KeyEvent {
    KeyEvent {
        key: key.into(),
        value: None,
        mod_revision: rev,
        not_text: false,
    }
}

fn events(watch_id: i64, events: Vec<KeyEvent>) -> Input {
    Input::Message(WatchMessage::Events { watch_id, events })
}

fn created(watch_id: i64) -> Input {
    Input::Message(WatchMessage::Created { watch_id })
}

fn progress(watch_id: i64, revision: i64) -> Input {
    Input::Message(WatchMessage::Progress {
        watch_id,
        revision: Some(revision),
    })
}

fn canceled(watch_id: i64, created: bool, reason: &str) -> Input {
    Input::Message(WatchMessage::Canceled {
        watch_id,
        created,
        reason: reason.into(),
    })
}

const DENIED: &str = "etcdserver: permission denied";

fn published(actions: &[Action]) -> Vec<Arc<Snapshot>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The watchers of the one `Watch` among `actions`, as (start, end, start revision).
fn watchers(actions: &[Action]) -> Vec<(String, Option<String>, i64)> {
    let mut found = actions.iter().filter_map(|a| match a {
        Action::Watch { watchers, .. } => Some(watchers),
        _ => None,
    });
    let w = found
        .next()
        .unwrap_or_else(|| panic!("no Watch in {actions:#?}"));
    assert!(found.next().is_none(), "two Watch in {actions:#?}");
    w.iter()
        .map(|w| (w.start.clone(), w.end.clone(), w.start_revision))
        .collect()
}

fn range(start: &str, end: Option<&str>, from: i64) -> (String, Option<String>, i64) {
    (start.into(), end.map(Into::into), from)
}

fn has_read(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Read(_)))
}

/// Starts `f`, connects, reads `r`, opens the watch and has etcd create watchers `ids`.
fn watching(f: &mut Follower, r: Read, ids: &[i64]) -> Vec<Action> {
    assert!(matches!(f.start()[..], [Action::Connect(_)]));
    assert!(matches!(f.handle(Input::Connected)[..], [Action::Read(_)]));
    let actions = f.handle(Input::ReadDone(r));
    assert!(f.handle(Input::WatchOpened).is_empty());
    for id in ids {
        assert!(f.handle(created(*id)).is_empty());
    }
    actions
}

#[test]
fn start_reads_every_watched_key_publishes_and_watches_from_the_next_revision() {
    let mut f = follower(&["http://a"], &["/svc/b", "/svc/a", "/svc/a"]);
    assert_eq!(f.start(), vec![Action::Connect("http://a".into())]);
    assert_eq!(
        f.handle(Input::Connected),
        vec![Action::Read(strings(&["/svc/a", "/svc/b"]))]
    );
    let actions = f.handle(Input::ReadDone(read(10, &[("/svc/a/1", "x")], &[])));
    let snapshots = published(&actions);
    assert_eq!(snapshots.len(), 1);
    assert_eq!((snapshots[0].revision, snapshots[0].seq), (10, 1));
    assert_eq!(snapshots[0].changed, strings(&["/svc/a/1"]));
    assert!(actions.contains(&Action::Reach(Reach::Reachable {
        member: "http://a".into()
    })));
    assert_eq!(
        watchers(&actions),
        vec![range("/svc/a", Some("/svc/b0"), 11)]
    );
    // No key is denied: no recheck timer.
    assert_eq!(actions.last(), Some(&Action::Timer(None)));
}

#[test]
fn a_stream_error_resumes_from_the_last_applied_revision_plus_one_on_the_next_endpoint() {
    let mut f = follower(&["http://a", "http://b"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    let actions = f.handle(events(1, vec![put("/k/x", "1", 12)]));
    assert_eq!(published(&actions)[0].revision, 12);

    let actions = f.handle(Input::Failed(
        "watch on http://a failed: broken pipe".into(),
    ));
    assert_eq!(actions, vec![Action::Connect("http://b".into())]);
    let actions = f.handle(Input::Connected);
    assert!(!has_read(&actions), "a resume needs no read: {actions:#?}");
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 13)]);
    // Connected is not an answer: "b" is followed once its watch answers.
    assert!(!actions.iter().any(|a| matches!(a, Action::Reach(_))));
    f.handle(Input::WatchOpened);
    assert_eq!(
        f.handle(created(1)),
        vec![Action::Reach(Reach::Reachable {
            member: "http://b".into()
        })]
    );

    // The same after a stream that just ends.
    f.handle(events(1, vec![del("/k/x", 15)]));
    assert_eq!(
        f.handle(Input::StreamEnded),
        vec![Action::Connect("http://a".into())]
    );
    assert_eq!(
        watchers(&f.handle(Input::Connected)),
        vec![range("/k", Some("/k0"), 16)]
    );
}

#[test]
fn the_answer_to_a_progress_request_never_moves_a_resume_point() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[3]);
    assert_eq!(f.handle(Input::ProgressDue), vec![Action::RequestProgress]);
    // etcd 3.4 answers with its current revision (watch id -1), possibly ahead of events
    // still queued for the watcher.
    assert!(f.handle(progress(-1, 50)).is_empty());
    assert_eq!(f.revision(), 10);
    f.handle(Input::Failed("broken".into()));
    f.handle(Input::TimerFired);
    assert_eq!(
        watchers(&f.handle(Input::Connected)),
        vec![range("/k", Some("/k0"), 11)]
    );
}

#[test]
fn a_watchers_own_progress_notification_moves_its_resume_point() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[3]);
    assert!(f.handle(progress(3, 50)).is_empty());
    assert_eq!(f.revision(), 50);
    f.handle(Input::Failed("broken".into()));
    f.handle(Input::TimerFired);
    assert_eq!(
        watchers(&f.handle(Input::Connected)),
        vec![range("/k", Some("/k0"), 51)]
    );
}

#[test]
fn a_compaction_reads_everything_again_and_the_snapshot_lists_every_differing_key() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(
        &mut f,
        read(
            10,
            &[("/k/same", "1"), ("/k/changed", "1"), ("/k/gone", "1")],
            &[],
        ),
        &[1],
    );
    let before = f.snapshot().clone();
    let actions = f.handle(Input::Message(WatchMessage::Compacted {
        watch_id: 1,
        created: false,
        compact_revision: 40,
    }));
    assert_eq!(actions, vec![Action::Read(strings(&["/k"]))]);
    let actions = f.handle(Input::ReadDone(read(
        42,
        &[("/k/same", "1"), ("/k/changed", "2"), ("/k/new", "1")],
        &[],
    )));
    let s = &published(&actions)[0];
    assert_eq!(
        (s.revision, s.seq, s.since),
        (42, before.seq + 1, before.seq)
    );
    let mut changed = s.changed.clone();
    changed.sort();
    assert_eq!(changed, strings(&["/k/changed", "/k/gone", "/k/new"]));
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 43)]);
}

#[test]
fn an_expired_token_cancel_refreshes_the_token_and_watches_again_without_a_read() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    f.handle(events(1, vec![put("/k/a", "1", 11)]));
    let actions = f.handle(canceled(
        1,
        false,
        "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token",
    ));
    assert_eq!(actions, vec![Action::RefreshToken]);
    let actions = f.handle(Input::TokenRefreshed);
    assert!(!has_read(&actions), "{actions:#?}");
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 12)]);
}

#[test]
fn a_refused_covering_watch_is_split_and_created_responses_map_to_ranges_by_order() {
    let mut f = follower(&["http://a"], &["/svc", "/web"]);
    let actions = watching(&mut f, read(10, &[("/svc/a", "1")], &[]), &[]);
    assert_eq!(watchers(&actions), vec![range("/svc", Some("/web0"), 11)]);
    let actions = f.handle(canceled(-1, true, DENIED));
    assert!(!has_read(&actions), "{actions:#?}");
    assert_eq!(
        watchers(&actions),
        vec![
            range("/svc", None, 11),
            range("/svc/", Some("/svc0"), 11),
            range("/web", None, 11),
            range("/web/", Some("/web0"), 11),
        ]
    );
    f.handle(Input::WatchOpened);
    for id in [7, 8, 9, 10] {
        f.handle(created(id));
    }
    // Watcher 10 is the fourth range's, `/web/`: its events apply.
    let s = &published(&f.handle(events(10, vec![put("/web/x", "1", 12)])))[0];
    assert_eq!(s.kvs.get("/web/x").map(String::as_str), Some("1"));
    assert_eq!(s.kvs.get("/svc/a").map(String::as_str), Some("1"));
    // Watcher 8 (`/svc/`) reports progress up to 20: only its range moves.
    f.handle(progress(8, 20));
    f.handle(Input::Failed("broken".into()));
    f.handle(Input::TimerFired);
    assert_eq!(
        watchers(&f.handle(Input::Connected)),
        vec![
            range("/svc", None, 11),
            range("/svc/", Some("/svc0"), 21),
            range("/web", None, 11),
            range("/web/", Some("/web0"), 13),
        ]
    );
}

/// Brings `f` (watching `/svc` and `/web`) to a split watch whose four watchers were created.
fn split(f: &mut Follower) {
    watching(f, read(10, &[], &[]), &[]);
    f.handle(canceled(-1, true, DENIED));
    f.handle(Input::WatchOpened);
    for id in [7, 8, 9, 10] {
        f.handle(created(id));
    }
}

#[test]
fn a_refused_split_watcher_owes_a_read_and_names_the_refused_range() {
    let mut f = follower(&["http://a"], &["/svc", "/web"]);
    split(&mut f);
    f.handle(events(9, vec![put("/web", "1", 11)]));
    // After a restart of etcd, the role no longer allows `/web/`: the fourth create is refused.
    f.handle(Input::StreamEnded);
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    f.handle(Input::WatchOpened);
    for id in [1, 2, 3] {
        f.handle(created(id));
    }
    let actions = f.handle(canceled(-1, true, DENIED));
    assert_eq!(actions, vec![Action::Read(strings(&["/svc", "/web"]))]);
    // The read learns that `/web` is denied: only `/svc` is watched, covering again.
    let actions = f.handle(Input::ReadDone(read(12, &[], &["/web"])));
    assert_eq!(published(&actions)[0].denied.as_ref(), strings(&["/web"]));
    assert_eq!(watchers(&actions), vec![range("/svc", Some("/svc0"), 13)]);
}

#[test]
fn a_refusal_names_the_range_of_the_create_request_it_answers() {
    let stream = Stream {
        allowed: strings(&["/svc", "/web"]),
        ranges: key_ranges(&strings(&["/svc", "/web"])),
        // Three watchers created, the fourth refused (etcd 3.4 gives it id -1).
        ids: vec![1, 2, 3, -1],
    };
    assert_eq!(stream.refused(true), " of [/web/, /web0)");
    assert_eq!(
        stream.refused(false),
        "",
        "a cancel answers no create request"
    );
    let stream = Stream {
        ids: vec![1, 2, -1],
        ..stream
    };
    assert_eq!(stream.refused(true), " of /web");
}

#[test]
fn a_second_refusal_before_any_watcher_answered_is_an_error_with_backoff() {
    let mut f = follower(&["http://a"], &["/svc", "/web"]);
    split(&mut f);
    assert!(has_read(&f.handle(canceled(-1, true, DENIED))));
    // The read still allows both: the covering watch is tried again, refused, split...
    let actions = f.handle(Input::ReadDone(read(12, &[], &[])));
    assert_eq!(watchers(&actions).len(), 1);
    f.handle(Input::WatchOpened);
    assert_eq!(watchers(&f.handle(canceled(-1, true, DENIED))).len(), 4);
    f.handle(Input::WatchOpened);
    f.handle(created(1));
    // ... and a split watcher is refused again before any watcher answered.
    let actions = f.handle(canceled(-1, true, DENIED));
    let error = "watch was cancelled by etcd: etcdserver: permission denied of [/svc/, /svc0)";
    assert_eq!(
        actions,
        vec![
            Action::Reach(Reach::Unreachable {
                error: error.into(),
                last_member: Some("http://a".into()),
            }),
            Action::Backoff(BACKOFF_MIN),
        ]
    );
    // The read is still owed.
    assert_eq!(
        f.handle(Input::TimerFired),
        vec![Action::Connect("http://a".into())]
    );
    assert!(has_read(&f.handle(Input::Connected)));
}

#[test]
fn an_answer_between_two_refusals_makes_the_second_one_a_read_again() {
    let mut f = follower(&["http://a"], &["/svc", "/web"]);
    split(&mut f);
    assert!(has_read(&f.handle(canceled(-1, true, DENIED))));
    f.handle(Input::ReadDone(read(12, &[], &[])));
    f.handle(Input::WatchOpened);
    f.handle(canceled(-1, true, DENIED));
    f.handle(Input::WatchOpened);
    f.handle(created(1));
    f.handle(progress(1, 12));
    assert_eq!(
        f.handle(canceled(-1, true, DENIED)),
        vec![Action::Read(strings(&["/svc", "/web"]))]
    );
}

#[test]
fn another_cancel_reason_ends_the_session() {
    let mut f = follower(&["http://a", "http://b"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    assert_eq!(
        f.handle(canceled(1, false, "etcdserver: no leader")),
        vec![Action::Connect("http://b".into())]
    );
}

#[test]
fn denied_keys_are_read_again_when_the_recheck_timer_fires() {
    let mut f = follower(&["http://a"], &["/svc", "/secret"]);
    let actions = watching(&mut f, read(10, &[("/svc/a", "1")], &["/secret"]), &[1]);
    assert_eq!(
        published(&actions)[0].denied.as_ref(),
        strings(&["/secret"])
    );
    assert_eq!(watchers(&actions), vec![range("/svc", Some("/svc0"), 11)]);
    assert_eq!(actions.last(), Some(&Action::Timer(Some(RECHECK))));
    assert_eq!(
        f.handle(Input::TimerFired),
        vec![Action::Read(strings(&["/secret", "/svc"]))]
    );
    // The grant arrived: nothing denied, no recheck any more.
    let actions = f.handle(Input::ReadDone(read(11, &[("/svc/a", "1")], &[])));
    assert!(published(&actions)[0].denied.is_empty());
    assert_eq!(
        watchers(&actions),
        vec![range("/secret", Some("/svc0"), 12)]
    );
    assert_eq!(actions.last(), Some(&Action::Timer(None)));
}

#[test]
fn with_every_key_denied_nothing_is_watched_and_the_keys_are_read_again() {
    let mut f = follower(&["http://a"], &["/secret"]);
    f.start();
    f.handle(Input::Connected);
    let actions = f.handle(Input::ReadDone(read(0, &[], &["/secret"])));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Watch { .. })),
        "{actions:#?}"
    );
    assert_eq!(actions.last(), Some(&Action::Timer(Some(PROGRESS))));
    assert!(has_read(&f.handle(Input::TimerFired)));
}

#[test]
fn a_timer_armed_in_an_earlier_phase_is_ignored() {
    let mut f = follower(&["http://a", "http://b"], &["/svc", "/secret"]);
    watching(&mut f, read(10, &[], &["/secret"]), &[1]);
    f.handle(Input::Failed("broken".into()));
    assert!(f.handle(Input::TimerFired).is_empty(), "while connecting");
}

#[test]
fn events_outside_the_watched_keys_but_inside_the_covering_range_are_dropped() {
    let mut f = follower(&["http://a"], &["/a", "/c"]);
    let actions = watching(&mut f, read(10, &[], &[]), &[1]);
    assert_eq!(watchers(&actions), vec![range("/a", Some("/c0"), 11)]);
    let actions = f.handle(events(1, vec![put("/b", "x", 11), put("/ab", "x", 12)]));
    assert!(published(&actions).is_empty(), "{actions:#?}");
    // They still count as delivered.
    f.handle(Input::Failed("broken".into()));
    f.handle(Input::TimerFired);
    assert_eq!(
        watchers(&f.handle(Input::Connected)),
        vec![range("/a", Some("/c0"), 13)]
    );
}

#[test]
fn a_transactions_events_in_one_response_publish_one_snapshot() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[("/k/old", "1")], &[]), &[1]);
    let seq = f.snapshot().seq;
    let actions = f.handle(events(
        1,
        vec![
            put("/k/a", "1", 11),
            put("/k/b", "2", 11),
            del("/k/old", 11),
            put("/k/a", "3", 11),
        ],
    ));
    let snapshots = published(&actions);
    assert_eq!(snapshots.len(), 1, "{actions:#?}");
    let s = &snapshots[0];
    assert_eq!((s.revision, s.seq, s.since), (11, seq + 1, seq));
    assert_eq!(s.changed, strings(&["/k/a", "/k/b", "/k/old"]));
    assert_eq!(s.kvs.get("/k/a").map(String::as_str), Some("3"));
    assert!(!s.kvs.contains_key("/k/old"));
}

#[test]
fn events_of_an_unknown_watcher_are_ignored() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    assert!(f.handle(events(99, vec![put("/k/a", "1", 11)])).is_empty());
    assert_eq!(f.revision(), 10);
}

#[test]
fn a_failed_round_backs_off_and_reports_unreachable_once_then_reachable_again() {
    let mut f = follower(&["http://a", "http://b"], &["/k"]);
    f.start();
    let refused = "cannot connect to etcd: connection refused";
    assert_eq!(
        f.handle(Input::Failed(refused.into())),
        vec![Action::Connect("http://b".into())]
    );
    assert_eq!(
        f.handle(Input::Failed(refused.into())),
        vec![
            Action::Reach(Reach::Unreachable {
                error: refused.into(),
                last_member: None,
            }),
            Action::Backoff(BACKOFF_MIN),
        ]
    );
    // The same error again: no new report, a longer wait.
    assert_eq!(
        f.handle(Input::TimerFired),
        vec![Action::Connect("http://a".into())]
    );
    assert_eq!(
        f.handle(Input::Failed(refused.into())),
        vec![Action::Backoff(BACKOFF_MIN * 2)]
    );
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    let actions = f.handle(Input::ReadDone(read(5, &[], &[])));
    assert!(actions.contains(&Action::Reach(Reach::Reachable {
        member: "http://b".into()
    })));
}

#[test]
fn a_session_whose_watch_delivered_something_starts_a_new_round() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    f.handle(events(1, vec![put("/k/a", "1", 11)]));
    // Followed for a while, then broken: the shortest backoff.
    assert_eq!(
        f.handle(Input::StreamEnded).last(),
        Some(&Action::Backoff(BACKOFF_MIN))
    );
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    f.handle(Input::WatchOpened);
    f.handle(created(1));
    f.handle(progress(1, 12));
    assert_eq!(
        f.handle(Input::StreamEnded).last(),
        Some(&Action::Backoff(BACKOFF_MIN))
    );
    // A watch that cannot even be opened does not count as getting through.
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    assert_eq!(
        f.handle(Input::Failed("watch on http://a failed".into()))
            .last(),
        Some(&Action::Backoff(BACKOFF_MIN * 2))
    );
}

#[test]
fn a_failure_right_after_reachable_again_counts_toward_the_backoff() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    let broken = "watch on http://a failed: decoded message length too large";
    let mut waits = Vec::new();
    for round in 0..4 {
        let actions = f.handle(Input::Failed(broken.into()));
        waits.push(actions.last().cloned());
        if round == 0 {
            assert!(actions
                .iter()
                .any(|a| matches!(a, Action::Reach(Reach::Unreachable { .. }))));
        }
        assert_eq!(
            f.handle(Input::TimerFired),
            vec![Action::Connect("http://a".into())]
        );
        // Connected: not yet reachable; the watch is created (an answer: reachable again),
        // then fails before delivering anything.
        let actions = f.handle(Input::Connected);
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Reach(_))),
            "{actions:#?}"
        );
        f.handle(Input::WatchOpened);
        let actions = f.handle(created(1));
        assert_eq!(
            actions,
            vec![Action::Reach(Reach::Reachable {
                member: "http://a".into()
            })]
        );
    }
    assert_eq!(
        waits,
        [1, 2, 4, 8].map(|n| Some(Action::Backoff(BACKOFF_MIN * n)))
    );
}

#[test]
fn reachable_again_only_once_etcd_answered() {
    let mut f = follower(&["http://a"], &["/k"]);
    f.start();
    f.handle(Input::Failed("connection refused".into()));
    f.handle(Input::TimerFired);
    // A leaderless member accepts the connection, then refuses the read.
    assert!(!f
        .handle(Input::Connected)
        .iter()
        .any(|a| matches!(a, Action::Reach(_))));
    let actions = f.handle(Input::Failed("etcdserver: no leader".into()));
    assert!(matches!(
        &actions[..],
        [Action::Reach(Reach::Unreachable { .. }), Action::Backoff(_)]
    ));
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    let actions = f.handle(Input::ReadDone(read(5, &[], &[])));
    assert!(actions.contains(&Action::Reach(Reach::Reachable {
        member: "http://a".into()
    })));
}

#[test]
fn progress_is_asked_for_only_while_watching() {
    let mut f = follower(&["http://a"], &["/k"]);
    f.start();
    assert!(f.handle(Input::ProgressDue).is_empty());
    f.handle(Input::Connected);
    f.handle(Input::ReadDone(read(3, &[], &[])));
    assert_eq!(f.handle(Input::ProgressDue), vec![Action::RequestProgress]);
}

#[test]
fn covering_range_spans_every_watched_key() {
    let w = strings;
    assert_eq!(
        covering_range(&w(&["/services/apache"])),
        ("/services/apache".into(), "/services/apache0".into())
    );
    assert_eq!(
        covering_range(&w(&["/upstream", "/subdomain"])),
        ("/subdomain".into(), "/upstream0".into())
    );
    assert_eq!(covering_range(&w(&["/"])), ("/".into(), "0".into()));
    let (s, e) = covering_range(&w(&["/a/b"]));
    for k in ["/a/b", "/a/b/c", "/a/b/c/d"] {
        assert!(k >= s.as_str() && k < e.as_str(), "{k}");
    }
}

#[test]
fn after_read_lists_what_changed_and_keeps_the_revision_when_nothing_was_read() {
    let a = Snapshot {
        revision: 5,
        seq: 3,
        kvs: [("/a", "1"), ("/b", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let b = after_read(
        &a,
        read(9, &[("/a", "1"), ("/c", "3")], &[]),
        None,
        "http://a",
        RECHECK,
    );
    assert_eq!((b.since, b.seq, b.revision), (3, 4, 9));
    let mut changed = b.changed.clone();
    changed.sort();
    assert_eq!(changed, strings(&["/b", "/c"]));
    assert!(b.touches(&["/c".into()]));
    assert!(!b.touches(&["/a".into()]));
    let c = after_read(&b, read(0, &[], &["/a", "/c"]), None, "http://a", RECHECK);
    assert_eq!(c.revision, 9);
    assert_eq!(c.denied.as_ref(), strings(&["/a", "/c"]));
}

fn header(cluster_id: u64, revision: i64) -> Header {
    Header {
        cluster_id,
        revision,
    }
}

fn confirms(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Confirm(_)))
}

#[test]
fn a_watch_header_below_the_applied_revision_is_confirmed_then_read_again() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(
        &mut f,
        read(60, &[("/k/old", "1"), ("/k/both", "x")], &[]),
        &[1],
    );
    f.handle(Input::Failed("watch on http://a ended".into()));
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    f.handle(Input::WatchOpened);
    // etcd restored from a snapshot at 11: the new watcher's header says so.
    let actions = f.handle(Input::Header(header(CLUSTER, 11)));
    assert_eq!(actions, vec![Action::Confirm("/k".into())]);
    // The linearizable answer confirms it: a full read (no jitter configured here).
    let actions = f.handle(Input::Confirmed(header(CLUSTER, 11)));
    assert!(has_read(&actions), "{actions:#?}");
    // The watch response that followed the header is not applied.
    assert!(f.handle(created(1)).is_empty());
    let actions = f.handle(Input::ReadDone(read(11, &[("/k/both", "x")], &[])));
    let snapshot = &published(&actions)[0];
    assert_eq!(snapshot.revision, 11);
    assert_eq!(snapshot.changed, strings(&["/k/old"]));
    assert_eq!(f.revision(), 11);
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 12)]);
    // Following the restored cluster from there raises nothing more.
    f.handle(Input::WatchOpened);
    assert!(f.handle(Input::Header(header(CLUSTER, 11))).is_empty());
}

#[test]
fn a_lagging_member_is_confirmed_once_per_session_and_nothing_is_read() {
    let mut f = follower(&["http://a", "http://b"], &["/k"]);
    watching(&mut f, read(60, &[], &[]), &[1]);
    f.handle(Input::Failed("watch on http://a ended".into()));
    f.handle(Input::Connected);
    f.handle(Input::WatchOpened);
    assert!(confirms(&f.handle(Input::Header(header(CLUSTER, 58)))));
    // The cluster is at 61: "b" merely lags; the watch goes on.
    let actions = f.handle(Input::Confirmed(header(CLUSTER, 61)));
    assert!(!has_read(&actions) && !confirms(&actions), "{actions:#?}");
    f.handle(created(1));
    assert!(f.handle(Input::Header(header(CLUSTER, 59))).is_empty());
    let actions = f.handle(events(1, vec![put("/k/a", "1", 61)]));
    assert_eq!(published(&actions)[0].revision, 61);
}

#[test]
fn another_cluster_id_is_a_new_cluster_without_confirming() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(60, &[("/k/a", "1")], &[]), &[1]);
    f.handle(Input::Failed("watch on http://a ended".into()));
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    f.handle(Input::WatchOpened);
    // Even at a higher revision.
    let actions = f.handle(Input::Header(header(0xc2, 70)));
    assert!(has_read(&actions) && !confirms(&actions), "{actions:#?}");
    let mut r = read(70, &[("/k/b", "2")], &[]);
    r.cluster_id = 0xc2;
    let actions = f.handle(Input::ReadDone(r));
    assert_eq!(published(&actions)[0].changed, strings(&["/k/b", "/k/a"]));
    f.handle(Input::WatchOpened);
    assert!(f.handle(Input::Header(header(0xc2, 70))).is_empty());
}

#[test]
fn a_linearizable_read_below_the_applied_revision_is_a_restore() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    f.handle(events(1, vec![put("/k/a", "1", 60)]));
    // A compaction sends us to read; the read finds etcd at 6 (re-created meanwhile).
    let actions = f.handle(Input::Message(WatchMessage::Compacted {
        watch_id: 1,
        created: false,
        compact_revision: 70,
    }));
    assert!(has_read(&actions));
    let actions = f.handle(Input::ReadDone(read(6, &[("/k/z", "9")], &[])));
    assert!(!confirms(&actions));
    assert_eq!(published(&actions)[0].revision, 6);
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 7)]);
}

#[test]
fn a_serializable_read_below_the_applied_revision_is_confirmed_before_it_is_taken() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    f.handle(events(1, vec![put("/k/a", "1", 60)]));
    f.handle(Input::Message(WatchMessage::Compacted {
        watch_id: 1,
        created: false,
        compact_revision: 55,
    }));
    // A proxy's cached answer at 58, older than what was applied: a lag or a restore?
    let mut r = read(58, &[("/k/a", "0")], &[]);
    r.linearizable = false;
    let actions = f.handle(Input::ReadDone(r.clone()));
    assert_eq!(actions, vec![Action::Confirm("/k".into())]);
    // etcd is at 62: a lag; the read is taken (the watch from 59 catches up), no new read.
    let actions = f.handle(Input::Confirmed(header(CLUSTER, 62)));
    assert_eq!(published(&actions)[0].revision, 58);
    assert!(!has_read(&actions));
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 59)]);
}

#[test]
fn an_oversized_watch_response_reads_everything_once_then_backs_off() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    let big = "a watch response from http://a is larger than [etcd] max_message_size";
    let actions = f.handle(Input::Oversized(big.into()));
    assert!(has_read(&actions), "{actions:#?}");
    let actions = f.handle(Input::ReadDone(read(12, &[("/k/big", "…")], &[])));
    assert_eq!(watchers(&actions), vec![range("/k", Some("/k0"), 13)]);
    f.handle(Input::WatchOpened);
    f.handle(created(1));
    // Too large again before anything was delivered: a failure, with backoff.
    let actions = f.handle(Input::Oversized(big.into()));
    assert_eq!(actions.last(), Some(&Action::Backoff(BACKOFF_MIN)));
    // Once the watch delivers, the next oversized response is read past again.
    f.handle(Input::TimerFired);
    f.handle(Input::Connected);
    let actions = f.handle(Input::ReadDone(read(14, &[], &[])));
    assert_eq!(watchers(&actions).len(), 1);
    f.handle(Input::WatchOpened);
    f.handle(created(1));
    f.handle(events(1, vec![put("/k/a", "1", 15)]));
    assert!(has_read(&f.handle(Input::Oversized(big.into()))));
}

#[test]
fn re_reads_but_not_the_first_read_wait_a_random_delay_up_to_the_jitter() {
    let jitter = Duration::from_millis(800);
    let mut f = follower(&["http://a"], &["/k"]);
    f.reread_jitter = jitter;
    // The first read is not delayed.
    watching(&mut f, read(10, &[], &[]), &[1]);
    for round in 0..20 {
        let actions = f.handle(Input::Message(WatchMessage::Compacted {
            watch_id: 1,
            created: false,
            compact_revision: 20 + round,
        }));
        let [Action::Timer(Some(delay))] = actions[..] else {
            panic!("a delay before the re-read: {actions:#?}");
        };
        assert!(delay <= jitter, "{delay:?}");
        // Nothing happens while waiting, but a failure still fails over.
        assert!(f.handle(Input::ProgressDue).is_empty());
        assert!(has_read(&f.handle(Input::TimerFired)));
        f.handle(Input::ReadDone(read(30 + round, &[], &[])));
        f.handle(Input::WatchOpened);
        f.handle(created(1));
    }
    // A resume after a failover reads nothing and waits for nothing.
    f.handle(Input::Failed("watch on http://a ended".into()));
    f.handle(Input::TimerFired);
    let actions = f.handle(Input::Connected);
    assert_eq!(watchers(&actions).len(), 1);
    assert!(!actions.iter().any(|a| matches!(a, Action::Timer(Some(_)))));
}

/// Serializable reads (the gRPC proxy's path) delay the first read too, so a fleet started
/// together reaches the proxy spread out and mostly hits the cache the first host filled.
#[test]
fn the_first_read_waits_the_jitter_when_reads_go_through_a_proxy() {
    let jitter = Duration::from_millis(800);
    let mut f = follower(&["http://a"], &["/k"]);
    f.reread_jitter = jitter;
    f.jitter_first_read = true;
    assert_eq!(f.start(), vec![Action::Connect("http://a".into())]);
    let actions = f.handle(Input::Connected);
    let [Action::Timer(Some(delay))] = actions[..] else {
        panic!("a delay before the first read: {actions:#?}");
    };
    assert!(delay <= jitter, "{delay:?}");
    assert!(has_read(&f.handle(Input::TimerFired)));
}

#[test]
fn an_unanswered_progress_request_is_followed_by_a_linearizable_probe() {
    let mut f = follower(&["http://a"], &["/k"]);
    watching(&mut f, read(10, &[], &[]), &[1]);
    assert_eq!(f.handle(Input::ProgressDue), vec![Action::RequestProgress]);
    // An answer (here a progress report) clears it: no probe.
    f.handle(progress(-1, 10));
    assert_eq!(f.handle(Input::ProgressDue), vec![Action::RequestProgress]);
    // Nothing came (etcd 3.4's gRPC proxy): a probe with the next request.
    assert_eq!(
        f.handle(Input::ProgressDue),
        vec![Action::RequestProgress, Action::Confirm("/k".into())]
    );
    assert!(f.handle(Input::Confirmed(header(CLUSTER, 12))).is_empty());
    // The probe also notices a restore behind the proxy.
    let actions = f.handle(Input::ProgressDue);
    assert!(confirms(&actions));
    assert!(has_read(&f.handle(Input::Confirmed(header(CLUSTER, 3)))));
}
