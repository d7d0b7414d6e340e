//! The actor in paused time: snapshots go through the real watch channel it consumes, files
//! are real temp files, check and reload commands are real shell commands. Each test asserts
//! what was installed and reloaded, and the exact instant each reconcile started.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Actor, ActorCommand, Handover, Report, Wiring};
use crate::batch::{Action, Batcher};
use crate::guard::Guard;
use crate::reconciler::testkit::{
    advance_to, batch, listed, rendered, settle, within, Feed, FrozenClock, Scratch,
};
use crate::reconciler::{render_permits, Approval, InstallMode, Prepared, Status};

const MS: Duration = Duration::from_millis(1);

/// One actor, fed and watched by the test.
struct Rig {
    /// When the actor started: report instants are given as offsets from it.
    t0: Instant,
    feed: Feed,
    reports: mpsc::UnboundedReceiver<Report>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// The supervisor's end of the actor's command channel.
    commands: mpsc::UnboundedSender<ActorCommand>,
}

fn start(p: Prepared, mode: InstallMode, handover: &Handover) -> Rig {
    let (feed, snapshots) = Feed::new();
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let wiring = Wiring {
        snapshots,
        cancel: cancel.clone(),
        permits: render_permits(),
        reports: reports_tx,
        handover: handover.clone(),
        mode,
    };
    let (commands, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(Actor::new(Arc::new(p), wiring).with_commands(rx).run());
    Rig {
        t0: Instant::now(),
        feed,
        reports,
        cancel,
        task,
        commands,
    }
}

impl Rig {
    /// Asks the actor to approve its held render; its answer.
    async fn approve(&self) -> Approval {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(ActorCommand::Approve(tx)).unwrap();
        within("the approval's answer", rx).await.unwrap()
    }

    /// The next report: when its reconcile started (after `t0`), and how it ended.
    async fn report(&mut self) -> (Duration, Status) {
        let r = within("a report", self.reports.recv())
            .await
            .expect("the actor stopped");
        (r.started - self.t0, r.status)
    }

    /// Stops the actor and checks it reported nothing more.
    async fn stop(mut self) {
        self.cancel.cancel();
        within("the actor to stop", self.task).await.unwrap();
        let extra: Vec<Report> = std::iter::from_fn(|| self.reports.try_recv().ok()).collect();
        assert!(extra.is_empty(), "unexpected reports: {extra:?}");
    }
}

/// Changes inside the quiet period make one reconcile, `debounce` after the last of them,
/// rendering the latest state: one install, one reload.
#[tokio::test(start_paused = true)]
async fn debounce_reconciles_once_after_the_last_change() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let reload = s.logging_cmd("reloads", None);
    let p = s.resource("app", batch(500, 5000, None), Some("true"), Some(&reload));
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    let t0 = rig.t0;

    rig.feed.put("1");
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    assert_eq!(s.read("app.conf"), Some(rendered("1")));

    rig.feed.put("2");
    advance_to(t0 + 300 * MS).await;
    rig.feed.put("3");
    advance_to(t0 + 800 * MS).await;
    assert_eq!(rig.report().await, (800 * MS, Status::InSync(3)));
    assert_eq!(s.read("app.conf"), Some(rendered("3")));
    assert_eq!(s.lines("reloads"), 2);
    rig.stop().await;
}

/// Under churn that never goes quiet, the batch reconciles `max_wait` after its first change.
#[tokio::test(start_paused = true)]
async fn max_wait_bounds_the_wait_under_churn() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let reload = s.logging_cmd("reloads", None);
    let p = s.resource("app", batch(500, 2000, None), Some("true"), Some(&reload));
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    let t0 = rig.t0;
    rig.feed.put("0");
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));

    // A change every 400 ms, each restarting the 500 ms quiet period.
    rig.feed.put("1");
    for k in 1..=4u32 {
        advance_to(t0 + k * 400 * MS).await;
        rig.feed.put(&(k + 1).to_string());
    }
    advance_to(t0 + 2000 * MS).await;
    assert_eq!(rig.report().await, (2000 * MS, Status::InSync(6)));
    assert_eq!(s.read("app.conf"), Some(rendered("5")));
    assert_eq!(s.lines("reloads"), 2);
    rig.stop().await;
}

/// A failing check is retried after 1 s, 2 s, 4 s … with no new change; the live file stays
/// away until the check passes, and no staged file is left behind.
#[tokio::test(start_paused = true)]
async fn failed_check_is_retried_with_backoff_until_it_passes() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let check = s.logging_cmd("checks", Some("ok"));
    let p = s.resource("app", batch(500, 5000, None), Some(&check), None);
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    let t0 = rig.t0;
    let failing = Status::Failing("check failed");

    rig.feed.put("1");
    assert_eq!(rig.report().await, (Duration::ZERO, failing.clone()));
    advance_to(t0 + 1000 * MS).await;
    assert_eq!(rig.report().await, (1000 * MS, failing.clone()));
    advance_to(t0 + 3000 * MS).await;
    assert_eq!(rig.report().await, (3000 * MS, failing));
    assert_eq!(s.read("app.conf"), None);
    assert_eq!(s.others(&["app.tera", "checks"]), Vec::<String>::new());

    s.touch("ok");
    advance_to(t0 + 7000 * MS).await;
    assert_eq!(rig.report().await, (7000 * MS, Status::InSync(1)));
    assert_eq!(s.read("app.conf"), Some(rendered("1")));
    assert_eq!(s.lines("checks"), 4);
    rig.stop().await;
}

/// With the reload budget spent, a changed file is not installed: the staged file is
/// dropped and the install waits for the budget, then installs the latest state.
#[tokio::test(start_paused = true)]
async fn reload_limit_defers_the_install_and_never_drops_it() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let reload = s.logging_cmd("reloads", None);
    let p = s.resource(
        "app",
        batch(500, 5000, Some("1/10s")),
        Some("true"),
        Some(&reload),
    );
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    let t0 = rig.t0;

    rig.feed.put("1");
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    rig.feed.put("2");
    advance_to(t0 + 500 * MS).await;
    assert_eq!(rig.report().await, (500 * MS, Status::Deferred));
    assert_eq!(s.read("app.conf"), Some(rendered("1")));
    assert_eq!(s.lines("reloads"), 1);
    assert_eq!(
        s.others(&["app.tera", "app.conf", "reloads"]),
        Vec::<String>::new()
    );

    advance_to(t0 + 1000 * MS).await;
    rig.feed.put("3");
    advance_to(t0 + 10_000 * MS).await;
    assert_eq!(rig.report().await, (10_000 * MS, Status::InSync(3)));
    assert_eq!(s.read("app.conf"), Some(rendered("3")));
    assert_eq!(s.lines("reloads"), 2);
    rig.stop().await;
}

/// Without rollback, a failed reload leaves the new file installed and the reload owed: the retry finds the
/// file in sync and still runs `reload_cmd`.
#[tokio::test(start_paused = true)]
async fn failed_reload_stays_owed_until_it_succeeds() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let reload = s.logging_cmd("reloads", Some("ok"));
    let mut p = s.resource("app", batch(500, 5000, None), Some("true"), Some(&reload));
    p.resource.rollback = false;
    let dest = p.resource.dest.clone();
    let handover = Handover::default();
    let mut rig = start(p, InstallMode::default(), &handover);
    let t0 = rig.t0;

    rig.feed.put("1");
    assert_eq!(
        rig.report().await,
        (Duration::ZERO, Status::Failing("reload failed"))
    );
    assert_eq!(s.read("app.conf"), Some(rendered("1")));
    assert!(handover.owes_reload(&dest));

    s.touch("ok");
    advance_to(t0 + 1000 * MS).await;
    assert_eq!(rig.report().await, (1000 * MS, Status::InSync(1)));
    assert_eq!(s.lines("reloads"), 2);
    assert!(!handover.owes_reload(&dest));
    rig.stop().await;
}

/// confd's `-sync-only`: files are installed, neither command runs, an owed reload is not
/// run for a file in sync, and the reload budget is never asked (or the second install
/// would be deferred).
#[tokio::test(start_paused = true)]
async fn sync_only_installs_without_commands_or_budget() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let check = format!("touch {}; exit 1", s.path("checked").display());
    let reload = format!("touch {}", s.path("reloaded").display());
    let p = s.resource(
        "app",
        batch(500, 5000, Some("1/1h")),
        Some(&check),
        Some(&reload),
    );
    let dest = p.resource.dest.clone();
    std::fs::write(&dest, rendered("1")).unwrap();
    let handover = Handover::default();
    handover.set_owed(&dest, true);
    let mode = InstallMode {
        noop: false,
        sync_only: true,
    };
    let mut rig = start(p, mode, &handover);
    let t0 = rig.t0;

    rig.feed.put("1");
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    assert!(handover.owes_reload(&dest));
    rig.feed.put("2");
    advance_to(t0 + 500 * MS).await;
    assert_eq!(rig.report().await, (500 * MS, Status::InSync(2)));
    rig.feed.put("3");
    advance_to(t0 + 1000 * MS).await;
    assert_eq!(rig.report().await, (1000 * MS, Status::InSync(3)));
    assert_eq!(s.read("app.conf"), Some(rendered("3")));
    assert_eq!((s.read("checked"), s.read("reloaded")), (None, None));
    rig.stop().await;
}

/// Cancelled while waiting, the actor stops at once and hands its reload budget over.
#[tokio::test(start_paused = true)]
async fn cancel_stops_a_waiting_actor_and_keeps_its_budget() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let p = s.resource("app", batch(500, 5000, Some("1/1h")), None, Some("true"));
    let dest = p.resource.dest.clone();
    let handover = Handover::default();
    let mut rig = start(p, InstallMode::default(), &handover);
    rig.feed.put("1");
    assert_eq!(rig.report().await.1, Status::InSync(1));
    rig.feed.put("2");
    settle().await;
    rig.stop().await;
    let budget = handover.take_budget(&dest).expect("budget handed over");
    // The one reload of the hour was spent on the first install.
    let now = Instant::now().into_std();
    let mut next = Batcher::new(batch(500, 5000, Some("1/1h")), now);
    next.resume_budget(budget);
    assert_eq!(next.request(now), Action::Reconcile);
    assert!(next.reload_permit(now).is_err());
}

fn guard(min_keys: usize, max_shrink: &str) -> Guard {
    Guard {
        min_keys,
        max_shrink: max_shrink.parse().unwrap(),
    }
}

/// A render that lost more than `max_shrink` of the keys is held: the live file stays, the
/// status says held with both counts, a further change is evaluated again (still held), and
/// the keys coming back within the guard install at once.
#[tokio::test(start_paused = true)]
async fn a_shrunken_render_is_held_until_the_keys_come_back() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let p = s.list_resource("app", guard(0, "50%"));
    let handover = Handover::default();
    let mut rig = start(p, InstallMode::default(), &handover);
    let t0 = rig.t0;
    rig.feed.set(&["a", "b", "c", "d"]);
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    assert_eq!(s.read("app.conf"), Some(listed(&["a", "b", "c", "d"])));

    rig.feed.set(&[]);
    advance_to(t0 + 500 * MS).await;
    let held = |keys| Status::Held { keys, last: 4 };
    assert_eq!(rig.report().await, (500 * MS, held(0)));
    rig.feed.set(&["a"]);
    advance_to(t0 + 1000 * MS).await;
    assert_eq!(rig.report().await, (1000 * MS, held(1)));
    assert_eq!(s.read("app.conf"), Some(listed(&["a", "b", "c", "d"])));

    rig.feed.set(&["a", "b", "c"]);
    advance_to(t0 + 1500 * MS).await;
    assert_eq!(rig.report().await, (1500 * MS, Status::InSync(4)));
    assert_eq!(s.read("app.conf"), Some(listed(&["a", "b", "c"])));
    // The guard now compares with 3 keys: 2 is a third less, within 50%.
    rig.feed.set(&["a", "b"]);
    advance_to(t0 + 2000 * MS).await;
    assert_eq!(rig.report().await, (2000 * MS, Status::InSync(5)));
    assert_eq!(handover.installed_keys(&s.path("app.conf")), Some(2));
    rig.stop().await;
}

/// An approval installs the held render once, at once (no debounce); the guard then compares
/// with that install, so the next drop is held again. Approving what is not held says so.
#[tokio::test(start_paused = true)]
async fn an_approval_installs_the_held_render_once() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let p = s.list_resource("app", guard(0, "50%"));
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    let t0 = rig.t0;
    rig.feed.set(&["a", "b", "c", "d"]);
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    assert_eq!(rig.approve().await, Approval::NotHeld);

    rig.feed.set(&["a"]);
    advance_to(t0 + 500 * MS).await;
    assert_eq!(
        rig.report().await,
        (500 * MS, Status::Held { keys: 1, last: 4 })
    );
    advance_to(t0 + 700 * MS).await;
    assert_eq!(rig.approve().await, Approval::Accepted);
    assert_eq!(rig.report().await, (700 * MS, Status::InSync(2)));
    assert_eq!(s.read("app.conf"), Some(listed(&["a"])));
    assert_eq!(rig.approve().await, Approval::NotHeld);

    rig.feed.set(&[]);
    advance_to(t0 + 1200 * MS).await;
    assert_eq!(
        rig.report().await,
        (1200 * MS, Status::Held { keys: 0, last: 1 })
    );
    assert_eq!(s.read("app.conf"), Some(listed(&["a"])));
    rig.stop().await;
}

/// `min_keys` holds even the first render (there is no file yet: none is created), and
/// max_shrink does not: with no install to compare with, it has nothing to say.
#[tokio::test(start_paused = true)]
async fn min_keys_holds_a_first_render_and_max_shrink_does_not() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let p = s.list_resource("app", guard(2, "none"));
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    let t0 = rig.t0;
    rig.feed.set(&["a"]);
    assert_eq!(
        rig.report().await,
        (Duration::ZERO, Status::Held { keys: 1, last: 0 })
    );
    assert_eq!(s.read("app.conf"), None);
    rig.feed.set(&["a", "b"]);
    advance_to(t0 + 500 * MS).await;
    assert_eq!(rig.report().await, (500 * MS, Status::InSync(2)));
    rig.stop().await;

    let s = Scratch::new();
    let p = s.list_resource("app", guard(0, "10%"));
    let mut rig = start(p, InstallMode::default(), &Handover::default());
    rig.feed.set(&[]);
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    assert_eq!(s.read("app.conf"), Some(String::new()));
    rig.stop().await;
}

/// The count of the last install passes to the next generation (a SIGHUP), so a wipe right
/// after a reload is still held.
#[tokio::test(start_paused = true)]
async fn the_last_install_count_survives_a_generation_change() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let handover = Handover::default();
    let mut rig = start(
        s.list_resource("app", Guard::default()),
        InstallMode::default(),
        &handover,
    );
    rig.feed.set(&["a", "b"]);
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));
    rig.stop().await;

    let mut rig = start(
        s.list_resource("app", Guard::default()),
        InstallMode::default(),
        &handover,
    );
    rig.feed.set(&[]);
    assert_eq!(
        rig.report().await,
        (Duration::ZERO, Status::Held { keys: 0, last: 2 })
    );
    assert_eq!(s.read("app.conf"), Some(listed(&["a", "b"])));
    rig.stop().await;
}

/// With rollback (the default), a failed reload puts the previous file back and reloads it;
/// the new content is retried with the backoff and installs once the reload passes.
#[tokio::test(start_paused = true)]
async fn failed_reload_rolls_back_and_the_retry_installs() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let reload = s.logging_cmd("reloads", Some("ok"));
    let p = s.resource("app", batch(500, 5000, None), Some("true"), Some(&reload));
    let dest = p.resource.dest.clone();
    let handover = Handover::default();
    let mut rig = start(p, InstallMode::default(), &handover);
    let t0 = rig.t0;
    s.touch("ok");
    rig.feed.put("1");
    assert_eq!(rig.report().await, (Duration::ZERO, Status::InSync(1)));

    std::fs::remove_file(s.path("ok")).unwrap();
    rig.feed.put("2");
    advance_to(t0 + 500 * MS).await;
    let rolled_back = Status::Failing("reload failed, rolled back");
    assert_eq!(rig.report().await, (500 * MS, rolled_back));
    assert_eq!(s.read("app.conf"), Some(rendered("1")));
    assert_eq!(
        s.lines("reloads"),
        3,
        "install, failed reload, reload after the rollback"
    );
    assert!(handover.owes_reload(&dest), "the service took neither file");

    s.touch("ok");
    advance_to(t0 + 1500 * MS).await;
    assert_eq!(rig.report().await, (1500 * MS, Status::InSync(2)));
    assert_eq!(s.read("app.conf"), Some(rendered("2")));
    assert!(!handover.owes_reload(&dest));
    rig.stop().await;
}

/// Each actor's future is allocated whole when it is spawned and lives as long as the
/// generation, and `once` spawns one reconcile per resource up front: a future that holds
/// a reconcile's state inline costs that much per resource. Once it was 95 KB (a command
/// buffer on the stack, copied by each wrapper around the steps): 9.5 MB at 100 resources.
#[test]
fn reconcile_and_actor_futures_stay_small() {
    const BOUND: usize = 16 * 1024;
    let s = Scratch::new();
    let p = s.resource("a", batch(500, 5000, None), Some("true"), Some("true"));
    let mode = InstallMode::default();
    let reconcile = p.reconcile(Arc::new(crate::store::KvView::default()), mode);
    let size = std::mem::size_of_val(&reconcile);
    assert!(size < BOUND, "a reconcile's future is {size} bytes");
    drop(reconcile);
    let (_feed, snapshots) = crate::reconciler::testkit::Feed::new();
    let wiring = Wiring {
        snapshots,
        cancel: CancellationToken::new(),
        reports: mpsc::unbounded_channel().0,
        permits: render_permits(),
        mode,
        handover: Handover::default(),
    };
    let actor = Actor::new(Arc::new(p), wiring).run();
    let size = std::mem::size_of_val(&actor);
    assert!(size < BOUND, "an actor's future is {size} bytes");
}
