//! One resource's task under `reconfd run`: the sole owner of its [`Batcher`] (debounce,
//! max wait, retry backoff, reload budget) and of whether a reload is owed.
//!
//! Waits on: the snapshot channel (the etcd task's `watch`), its one timer, its commands
//! (an operator's approval of a held render), cancellation.
//! Sends: a [`Report`] after every reconcile. Cancellation is observed only while waiting,
//! so an install in progress finishes (or fails before the rename) before the actor stops.
//!
//! A reconcile renders the latest snapshot and stages and checks the file; only then does
//! the actor ask its batcher for the reload permit, and on a refusal drops the staged file
//! and reports [`Done::Deferred`] instead of committing.
//!
//! Before rendering, the resource's [`crate::guard::Guard`] looks at how many keys its view
//! holds against the count at its last install (kept here and handed over across a SIGHUP;
//! a fresh daemon has none, so only `min_keys` applies until its first install). A held
//! render reports [`Status::Held`], logs one warning when the hold starts, and is evaluated
//! again on every change; [`ActorCommand::Approve`] lets the current render through once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    done_of, finish, owed_after, Approval, InstallMode, Prepared, ReconcileError, Reconciled,
    Status,
};
use crate::batch::{Action, Batcher, Budget, Done};
use crate::guard::Hold;
use crate::install::Staging;
use crate::store::KvView;
use crate::store::Snapshot;

/// What an actor tells the supervisor after each reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The resource's name.
    pub resource: String,
    /// How the reconcile ended.
    pub status: Status,
    /// When it started: the instant the batcher said [`Action::Reconcile`].
    pub started: Instant,
}

/// A request to one actor, from the supervisor.
#[derive(Debug)]
pub enum ActorCommand {
    /// Install the held render (once); answered with what came of it.
    Approve(oneshot::Sender<Approval>),
}

/// What a generation's actors share: where snapshots come from, when to stop, the render
/// bound, where reports go, what outlives the generation and how to install.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// The etcd task's snapshots (latest wins).
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Fires when the generation stops.
    pub cancel: CancellationToken,
    /// The bound on concurrent reconciles ([`super::render_permits`]).
    pub permits: Arc<Semaphore>,
    /// Where [`Report`]s go.
    pub reports: mpsc::UnboundedSender<Report>,
    /// Owed reloads and reload budgets, handed from one generation to the next.
    pub handover: Handover,
    /// Noop or sync-only.
    pub mode: InstallMode,
}

/// What a resource's actor leaves to its successor after a SIGHUP, by destination: owed
/// reloads and reload budgets, so a reload forgets neither. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Handover(Arc<Mutex<Carried>>);

#[derive(Debug, Default)]
struct Carried {
    /// Destinations installed whose `reload_cmd` has not succeeded yet.
    owed: BTreeSet<PathBuf>,
    /// Reload budgets, so reloads spent before a SIGHUP still count after it.
    budgets: BTreeMap<PathBuf, Budget>,
    /// Watched keys at the last install, so a SIGHUP does not lift `max_shrink`.
    installed_keys: BTreeMap<PathBuf, usize>,
}

impl Handover {
    /// Whether a reload of `dest` is owed.
    pub fn owes_reload(&self, dest: &Path) -> bool {
        self.0.lock().is_ok_and(|c| c.owed.contains(dest))
    }

    fn set_owed(&self, dest: &Path, owed: bool) {
        if let Ok(mut c) = self.0.lock() {
            if owed {
                c.owed.insert(dest.to_owned());
            } else {
                c.owed.remove(dest);
            }
        }
    }

    /// How many watched keys the last install of `dest` rendered, if it was installed (or
    /// found in sync) since the daemon started.
    pub fn installed_keys(&self, dest: &Path) -> Option<usize> {
        self.0
            .lock()
            .ok()
            .and_then(|c| c.installed_keys.get(dest).copied())
    }

    fn set_installed_keys(&self, dest: &Path, keys: usize) {
        if let Ok(mut c) = self.0.lock() {
            c.installed_keys.insert(dest.to_owned(), keys);
        }
    }

    fn take_budget(&self, dest: &Path) -> Option<Budget> {
        self.0.lock().ok().and_then(|mut c| c.budgets.remove(dest))
    }

    fn keep_budget(&self, dest: PathBuf, budget: Budget) {
        if let Ok(mut c) = self.0.lock() {
            c.budgets.insert(dest, budget);
        }
    }
}

/// One resource's actor.
#[derive(Debug)]
pub struct Actor {
    prepared: Arc<Prepared>,
    wiring: Wiring,
    /// The supervisor's requests to this actor; `None` when nobody sends any.
    commands: Option<mpsc::UnboundedReceiver<ActorCommand>>,
}

/// What the actor keeps between reconciles, besides its batcher.
struct Follow {
    /// The resource's full watched keys.
    watched: Vec<String>,
    /// The `seq` of the last snapshot looked at; a gap means a skipped snapshot.
    seen: u64,
    /// Watched keys the etcd user may not read, as last logged.
    denied_logged: Vec<String>,
    /// The resource's view, kept current by applying each snapshot's changes.
    view: Arc<KvView>,
    /// The last install's reload failed: the next reconcile reloads even if nothing changed.
    reload_owed: bool,
    /// Watched keys at the last install (or in-sync reconcile); `None` before the first.
    installed_keys: Option<usize>,
    /// Why the guard holds the render, while it does (the warning was logged).
    held: Option<Hold>,
    /// An operator approved the held render: the guard lets the next install through.
    approved: bool,
}

/// The batcher's clock: tokio's (so paused time in tests moves it), as a std `Instant`.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Actor {
    /// An actor for `prepared`, wired to its generation.
    pub fn new(prepared: Arc<Prepared>, wiring: Wiring) -> Self {
        Actor {
            prepared,
            wiring,
            commands: None,
        }
    }

    /// Takes requests (approvals) from `commands`.
    pub fn with_commands(mut self, commands: mpsc::UnboundedReceiver<ActorCommand>) -> Self {
        self.commands = Some(commands);
        self
    }

    /// Follows snapshots until the generation stops, then hands its reload budget over.
    pub async fn run(mut self) {
        let dest = self.prepared.resource.dest.clone();
        let mut batcher = Batcher::new(self.prepared.resource.batch, now());
        if let Some(budget) = self.wiring.handover.take_budget(&dest) {
            batcher.resume_budget(budget);
        }
        self.follow(&mut batcher).await;
        if let Some(budget) = batcher.take_budget() {
            self.wiring.handover.keep_budget(dest, budget);
        }
    }

    /// Reconciles on changes, timers and retries until the generation stops.
    async fn follow(&mut self, batcher: &mut Batcher) {
        let Some(mut state) = self.first_snapshot().await else {
            return;
        };
        let mut action = batcher.request(now());
        loop {
            let timer = match action {
                Action::Reconcile => {
                    action = self.reconcile(&mut state, batcher).await;
                    continue;
                }
                Action::ArmTimer(at) => Some(Instant::from_std(at)),
                Action::Idle => None,
            };
            tokio::select! {
                _ = self.wiring.cancel.cancelled() => return,
                changed = self.wiring.snapshots.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if self.take_snapshot(&mut state) {
                        action = batcher.on_change(now());
                    }
                }
                () = sleep_until(timer) => action = batcher.on_timer(now()),
                Some(command) = next_command(&mut self.commands) => {
                    if let Some(next) = self.on_command(command, &mut state, batcher) {
                        action = next;
                    }
                }
            }
        }
    }

    /// Waits for the etcd task's first full read; `None` if the generation stops first.
    async fn first_snapshot(&mut self) -> Option<Follow> {
        let r = &self.prepared.resource;
        let cancel = self.wiring.cancel.clone();
        let snapshots = &mut self.wiring.snapshots;
        tokio::select! {
            _ = cancel.cancelled() => return None,
            read = snapshots.wait_for(|s| s.seq > 0) => read.ok()?,
        };
        let first = snapshots.borrow_and_update().clone();
        let watched = r.watched();
        Some(Follow {
            view: Arc::new(first.view(&r.prefix, &watched)),
            watched,
            seen: first.seq,
            denied_logged: Vec::new(),
            reload_owed: self.wiring.handover.owes_reload(&r.dest),
            installed_keys: self.wiring.handover.installed_keys(&r.dest),
            held: None,
            approved: false,
        })
    }

    /// Takes the latest snapshot into the view; whether it may change this resource. A
    /// skipped snapshot (`since` is not the one seen last) may hide a change, so it counts
    /// as one; so does a change of which of its keys etcd lets us read.
    fn take_snapshot(&mut self, state: &mut Follow) -> bool {
        let r = &self.prepared.resource;
        let snap = self.wiring.snapshots.borrow_and_update().clone();
        let relevant = snap.since != state.seen
            || snap.touches(&state.watched)
            || snap.denied_of(&state.watched) != state.denied_logged;
        state.seen = snap.seq;
        snap.refresh(&mut state.view, &r.prefix, &state.watched);
        if relevant {
            crate::metrics::changed(&r.name);
        }
        relevant
    }

    /// One reconcile of the latest snapshot; reports it and returns the batcher's next step.
    async fn reconcile(&mut self, state: &mut Follow, batcher: &mut Batcher) -> Action {
        let started = Instant::now();
        let r = &self.prepared.resource;
        let latest = self.wiring.snapshots.borrow().clone();
        latest.refresh(&mut state.view, &r.prefix, &state.watched);
        let denied = latest.denied_of(&state.watched);
        let (done, status) = if self.note_denied(state, denied) {
            // Its view lacks those keys: a render would drop their entries.
            (
                Done::Failed,
                Status::Failing("etcd denies reading its keys"),
            )
        } else {
            let view = state.view.clone();
            let keys = view.entries.len();
            let result = match self.guard(state, keys) {
                // Traced like any reconcile, so each evaluation of a hold is in the log.
                Some(hold) => {
                    let held = async move { Ok(Reconciled::Held(hold)) };
                    self.prepared.traced(view.revision, held).await
                }
                None => self.install(view, state.reload_owed, batcher).await,
            };
            state.reload_owed = owed_after(&result, state.reload_owed);
            self.note_installed(state, &result, keys);
            (done_of(&result), Status::of(&result, state.view.revision))
        };
        self.wiring.handover.set_owed(&r.dest, state.reload_owed);
        let _ = self.wiring.reports.send(Report {
            resource: r.name.clone(),
            status,
            started,
        });
        batcher.on_done(now(), done)
    }

    /// Whether the guard holds a render of `keys` keys (an approval lets it through); logs
    /// one warning when a hold starts.
    fn guard(&self, state: &mut Follow, keys: usize) -> Option<Hold> {
        let r = &self.prepared.resource;
        let hold = r.batch.guard.check(keys, state.installed_keys).err()?;
        if state.approved {
            info!(
                message_id = crate::logging::GUARD_RELEASED,
                "{}: installing the approved render ({hold})",
                r.file.display()
            );
            return None;
        }
        if state.held.is_none() {
            warn!(
                message_id = crate::logging::GUARD_HELD,
                reconfd.keys = keys,
                "{}: render held, the live file stays as it is: {hold}; it installs when the keys are back within the guard, or after `reconfd approve {}`",
                r.file.display(),
                r.name
            );
        }
        state.held = Some(hold);
        Some(hold)
    }

    /// After a reconcile past the guard: a file now in line with `keys` keys becomes the
    /// count the guard compares with, ends a hold and uses up an approval.
    fn note_installed(
        &self,
        state: &mut Follow,
        result: &Result<Reconciled, ReconcileError>,
        keys: usize,
    ) {
        let in_line = matches!(
            result,
            Ok(Reconciled::Installed { .. } | Reconciled::Unchanged | Reconciled::Reloaded)
        );
        if !in_line {
            return;
        }
        let r = &self.prepared.resource;
        if state.held.take().is_some() && !state.approved {
            info!(
                message_id = crate::logging::GUARD_RELEASED,
                reconfd.keys = keys,
                "{}: no longer held: the watched keys are back within the guard ({keys} keys)",
                r.file.display()
            );
        }
        state.approved = false;
        state.installed_keys = Some(keys);
        self.wiring.handover.set_installed_keys(&r.dest, keys);
    }

    /// Answers a command; the batcher's next step when it asks for a reconcile.
    fn on_command(
        &self,
        command: ActorCommand,
        state: &mut Follow,
        batcher: &mut Batcher,
    ) -> Option<Action> {
        match command {
            ActorCommand::Approve(reply) => {
                let r = &self.prepared.resource;
                let Some(hold) = state.held else {
                    let _ = reply.send(Approval::NotHeld);
                    return None;
                };
                info!(
                    "{}: approval received for the held render ({hold})",
                    r.file.display()
                );
                state.approved = true;
                let _ = reply.send(Approval::Accepted);
                Some(batcher.request(now()))
            }
        }
    }

    /// Logs the watched keys etcd refuses when that set changed; whether there are any.
    fn note_denied(&self, state: &mut Follow, denied: Vec<String>) -> bool {
        let r = &self.prepared.resource;
        if denied != state.denied_logged {
            if !denied.is_empty() {
                error!(
                    reconfd.resource = %r.name,
                    "{}: not rendered: etcd user may not read {} (the file stays as it is)",
                    r.file.display(),
                    denied.join(", ")
                );
            }
            state.denied_logged = denied;
        }
        !state.denied_logged.is_empty()
    }

    /// Renders `view`, stages and checks it, asks the batcher for the reload permit when the
    /// file changes and will be reloaded, then commits and reloads (or defers).
    async fn install(
        &self,
        view: Arc<KvView>,
        owed: bool,
        batcher: &mut Batcher,
    ) -> Result<Reconciled, ReconcileError> {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.wiring.permits.acquire().await.ok();
        let p = &self.prepared;
        let mode = self.wiring.mode;
        p.traced(view.revision, async {
            let staging = p.render_and_stage(view, mode).await?;
            // Asked only for a file that changes and passed its check, so a render the
            // check rejects does not spend a reload.
            if let Staging::Staged(staged) = &staging {
                if !mode.noop && staged.reloads() {
                    if let Err(until) = batcher.reload_permit(now()) {
                        info!("reload limit reached; install deferred");
                        return Ok(Reconciled::Deferred { until });
                    }
                }
            }
            Ok(finish(staging, mode, owed).await?)
        })
        .await
    }
}

/// The next command; never, without a channel or once it is closed.
async fn next_command(
    commands: &mut Option<mpsc::UnboundedReceiver<ActorCommand>>,
) -> Option<ActorCommand> {
    match commands {
        Some(rx) => match rx.recv().await {
            Some(c) => Some(c),
            None => {
                *commands = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
