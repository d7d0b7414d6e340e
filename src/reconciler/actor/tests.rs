//! The actor in paused time: snapshots go through the real watch channel it consumes, files
//! are real temp files, check and reload commands are real shell commands. Each test asserts
//! what was installed and reloaded, and the exact instant each reconcile started.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Actor, Handover, Report, Wiring};
use crate::batch::{Action, Batcher};
use crate::reconciler::testkit::{
    advance_to, batch, rendered, settle, within, Feed, FrozenClock, Scratch,
};
use crate::reconciler::{render_permits, InstallMode, Prepared, Status};

const MS: Duration = Duration::from_millis(1);

/// One actor, fed and watched by the test.
struct Rig {
    /// When the actor started: report instants are given as offsets from it.
    t0: Instant,
    feed: Feed,
    reports: mpsc::UnboundedReceiver<Report>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
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
    let task = tokio::spawn(Actor::new(Arc::new(p), wiring).run());
    Rig {
        t0: Instant::now(),
        feed,
        reports,
        cancel,
        task,
    }
}

impl Rig {
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

/// A failed reload leaves the new file installed and the reload owed: the retry finds the
/// file in sync and still runs `reload_cmd`.
#[tokio::test(start_paused = true)]
async fn failed_reload_stays_owed_until_it_succeeds() {
    let _clock = FrozenClock::hold();
    let s = Scratch::new();
    let reload = s.logging_cmd("reloads", Some("ok"));
    let p = s.resource("app", batch(500, 5000, None), Some("true"), Some(&reload));
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
