//! Per-resource batching: when to reconcile, and whether a reload may happen now.
//!
//! This module owns the *decisions* of one resource actor: the debounce (quiet period) and
//! `max_wait` timers, the retry backoff after a failed reconcile, and the reload budget
//! (rate limit). It is a sans-IO state machine in the style of ntpd-rs's `NtpSourceAction`:
//! the actor passes in events with the current time and gets back exactly one [`Action`] to
//! carry out. Nothing here sleeps, spawns, reads a clock or touches etcd or the disk, so every
//! timing rule is unit-tested with plain `Instant`s.
//!
//! It does **not** own rendering, comparing, installing or running commands
//! ([`crate::reconciler`], [`crate::install`]), nor the timer itself: the actor keeps at most
//! one timer and re-arms it as told.
//!
//! # Contract with the actor
//!
//! - Call [`Batcher::on_change`] for each relevant etcd change, [`Batcher::request`] when a
//!   reconcile is wanted regardless of changes (start-up, SIGHUP, resync), and
//!   [`Batcher::on_timer`] when the armed timer fires.
//! - Every call returns the one next step. [`Action::ArmTimer`] replaces the armed timer;
//!   [`Action::Reconcile`] and [`Action::Idle`] leave no timer armed.
//! - After [`Action::Reconcile`], the actor renders the *latest* snapshot. If the render would
//!   change the file, it asks [`Batcher::reload_permit`] before installing; on `Err(t)` it
//!   installs nothing and reports [`Done::Deferred`]`(t)`. It always ends the reconcile with
//!   [`Batcher::on_done`].
//!
//! # Semantics (consul-template's quiescence, not abtreece's fixed delay)
//!
//! - A batch starts at its first change. Each change restarts the quiet period; the batch
//!   reconciles at `min(last_change + debounce, first_change + max_wait)`, so continuous churn
//!   still reconciles at least every `max_wait`.
//! - With `leading`, the first change after a quiet period (no change and no reconcile for at
//!   least `debounce`) reconciles at once; the rest of that burst is debounced as usual.
//! - Changes that arrive while a reconcile runs are kept, with their arrival times, and start
//!   the next batch when it finishes.
//! - The reload rate limit **defers, never drops**: a denied reload leaves the resource dirty,
//!   and it reconciles again (rendering the latest state) at the permitted time. Changes
//!   during a deferral are batched as usual but wait for that time too, since an earlier
//!   render could not reload anyway.
//! - A failed reconcile is retried after 1 s, 2 s, 4 s … capped at 60 s; a change during the
//!   backoff starts a normal batch (reconciled at once with `leading` after a quiet period);
//!   only a success resets the backoff.
//! - [`Batcher::request`] reconciles at once from any state (after the running reconcile, if
//!   one runs); the reload budget still applies through [`Batcher::reload_permit`].
//!
//! # One batch, on a timeline
//!
//! `debounce = 500ms`, `max_wait = 2s`, `leading = false`; `c` = a change arrives:
//!
//! ```text
//! t (ms)   0      400    800    1200   1600   2000      2100   2300     2800
//! event    c      c      c      c      c      timer     done   c        timer
//! due      500    900    1300   1700   2000*                   2800
//! state    Batching ─────────────────────────▶Running──▶Idle──▶Batching▶Running
//! action   ArmTimer(due) after every change   Reconcile Idle   ArmTimer Reconcile
//!
//! * 1600 + 500 = 2100, capped at first change + max_wait = 0 + 2000.
//!   The change at 2300 starts a new batch; had it arrived during the reconcile
//!   (2000..2100), on_done would have started that batch from its arrival time.
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{BatchSettings, RateLimit};

/// First retry delay after a failed reconcile. Short, because most failures (an etcd
/// hiccup, a check command racing a restart) are transient.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);

/// Longest retry delay. A broken template should not hammer etcd or the service, but a
/// fix should be picked up within a minute even if no key changes.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// The one thing the actor should do next.
///
/// Exactly one, so the actor's loop is a plain `match` and cannot forget a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a reconcile now (render the latest snapshot; install and reload only if the file
    /// changes and [`Batcher::reload_permit`] allows it), then report it with
    /// [`Batcher::on_done`]. No timer stays armed.
    Reconcile,
    /// Arm (or re-arm) the single timer for this instant, replacing any earlier one, and call
    /// [`Batcher::on_timer`] when it fires. Always later than the `now` passed in.
    ArmTimer(Instant),
    /// Nothing to do until the next event: disarm the timer. While a reconcile runs this just
    /// means "keep waiting for it to finish".
    Idle,
}

/// How a reconcile started by [`Action::Reconcile`] ended.
///
/// The batcher needs only this much: whether the resource is now clean, still dirty because
/// the reload budget said "later", or dirty because something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The render matched the live file: nothing written, nothing reloaded.
    Unchanged,
    /// The new file was installed (and reloaded, if the resource has a reload command).
    Installed,
    /// The render would change the file but [`Batcher::reload_permit`] returned `Err(t)`:
    /// nothing was installed, and the resource must reconcile again at `t`.
    Deferred(Instant),
    /// Render, check, install or reload failed; retry with backoff.
    Failed,
}

/// A run of changes that one reconcile will cover: the first and the latest arrival.
///
/// `first` anchors `max_wait`; `last` anchors the debounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// When the first change of the run arrived.
    pub first: Instant,
    /// When the latest change of the run arrived.
    pub last: Instant,
}

impl Changes {
    fn at(t: Instant) -> Self {
        Changes { first: t, last: t }
    }

    fn extended(self, t: Instant) -> Self {
        Changes {
            first: self.first,
            last: t,
        }
    }
}

/// Where the resource is in its cycle. Returned by [`Batcher::state`] for status lines, logs
/// and test assertions; every transition is checked against a fixed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Clean: the last reconcile succeeded and nothing has changed since. No timer.
    Idle,
    /// Collecting changes; reconciles at `min(last + debounce, first + max_wait)`, but not
    /// before `not_before` (set when the batch began during a rate-limit deferral, because a
    /// reconcile before then could not reload anyway).
    Batching {
        /// The changes so far.
        changes: Changes,
        /// Floor from an earlier [`Done::Deferred`], if any.
        not_before: Option<Instant>,
    },
    /// A reconcile is in flight. What arrives meanwhile is kept and replayed by
    /// [`Batcher::on_done`].
    Running {
        /// Changes that arrived during the reconcile, with their arrival times.
        queued: Option<Changes>,
        /// Whether [`Batcher::request`] was called during the reconcile.
        requested: bool,
    },
    /// The file needs an install but the reload budget is spent; reconcile again at `until`.
    Deferred {
        /// When the budget allows the next reload.
        until: Instant,
    },
    /// The last reconcile failed; retry at `retry_at` unless a change comes first.
    Backoff {
        /// When to retry.
        retry_at: Instant,
    },
}

impl State {
    /// A short lowercase name for status lines and log fields (`STATUS=`, `state=`).
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Batching { .. } => "batching",
            State::Running { .. } => "running",
            State::Deferred { .. } => "deferred",
            State::Backoff { .. } => "backoff",
        }
    }
}

/// The allowed transitions. Anything else is a bug in this module.
fn allowed(from: &State, to: &State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Idle, Batching { .. } | Running { .. })
            | (Batching { .. }, Batching { .. } | Running { .. })
            | (
                Running { .. },
                Running { .. } | Idle | Deferred { .. } | Backoff { .. }
            )
            | (
                Deferred { .. } | Backoff { .. },
                Batching { .. } | Running { .. }
            )
    )
}

/// Delay before retry number `failures` (1-based): 1 s, 2 s, 4 s … capped at [`RETRY_MAX`].
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (RETRY_FIRST * (1u32 << doublings)).min(RETRY_MAX)
}

type Limiter = RateLimiter<
    NotKeyed,
    InMemoryState,
    FakeRelativeClock,
    NoOpMiddleware<<FakeRelativeClock as Clock>::Instant>,
>;

/// The reload budget: a governor GCRA limiter driven by a clock we advance ourselves, so the
/// decision depends only on the `now`s passed in (deterministic, testable, no syscalls).
/// Handed from a batcher to its successor across a SIGHUP ([`Batcher::take_budget`]).
#[derive(Debug)]
pub struct Budget {
    /// The `reload_limit` it enforces.
    limit: RateLimit,
    limiter: Limiter,
    /// A handle on the limiter's clock (clones share the time).
    clock: FakeRelativeClock,
    /// The instant the clock currently stands for.
    clock_at: Instant,
}

impl Budget {
    fn new(limit: RateLimit, now: Instant) -> Self {
        // `count` per `per`, burst `count`: one reload comes back every `per / count`,
        // rounded up so the long-run rate never exceeds `count` per `per`.
        let nanos = limit.per.as_nanos().div_ceil(u128::from(limit.count.get()));
        let period = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX).max(1));
        let quota = Quota::with_period(period)
            .expect("period is at least 1ns")
            .allow_burst(limit.count);
        let clock = FakeRelativeClock::default();
        Budget {
            limit,
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            clock_at: now,
        }
    }

    fn permit(&mut self, now: Instant) -> Result<(), Instant> {
        self.clock
            .advance(now.saturating_duration_since(self.clock_at));
        self.clock_at = self.clock_at.max(now);
        self.limiter
            .check()
            .map_err(|not_until| self.clock_at + not_until.wait_time_from(self.clock.now()))
    }
}

/// The batching state machine of one resource.
///
/// Owned by that resource's actor, which is its only caller; it is `Send` so the actor can
/// live on any tokio worker. Time only ever moves forward inside: a `now` earlier than one
/// already seen is treated as that later time, so a stale timestamp cannot reorder events.
///
/// # Reload rate limit
///
/// `reload_limit = count/per` is a governor GCRA limiter with burst `count` that gives one
/// reload back every `per / count`. This smooths rather than counts a fixed window: after a
/// full burst at `t`, tokens return during the following window, so **a window-long interval
/// can see up to `2·count − 1` reloads** (e.g. `3/10s`: three at 0 s, then 3.3 s and 6.7 s).
/// The long-run rate is `count` per `per`. A strict "≤ count in any window" would need a
/// sliding log of reload times instead (research/rust-deps.md §3.2).
///
/// # Misuse
///
/// Calling [`Batcher::on_done`] or [`Batcher::reload_permit`] when no reconcile is running is
/// a bug in the actor: it panics in debug builds (so tests catch it) and is ignored in release
/// builds (so one resource's logic bug does not stop it from tracking changes).
#[derive(Debug)]
pub struct Batcher {
    debounce: Duration,
    max_wait: Duration,
    leading: bool,
    state: State,
    /// Latest time seen; inputs are clamped to it.
    now: Instant,
    /// Latest change, reconcile start or reconcile end: what "quiet" is measured from.
    last_activity: Option<Instant>,
    /// Consecutive failed reconciles; the backoff level.
    failures: u32,
    /// `None`: reloads are unlimited.
    budget: Option<Budget>,
}

impl Batcher {
    /// A clean, idle batcher for one resource.
    ///
    /// `settings.leading` picks leading-edge batching (see the module docs); by default it is
    /// off (trailing only, like consul-template). `now` anchors the reload budget's clock.
    /// Call [`Batcher::request`] for the initial reconcile.
    pub fn new(settings: BatchSettings, now: Instant) -> Self {
        Batcher {
            debounce: settings.debounce,
            max_wait: settings.max_wait,
            leading: settings.leading,
            state: State::Idle,
            now,
            last_activity: None,
            failures: 0,
            budget: settings.reload_limit.map(|l| Budget::new(l, now)),
        }
    }

    /// Hands over the reload budget, for the batcher that replaces this one when the
    /// configuration is read again: reloads spent before a SIGHUP still count after it.
    pub fn take_budget(&mut self) -> Option<Budget> {
        self.budget.take()
    }

    /// Continues with `budget` (from the batcher this one replaces) when it enforces the same
    /// `reload_limit`; a changed limit starts afresh.
    pub fn resume_budget(&mut self, budget: Budget) {
        if self
            .budget
            .as_ref()
            .is_some_and(|b| b.limit == budget.limit)
        {
            self.budget = Some(budget);
        }
    }

    /// A relevant etcd change arrived at `now`.
    ///
    /// Starts or extends a batch, or, while a reconcile runs, remembers the change for the
    /// next batch. If a deadline had already passed (the timer is late), reconciles at once:
    /// the render reads the latest snapshot, so it covers this change too.
    pub fn on_change(&mut self, now: Instant) -> Action {
        let now = self.observe(now);
        if self.overdue(now) {
            return self.start(now);
        }
        let quiet = self.quiet(now);
        self.last_activity = Some(now);
        match self.state {
            State::Running { queued, requested } => {
                let queued = Some(queued.map_or(Changes::at(now), |c| c.extended(now)));
                self.set(State::Running { queued, requested });
                return Action::Idle;
            }
            State::Batching {
                changes,
                not_before,
            } => self.set(State::Batching {
                changes: changes.extended(now),
                not_before,
            }),
            State::Idle | State::Backoff { .. } => {
                if self.leading && quiet {
                    return self.start(now);
                }
                self.set(State::Batching {
                    changes: Changes::at(now),
                    not_before: None,
                });
            }
            State::Deferred { until } => self.set(State::Batching {
                changes: Changes::at(now),
                not_before: Some(until),
            }),
        }
        self.poll(now)
    }

    /// The armed timer fired at `now`.
    ///
    /// Timers can be early, late or stale (armed for a deadline that has since moved): this
    /// reconciles only if the current deadline has passed, and otherwise returns the current
    /// [`Action::ArmTimer`] again, or [`Action::Idle`] if nothing is due.
    pub fn on_timer(&mut self, now: Instant) -> Action {
        let now = self.observe(now);
        self.poll(now)
    }

    /// The actor's render changes the file and it wants to install and reload now.
    ///
    /// `Ok(())` spends one reload from the budget (so ask only when about to install).
    /// `Err(t)`: not before `t`; install nothing and report [`Done::Deferred`]`(t)`.
    /// Always `Ok` without a `reload_limit`. See [`Batcher`] for the GCRA caveat.
    pub fn reload_permit(&mut self, now: Instant) -> Result<(), Instant> {
        let now = self.observe(now);
        debug_assert!(
            matches!(self.state, State::Running { .. }),
            "reload_permit outside a reconcile (state {:?})",
            self.state
        );
        match &mut self.budget {
            None => Ok(()),
            Some(budget) => budget.permit(now),
        }
    }

    /// The reconcile started by [`Action::Reconcile`] ended at `now` with `done`.
    ///
    /// Applies the outcome (clean, deferred, or failed with backoff), then replays what
    /// arrived during the reconcile as if it arrived just after: queued changes start a batch
    /// with their original arrival times (so `max_wait` holds under continuous churn), and a
    /// queued [`Batcher::request`] reconciles at once.
    pub fn on_done(&mut self, now: Instant, done: Done) -> Action {
        let now = self.observe(now);
        let State::Running { queued, requested } = self.state else {
            debug_assert!(
                false,
                "on_done outside a reconcile (state {:?})",
                self.state
            );
            return self.poll(now);
        };
        self.last_activity = Some(now);
        match done {
            Done::Unchanged | Done::Installed => {
                self.failures = 0;
                self.set(State::Idle);
            }
            Done::Deferred(until) => self.set(State::Deferred { until }),
            Done::Failed => {
                self.failures = self.failures.saturating_add(1);
                let retry_at = now + retry_delay(self.failures);
                self.set(State::Backoff { retry_at });
            }
        }
        if let Some(changes) = queued {
            let not_before = match self.state {
                State::Deferred { until } => Some(until),
                _ => None,
            };
            self.set(State::Batching {
                changes,
                not_before,
            });
        }
        if requested {
            return self.start(now);
        }
        self.poll(now)
    }

    /// A reconcile is wanted regardless of changes: start-up, SIGHUP, resync after an etcd
    /// re-read.
    ///
    /// Reconciles at once, skipping debounce, backoff and deferral timers (the reload budget
    /// is still enforced by [`Batcher::reload_permit`]). During a reconcile, it queues one
    /// more reconcile right after it.
    pub fn request(&mut self, now: Instant) -> Action {
        let now = self.observe(now);
        match self.state {
            State::Running { queued, .. } => {
                self.set(State::Running {
                    queued,
                    requested: true,
                });
                Action::Idle
            }
            _ => self.start(now),
        }
    }

    /// Where the resource is in its cycle, for status lines, logs and assertions.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the next reconcile is due, if one is scheduled: for "next render at …" in status
    /// output. `None` when idle or while a reconcile runs.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Idle | State::Running { .. } => None,
            State::Batching {
                changes,
                not_before,
            } => {
                let due = (changes.last + self.debounce).min(changes.first + self.max_wait);
                Some(not_before.map_or(due, |floor| floor.max(due)))
            }
            State::Deferred { until } => Some(until),
            State::Backoff { retry_at } => Some(retry_at),
        }
    }

    /// Consecutive failed reconciles (the backoff level), for status and logs.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Clamps `now` so time never runs backwards inside the machine.
    fn observe(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn overdue(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|due| due <= now)
    }

    /// No change and no reconcile for at least `debounce`.
    fn quiet(&self, now: Instant) -> bool {
        self.last_activity
            .is_none_or(|t| now.saturating_duration_since(t) >= self.debounce)
    }

    /// The action the current state calls for at `now`.
    fn poll(&mut self, now: Instant) -> Action {
        match self.deadline() {
            None => Action::Idle,
            Some(due) if due <= now => self.start(now),
            Some(due) => Action::ArmTimer(due),
        }
    }

    fn start(&mut self, now: Instant) -> Action {
        self.last_activity = Some(now);
        self.set(State::Running {
            queued: None,
            requested: false,
        });
        Action::Reconcile
    }

    fn set(&mut self, next: State) {
        debug_assert!(
            allowed(&self.state, &next),
            "batch: transition {:?} -> {:?} is not allowed",
            self.state,
            next
        );
        self.state = next;
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn settings(debounce_ms: u64, max_wait_ms: u64, limit: Option<&str>) -> BatchSettings {
        BatchSettings {
            debounce: Duration::from_millis(debounce_ms),
            max_wait: Duration::from_millis(max_wait_ms),
            reload_limit: limit.map(|l| l.parse().expect("valid limit")),
            leading: false,
            guard: crate::guard::Guard::default(),
        }
    }

    /// What a simulated reconcile reports when the sim completes it by itself.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Auto {
        /// The test calls `done` itself.
        Off,
        /// Every reconcile ends at once with `Unchanged`.
        Unchanged,
        /// Every render changes the file: ask for a permit, then `Installed` or `Deferred`.
        Render,
        /// Every reconcile fails at once.
        Fail,
    }

    /// A fake actor: one timer, fires it when time passes it, records what happened.
    struct Sim {
        b: Batcher,
        t0: Instant,
        now: Instant,
        timer: Option<Instant>,
        running: bool,
        auto: Auto,
        /// Reconcile starts, in ms from t0.
        starts: Vec<u64>,
        /// Permitted reloads, in ms from t0.
        reloads: Vec<u64>,
        /// Deferrals reported, in ms from t0: (when, until).
        deferrals: Vec<(u64, u64)>,
        /// Version of the desired state: bumped by every change.
        version: u64,
        /// The version the running reconcile renders (the latest when it started).
        rendering: Option<u64>,
        /// The version the live file reflects.
        installed: u64,
    }

    impl Sim {
        fn new(s: BatchSettings, leading: bool, auto: Auto) -> Sim {
            let t0 = Instant::now();
            Sim {
                b: Batcher::new(BatchSettings { leading, ..s }, t0),
                t0,
                now: t0,
                timer: None,
                running: false,
                auto,
                starts: vec![],
                reloads: vec![],
                deferrals: vec![],
                version: 0,
                rendering: None,
                installed: 0,
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn ms(&self, t: Instant) -> u64 {
            t.duration_since(self.t0).as_millis() as u64
        }

        /// Carries out an action and checks it fits the state.
        fn apply(&mut self, a: Action) -> Action {
            match a {
                Action::Reconcile => {
                    assert!(!self.running, "Reconcile while one runs");
                    assert!(matches!(self.b.state(), State::Running { .. }));
                    self.running = true;
                    self.timer = None;
                    self.starts.push(self.ms(self.now));
                    self.rendering = Some(self.version);
                    self.complete_auto();
                }
                Action::ArmTimer(t) => {
                    assert!(t > self.now, "timer armed in the past");
                    assert_eq!(self.b.deadline(), Some(t));
                    self.timer = Some(t);
                }
                Action::Idle => {
                    assert!(matches!(
                        self.b.state(),
                        State::Idle | State::Running { .. }
                    ));
                    assert_eq!(self.b.deadline(), None);
                    self.timer = None;
                }
            }
            a
        }

        /// The outcome a render that changes the file reports.
        fn render_outcome(&mut self) -> Done {
            match self.b.reload_permit(self.now) {
                Ok(()) => {
                    self.reloads.push(self.ms(self.now));
                    Done::Installed
                }
                Err(t) => {
                    assert!(t > self.now);
                    self.deferrals.push((self.ms(self.now), self.ms(t)));
                    Done::Deferred(t)
                }
            }
        }

        fn complete_auto(&mut self) {
            let done = match self.auto {
                Auto::Off => return,
                Auto::Unchanged => Done::Unchanged,
                Auto::Fail => Done::Failed,
                Auto::Render => self.render_outcome(),
            };
            self.finish(done);
        }

        fn finish(&mut self, done: Done) -> Action {
            assert!(self.running, "done without a running reconcile");
            self.running = false;
            let rendered = self.rendering.take().expect("a reconcile was started");
            if matches!(done, Done::Installed | Done::Unchanged) {
                self.installed = rendered;
            }
            let a = self.b.on_done(self.now, done);
            self.apply(a)
        }

        /// Lets time pass to `ms`, firing the timer whenever it comes due.
        fn run_to(&mut self, ms: u64) {
            self.run_until(self.at(ms));
        }

        /// Lets time pass to `end`, firing the timer whenever it comes due.
        fn run_until(&mut self, end: Instant) {
            assert!(end >= self.now, "sim time goes forward only");
            while let Some(t) = self.timer.filter(|&t| t <= end) {
                self.now = t;
                self.timer = None;
                let due = self.b.deadline();
                let a = self.b.on_timer(t);
                if a == Action::Reconcile {
                    assert!(due.is_some_and(|d| d <= t), "reconciled before due");
                }
                self.apply(a);
            }
            self.now = end;
        }

        fn change(&mut self, ms: u64) -> Action {
            self.run_to(ms);
            self.version += 1;
            let a = self.b.on_change(self.now);
            self.apply(a)
        }

        fn request(&mut self, ms: u64) -> Action {
            self.run_to(ms);
            let a = self.b.request(self.now);
            self.apply(a)
        }

        fn done(&mut self, ms: u64, done: Done) -> Action {
            self.run_to(ms);
            self.finish(done)
        }

        fn timer_ms(&self) -> Option<u64> {
            self.timer.map(|t| self.ms(t))
        }
    }

    #[test]
    fn module_doc_timeline() {
        let mut s = Sim::new(settings(500, 2 * S, None), false, Auto::Off);
        let dues: Vec<Action> = [0, 400, 800, 1200, 1600].map(|t| s.change(t)).to_vec();
        let want: Vec<Action> = [500, 900, 1300, 1700, 2000]
            .map(|t| Action::ArmTimer(s.at(t)))
            .to_vec();
        assert_eq!(dues, want);
        s.run_to(2000);
        assert_eq!(s.starts, vec![2000]);
        assert_eq!(s.done(2100, Done::Installed), Action::Idle);
        assert_eq!(s.change(2300), Action::ArmTimer(s.at(2800)));
        s.run_to(2800);
        assert_eq!(s.starts, vec![2000, 2800]);
    }

    #[test]
    fn debounce_restarts_on_every_change() {
        let mut s = Sim::new(settings(500, 5 * S, None), false, Auto::Off);
        assert_eq!(s.change(0), Action::ArmTimer(s.at(500)));
        assert_eq!(s.change(300), Action::ArmTimer(s.at(800)));
        assert_eq!(s.change(700), Action::ArmTimer(s.at(1200)));
        s.run_to(1199);
        assert!(s.starts.is_empty(), "no reconcile inside the quiet period");
        s.run_to(1200);
        assert_eq!(s.starts, vec![1200]);
        assert_eq!(s.done(1250, Done::Installed), Action::Idle);
        assert_eq!(s.b.state(), State::Idle);
    }

    #[test]
    fn max_wait_caps_the_delay_from_the_first_change() {
        let mut s = Sim::new(settings(500, 2 * S, None), false, Auto::Off);
        for t in (0..2000).step_by(400) {
            s.change(t);
        }
        assert_eq!(s.timer_ms(), Some(2000), "capped at first + max_wait");
        s.run_to(2000);
        assert_eq!(s.starts, vec![2000]);
    }

    #[test]
    fn max_wait_holds_under_continuous_churn() {
        // Changes every debounce/2 for 3 × max_wait: a reconcile at least every max_wait.
        let (debounce, max_wait) = (400, 2 * S);
        let mut s = Sim::new(settings(debounce, max_wait, None), false, Auto::Unchanged);
        let mut t = 0;
        while t <= 3 * max_wait {
            s.change(t);
            t += debounce / 2;
        }
        s.run_to(t + max_wait);
        assert!(s.starts.len() >= 3, "starts: {:?}", s.starts);
        assert_eq!(s.starts[0], max_wait);
        let mut prev = 0;
        for &start in &s.starts {
            assert!(start - prev <= max_wait, "gap {prev}..{start} > max_wait");
            prev = start;
        }
        // The trailing batch after the churn stops reconciles within debounce.
        assert_eq!(*s.starts.last().unwrap(), 3 * max_wait + debounce);
        assert_eq!(s.b.state(), State::Idle);
    }

    #[test]
    fn max_wait_below_debounce_wins() {
        let mut s = Sim::new(settings(S, 300, None), false, Auto::Off);
        assert_eq!(s.change(0), Action::ArmTimer(s.at(300)));
        assert_eq!(s.change(200), Action::ArmTimer(s.at(300)));
    }

    #[test]
    fn zero_debounce_reconciles_immediately() {
        let mut s = Sim::new(settings(0, 5 * S, None), false, Auto::Off);
        assert_eq!(s.change(10), Action::Reconcile);
        assert_eq!(s.change(20), Action::Idle, "queued while running");
        assert_eq!(s.done(30, Done::Installed), Action::Reconcile);
        assert_eq!(s.starts, vec![10, 30]);
        assert_eq!(s.done(40, Done::Unchanged), Action::Idle);
    }

    #[test]
    fn trailing_only_by_default() {
        let mut s = Sim::new(settings(500, 5 * S, None), false, Auto::Off);
        assert_eq!(s.change(10 * S), Action::ArmTimer(s.at(10 * S + 500)));
    }

    #[test]
    fn leading_reconciles_first_change_then_debounces_the_burst() {
        let mut s = Sim::new(settings(500, 5 * S, None), true, Auto::Off);
        assert_eq!(s.change(0), Action::Reconcile, "first change after quiet");
        assert_eq!(s.change(100), Action::Idle);
        assert_eq!(s.change(200), Action::Idle);
        // The burst's remaining changes are debounced from their arrival.
        assert_eq!(s.done(250, Done::Installed), Action::ArmTimer(s.at(700)));
        assert_eq!(s.change(600), Action::ArmTimer(s.at(1100)));
        s.run_to(1100);
        assert_eq!(s.starts, vec![0, 1100]);
        s.done(1150, Done::Installed);
        // Quiet for ≥ debounce since the last reconcile: leading again.
        assert_eq!(s.change(1650), Action::Reconcile);
    }

    #[test]
    fn leading_needs_a_quiet_period() {
        let mut s = Sim::new(settings(500, 5 * S, None), true, Auto::Off);
        assert_eq!(s.change(0), Action::Reconcile);
        assert_eq!(s.done(100, Done::Installed), Action::Idle);
        // 300 ms after the reconcile ended: not quiet, so trailing.
        assert_eq!(s.change(400), Action::ArmTimer(s.at(900)));
    }

    #[test]
    fn changes_during_a_reconcile_start_the_next_batch_at_their_arrival() {
        let mut s = Sim::new(settings(500, 2 * S, None), false, Auto::Off);
        s.change(0);
        s.run_to(500);
        assert_eq!(s.starts, vec![500]);
        assert_eq!(s.change(600), Action::Idle);
        assert_eq!(
            s.b.state(),
            State::Running {
                queued: Some(Changes::at(s.at(600))),
                requested: false
            }
        );
        assert_eq!(s.change(900), Action::Idle);
        // Done before the quiet period after 900 ends: wait for it.
        assert_eq!(s.done(1000, Done::Installed), Action::ArmTimer(s.at(1400)));
    }

    #[test]
    fn long_reconcile_under_churn_still_honours_max_wait() {
        let mut s = Sim::new(settings(500, 2 * S, None), false, Auto::Off);
        assert_eq!(s.request(0), Action::Reconcile);
        for t in (100..=3000).step_by(100) {
            assert_eq!(s.change(t), Action::Idle);
        }
        // First queued change at 100: max_wait passed at 2100, so reconcile at once.
        assert_eq!(s.done(3000, Done::Installed), Action::Reconcile);
    }

    #[test]
    fn rate_limit_defers_and_never_drops() {
        // "3/10s" and a burst of 10 renders that each change the file (debounce 0).
        let mut s = Sim::new(settings(0, 5 * S, Some("3/10s")), false, Auto::Render);
        for t in (0..1000).step_by(100) {
            s.change(t);
        }
        // The burst: exactly 3 reloads; the 4th render is deferred, not dropped.
        assert_eq!(s.reloads, vec![0, 100, 200]);
        assert_eq!(s.deferrals, vec![(300, 3333)]);
        // Later changes wait for the floor instead of rendering in vain.
        assert_eq!(s.starts.len(), 4);
        assert_eq!(s.timer_ms(), Some(3333));
        s.run_to(20 * S);
        // At the permitted time the latest state is reconciled and reloaded.
        assert_eq!(s.reloads, vec![0, 100, 200, 3333]);
        assert_eq!(s.starts.last(), Some(&3333));
        assert_eq!(s.b.state(), State::Idle);
    }

    #[test]
    fn rate_limit_gcra_caveat_up_to_2n_minus_1_per_window() {
        // Documented, not desired: under constant pressure GCRA lets 2N−1 through one window.
        let mut s = Sim::new(settings(0, 5 * S, Some("3/10s")), false, Auto::Render);
        for t in (0..30 * S).step_by(100) {
            s.change(t);
        }
        s.run_to(60 * S);
        let in_first_window = s.reloads.iter().filter(|&&r| r < 10 * S).count();
        assert_eq!(in_first_window, 5);
        for (i, &r) in s.reloads.iter().enumerate() {
            let window = s.reloads[i..].iter().filter(|&&x| x < r + 10 * S).count();
            assert!(window <= 5, "window from {r}: {window}");
        }
        // Long-run rate is 3 per 10 s: one every 3.33 s after the burst.
        for pair in s.reloads[3..].windows(2) {
            assert!(pair[1] - pair[0] >= 3333, "{pair:?}");
        }
        assert_eq!(s.b.state(), State::Idle);
    }

    #[test]
    fn deferred_then_change_waits_for_the_floor_and_debounce() {
        let mut s = Sim::new(settings(500, 2 * S, Some("1/10s")), false, Auto::Render);
        s.change(0);
        s.run_to(500);
        assert_eq!(s.reloads, vec![500]);
        s.change(600);
        s.run_to(1100);
        assert_eq!(s.deferrals, vec![(1100, 10_500)]);
        assert_eq!(
            s.b.state(),
            State::Deferred {
                until: s.at(10_500)
            }
        );
        // A change close to the floor: debounce still applies after it.
        assert_eq!(s.change(10_400), Action::ArmTimer(s.at(10_900)));
        // A change far before it: the floor holds.
        let mut s2 = Sim::new(settings(500, 2 * S, Some("1/10s")), false, Auto::Render);
        s2.change(0);
        s2.run_to(500);
        s2.change(600);
        s2.run_to(1100);
        assert_eq!(s2.change(2000), Action::ArmTimer(s2.at(10_500)));
        s2.run_to(30 * S);
        assert_eq!(s2.reloads, vec![500, 10_500]);
    }

    #[test]
    fn unlimited_without_reload_limit() {
        let mut s = Sim::new(settings(0, 5 * S, None), false, Auto::Render);
        for t in 0..50 {
            s.change(t * 10);
        }
        assert_eq!(s.reloads.len(), 50);
        assert!(s.deferrals.is_empty());
    }

    #[test]
    fn failures_back_off_exponentially_capped_and_reset_on_success() {
        let mut s = Sim::new(settings(0, 5 * S, None), false, Auto::Fail);
        s.request(0);
        s.run_to(300 * S);
        let gaps: Vec<u64> = s.starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(
            &gaps[..9],
            &[
                S,
                2 * S,
                4 * S,
                8 * S,
                16 * S,
                32 * S,
                60 * S,
                60 * S,
                60 * S
            ]
        );
        assert!(s.b.failures() >= 9);
        // A success resets the level.
        s.auto = Auto::Off;
        let t = s.timer_ms().unwrap();
        s.run_to(t);
        s.done(t, Done::Installed);
        assert_eq!(s.b.failures(), 0);
        s.auto = Auto::Fail;
        let t = t + 10 * S;
        s.request(t);
        assert_eq!(s.timer_ms(), Some(t + S));
        for n in 1..=20 {
            assert!(retry_delay(n) <= RETRY_MAX);
        }
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn change_during_backoff_starts_a_normal_batch_and_keeps_the_level() {
        let mut s = Sim::new(settings(500, 2 * S, None), false, Auto::Off);
        s.request(0);
        s.done(0, Done::Failed);
        s.run_to(S);
        s.done(S, Done::Failed);
        assert_eq!(
            s.b.state(),
            State::Backoff {
                retry_at: s.at(3 * S)
            }
        );
        // A change reconciles after its debounce, not at the retry time.
        assert_eq!(s.change(1200), Action::ArmTimer(s.at(1700)));
        s.run_to(1700);
        assert_eq!(s.starts, vec![0, S, 1700]);
        // The level was kept: the next failure waits 4 s.
        assert_eq!(s.done(1800, Done::Failed), Action::ArmTimer(s.at(5800)));
        assert_eq!(s.b.failures(), 3);
    }

    #[test]
    fn leading_change_during_quiet_backoff_reconciles_at_once() {
        let mut s = Sim::new(settings(500, 2 * S, None), true, Auto::Off);
        s.request(0);
        s.done(0, Done::Failed);
        s.run_to(S);
        s.done(S, Done::Failed);
        assert_eq!(s.change(2 * S), Action::Reconcile);
    }

    #[test]
    fn stale_and_early_timers_do_not_reconcile() {
        let mut b = Batcher::new(settings(500, 5 * S, None), Instant::now());
        let t0 = b.now;
        let ms = |m: u64| t0 + Duration::from_millis(m);
        assert_eq!(b.on_timer(ms(0)), Action::Idle, "nothing armed");
        assert_eq!(b.on_change(ms(0)), Action::ArmTimer(ms(500)));
        assert_eq!(b.on_change(ms(400)), Action::ArmTimer(ms(900)));
        // The timer armed for 500 fires: stale, re-arm for 900.
        assert_eq!(b.on_timer(ms(500)), Action::ArmTimer(ms(900)));
        assert_eq!(b.on_timer(ms(899)), Action::ArmTimer(ms(900)));
        // Late is fine.
        assert_eq!(b.on_timer(ms(950)), Action::Reconcile);
        // A timer firing during the reconcile changes nothing.
        assert_eq!(b.on_timer(ms(960)), Action::Idle);
        assert!(matches!(b.state(), State::Running { .. }));
        assert_eq!(b.on_done(ms(970), Done::Installed), Action::Idle);
        assert_eq!(b.on_timer(ms(980)), Action::Idle, "stale after done");
        assert_eq!(b.state(), State::Idle);
    }

    #[test]
    fn a_change_after_a_missed_deadline_reconciles_at_once() {
        let mut b = Batcher::new(settings(500, 5 * S, None), Instant::now());
        let t0 = b.now;
        let ms = |m: u64| t0 + Duration::from_millis(m);
        b.on_change(ms(0));
        // The 500 ms timer has not been handled yet when a change at 700 arrives.
        assert_eq!(b.on_change(ms(700)), Action::Reconcile);
    }

    #[test]
    fn time_never_runs_backwards() {
        let mut b = Batcher::new(settings(500, 5 * S, None), Instant::now());
        let t0 = b.now;
        let ms = |m: u64| t0 + Duration::from_millis(m);
        b.on_change(ms(1000));
        // A stale timestamp is clamped to the latest seen.
        assert_eq!(b.on_change(ms(200)), Action::ArmTimer(ms(1500)));
    }

    #[test]
    fn request_reconciles_now_in_any_state() {
        let mut s = Sim::new(settings(500, 5 * S, Some("1/min")), false, Auto::Off);
        assert_eq!(s.request(0), Action::Reconcile, "idle");
        assert_eq!(s.b.reload_permit(s.now), Ok(()));
        assert_eq!(s.done(10, Done::Installed), Action::Idle);
        s.change(100);
        assert_eq!(s.request(200), Action::Reconcile, "batching");
        s.done(210, Done::Failed);
        assert_eq!(s.request(300), Action::Reconcile, "backoff");
        assert_eq!(s.b.reload_permit(s.now), Err(s.at(60 * S)));
        s.done(310, Done::Deferred(s.at(60 * S)));
        assert_eq!(s.request(400), Action::Reconcile, "deferred");
        assert_eq!(s.b.reload_permit(s.now), Err(s.at(60 * S)));
        s.done(410, Done::Deferred(s.at(60 * S)));
        assert_eq!(s.timer_ms(), Some(60 * S));
    }

    #[test]
    fn the_budget_carries_over_to_a_successor_with_the_same_limit() {
        let mut s = Sim::new(settings(500, 5 * S, Some("1/min")), false, Auto::Off);
        s.request(0);
        assert_eq!(s.b.reload_permit(s.now), Ok(()));
        s.done(10, Done::Installed);
        let spent = s.b.take_budget().expect("a limit is set");
        // The successor (same limit) must wait as the first one would have.
        let mut next = Batcher::new(settings(500, 5 * S, Some("1/min")), s.now);
        next.resume_budget(spent);
        assert_eq!(next.request(s.at(20)), Action::Reconcile);
        assert_eq!(next.reload_permit(s.at(20)), Err(s.at(60 * S)));
        // A successor with another limit starts afresh.
        let spent = next.take_budget().expect("a limit is set");
        let mut other = Batcher::new(settings(500, 5 * S, Some("2/min")), s.now);
        other.resume_budget(spent);
        assert_eq!(other.request(s.at(30)), Action::Reconcile);
        assert_eq!(other.reload_permit(s.at(30)), Ok(()));
    }

    #[test]
    fn request_during_a_reconcile_reruns_after_it() {
        let mut s = Sim::new(settings(500, 5 * S, None), false, Auto::Off);
        s.request(0);
        assert_eq!(s.request(10), Action::Idle);
        s.change(20);
        assert_eq!(s.done(30, Done::Unchanged), Action::Reconcile);
        // The rerun covered the queued change too.
        assert_eq!(s.done(40, Done::Unchanged), Action::Idle);
        assert_eq!(s.starts, vec![0, 30]);
    }

    #[test]
    fn deferred_reconcile_with_queued_changes_keeps_the_floor() {
        let mut s = Sim::new(settings(100, 5 * S, None), false, Auto::Off);
        s.request(0);
        s.change(50);
        assert_eq!(
            s.done(60, Done::Deferred(s.at(4 * S))),
            Action::ArmTimer(s.at(4 * S))
        );
        assert!(matches!(
            s.b.state(),
            State::Batching {
                not_before: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn transition_table_rejects_nonsense() {
        let t = Instant::now();
        assert!(!allowed(&State::Idle, &State::Deferred { until: t }));
        assert!(!allowed(&State::Idle, &State::Backoff { retry_at: t }));
        assert!(!allowed(
            &State::Batching {
                changes: Changes::at(t),
                not_before: None
            },
            &State::Idle
        ));
        assert!(!allowed(&State::Deferred { until: t }, &State::Idle));
        assert_eq!(State::Deferred { until: t }.to_string(), "deferred");
        // The actor moves it into a tokio task.
        fn assert_send<T: Send>() {}
        assert_send::<Batcher>();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "on_done outside a reconcile")]
    fn on_done_without_reconcile_is_caught_in_debug() {
        let now = Instant::now();
        let mut b = Batcher::new(settings(500, 5 * S, None), now);
        b.on_done(now, Done::Installed);
    }

    /// xorshift64*: deterministic randomness for the property test, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    /// A change is never lost: after any random sequence of changes, requests, stale timers
    /// and outcomes (unchanged, failed, installed or deferred by the budget), once changes
    /// stop and renders succeed, the latest state gets installed and the machine settles in
    /// `Idle`. Along the way no reconcile starts before its deadline, and no window sees more
    /// than the GCRA bound of 2N−1 reloads.
    #[test]
    fn property_no_change_is_ever_lost() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..2000 {
            let debounce = rng.pick(&[0, 100, 500]);
            let max_wait = rng.pick(&[0, 300, 2000]);
            let limit = rng.pick(&[None, Some("2/1s"), Some("3/10s")]);
            let leading = rng.below(2) == 1;
            let mut s = Sim::new(settings(debounce, max_wait, limit), leading, Auto::Off);
            let mut t = 0;
            let mut last_change = None;
            for _ in 0..rng.below(80) {
                t += rng.pick(&[0, 1, 50, 99, 100, 250, 501, 1500, 4000]);
                match rng.below(10) {
                    0..=4 => {
                        s.change(t);
                        last_change = Some(t);
                    }
                    5 => {
                        s.request(t);
                    }
                    6 => {
                        // A spurious or stale timer: never reconciles before the deadline.
                        s.run_to(t);
                        let due = s.b.deadline();
                        let a = s.b.on_timer(s.now);
                        if a == Action::Reconcile {
                            assert!(due.is_some_and(|d| d <= s.now), "case {case}");
                        }
                        s.apply(a);
                    }
                    _ if s.running => {
                        s.run_to(t);
                        let done = match rng.below(4) {
                            0 => Done::Unchanged,
                            1 => Done::Failed,
                            _ => s.render_outcome(),
                        };
                        s.finish(done);
                    }
                    _ => s.run_to(t),
                }
            }
            // Changes stop; renders succeed from here on. Drive to quiescence.
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps < 100, "case {case}: no quiescence, {:?}", s.b.state());
                if s.running {
                    let done = s.render_outcome();
                    s.finish(done);
                } else if let Some(next) = s.timer {
                    s.run_until(next);
                } else {
                    break;
                }
            }
            assert_eq!(s.b.state(), State::Idle, "case {case}");
            assert_eq!(
                s.installed, s.version,
                "case {case}: latest state not installed"
            );
            if let Some(c) = last_change {
                let covered = s.starts.iter().any(|&st| st >= c);
                assert!(covered, "case {case}: change at {c} never reconciled");
            }
            if let Some(limit) = limit {
                let l: RateLimit = limit.parse().unwrap();
                let (n, w) = (l.count.get() as usize, l.per.as_millis() as u64);
                for (i, &r) in s.reloads.iter().enumerate() {
                    let window = s.reloads[i..].iter().filter(|&&x| x < r + w).count();
                    assert!(window < 2 * n, "case {case}: {window} reloads from {r}");
                }
            }
        }
    }
}
