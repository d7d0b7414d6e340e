//! `reconfd run`: the supervisor and the per-resource actors.
//!
//! Tasks (ntpd-rs style; see docs/architecture.md):
//!
//! - **etcd task** ([`crate::etcd::watch::follow`], or the poller with `--interval`): owns the
//!   local copy of etcd; waits on the watch stream; sends `Arc<Snapshot>` on a `watch` channel.
//! - **resource actor**, one per resource: owns its [`Batcher`] (debounce, max wait, reload
//!   budget, retry backoff) and whether a reload is owed; waits on snapshots, its timer and
//!   cancellation; renders and installs through [`Prepared::reconcile_with`], at most
//!   `parallelism` actors at once.
//! - **supervisor** ([`run`]): starts a generation (etcd task + actors) from the loaded config,
//!   waits for every actor's first reconcile before saying READY, and on SIGHUP loads the
//!   config again and replaces the generation; on SIGTERM/SIGINT cancels and waits. An actor
//!   is never cancelled in the middle of an install: it finishes, then stops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, info_span, warn, Instrument};

use crate::batch::{Action, Batcher, Done};
use crate::config::{Overrides, Settings};
use crate::etcd;
use crate::install::Outcome;
use crate::reconcile::{Prepared, ReconcileError};
use crate::resource;
use crate::store::KvView;
use crate::store::Snapshot;
use crate::template::Template;
use crate::{exit, notify};

/// How `run` gets its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Follow etcd's watch (the default).
    Watch,
    /// Re-read everything every interval (confd's interval mode).
    Poll(Duration),
}

impl Source {
    /// Extra silence the watchdog tolerates: a poller answers only once per interval.
    fn slack(self) -> Duration {
        match self {
            Source::Watch => Duration::ZERO,
            Source::Poll(every) => every,
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn run(overrides: Overrides, source: Source, noop: bool) -> u8 {
    let settings = move || {
        Settings::assemble(&overrides).map_err(|d| d.iter().map(ToString::to_string).collect())
    };
    run_with(settings, source, noop, false).await
}

/// [`run`] with the settings from `settings`, which is called at start and again on every
/// SIGHUP (`reconfd confd` reads confd.toml there); its errors are one line each.
/// `sync_only` installs files without running `check_cmd` or `reload_cmd` (confd's
/// `-sync-only`).
pub async fn run_with(
    settings: impl Fn() -> Result<Settings, Vec<String>>,
    source: Source,
    noop: bool,
    sync_only: bool,
) -> u8 {
    let load_settings = settings;
    let settings = match load_settings() {
        Ok(s) => s,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return exit::CONFIG;
        }
    };
    // A bad TLS or password file is the operator's to fix: say so and stop, instead of
    // retrying forever (the unit does not restart on exit 78).
    if let Err(e) = etcd::preflight(&settings.etcd).await {
        error!("{e}");
        return if e.is_config() {
            exit::CONFIG
        } else {
            exit::FAILED
        };
    }
    let (mut hup, mut term, mut int) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(h), Ok(t), Ok(i)) => (h, t, i),
        _ => {
            error!("cannot install signal handlers");
            return exit::FAILED;
        }
    };
    let mut resources = load(&settings, &BTreeMap::new());
    let mut settings = settings;
    // Owed reloads and reload budgets outlive a generation: a SIGHUP forgets neither.
    let carried: CarriedState = Arc::default();
    let watchdog = sd_notify::watchdog_enabled();
    let mut watchdog_tick =
        tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |w| w / 2));
    loop {
        let mut generation =
            Generation::start(&settings, &resources, source, (noop, sync_only), &carried);
        let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
        let mut ready = resources.is_empty();
        let mut last_status = String::new();
        if ready {
            warn!(
                "no resources to manage in {}",
                settings.confdir.join("conf.d").display()
            );
            notify::ready("no resources to manage");
        }
        let reload = loop {
            tokio::select! {
                Some((name, status)) = generation.status_rx.recv() => {
                    statuses.insert(name, status);
                    if !ready && statuses.len() >= resources.len() {
                        ready = true;
                        info!(resources = resources.len(), "first reconcile done; ready");
                        last_status = status_line(&statuses, &generation.health.borrow());
                        notify::ready(&last_status);
                        continue;
                    }
                }
                changed = generation.health.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    let limit = watchdog.unwrap_or_default() + source.slack();
                    let alive = generation.health.borrow().answered_within(limit);
                    // A stalled watch (no answer to progress requests) stops the pings, so
                    // systemd restarts the daemon instead of it silently going stale.
                    let starting = !generation.health.borrow().answered() && !ready;
                    if alive || starting || resources.is_empty() {
                        notify::watchdog();
                    }
                    continue;
                }
                _ = hup.recv() => break true,
                _ = term.recv() => break false,
                _ = int.recv() => break false,
            }
            if ready {
                let line = status_line(&statuses, &generation.health.borrow());
                if line != last_status {
                    notify::status(&line);
                    last_status = line;
                }
            }
        };
        if !reload {
            notify::stopping();
            info!("stopping");
            // systemd does not watch a stopping service, and STOPPING=1 stays the last word.
            generation.stop_alive(None).await;
            return exit::SUCCESS;
        }
        notify::reloading();
        info!("SIGHUP: loading the configuration again");
        let assembled = match load_settings() {
            Ok(new) => match etcd::preflight(&new.etcd).await {
                Ok(()) => Ok(new),
                Err(e) => Err(vec![crate::diag::Diagnostic::file(
                    new.config_file
                        .as_deref()
                        .unwrap_or(std::path::Path::new("<command line>")),
                    e.to_string(),
                )
                .to_string()]),
            },
            Err(errs) => Err(errs),
        };
        match assembled {
            Ok(new) => {
                resources = load(&new, &resources);
                settings = new;
            }
            Err(errs) => {
                for e in errs {
                    error!("{e}");
                }
                warn!("the new configuration is invalid; keeping the running one");
            }
        }
        generation.stop_alive(watchdog).await;
    }
}

/// What an actor reports after each reconcile, for STATUS=.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// The destination matches etcd at this revision.
    InSync(i64),
    /// Waiting for the reload budget.
    Deferred,
    /// The last attempt failed (short reason); it is being retried.
    Failing(&'static str),
}

/// One short STATUS= line: "12 resources in sync at revision 48213 via URL; 1 failing (nginx: check failed)".
fn status_line(statuses: &BTreeMap<String, Status>, health: &etcd::watch::Health) -> String {
    let in_sync: Vec<i64> = statuses
        .values()
        .filter_map(|s| match s {
            Status::InSync(r) => Some(*r),
            _ => None,
        })
        .collect();
    let mut line = format!(
        "{} resource{} in sync",
        in_sync.len(),
        if in_sync.len() == 1 { "" } else { "s" }
    );
    if let Some(rev) = in_sync.iter().max() {
        line.push_str(&format!(" at revision {rev}"));
    }
    if let Some(member) = health.member() {
        line.push_str(&format!(" via {member}"));
    }
    let failing: Vec<String> = statuses
        .iter()
        .filter_map(|(n, s)| match s {
            Status::Failing(why) => Some(format!("{n}: {why}")),
            _ => None,
        })
        .collect();
    if !failing.is_empty() {
        line.push_str(&format!(
            "; {} failing ({})",
            failing.len(),
            failing.join(", ")
        ));
    }
    let deferred = statuses
        .values()
        .filter(|s| **s == Status::Deferred)
        .count();
    if deferred > 0 {
        line.push_str(&format!("; {deferred} waiting for the reload limit"));
    }
    if let Some(e) = health.error() {
        line = format!("degraded: etcd unreachable ({e}); {line}");
    }
    line
}

/// Loads resources and templates. A file that fails keeps its previous version, if any, so a
/// typo in a reload does not stop managing a file.
fn load(
    settings: &Settings,
    previous: &BTreeMap<PathBuf, Arc<Prepared>>,
) -> BTreeMap<PathBuf, Arc<Prepared>> {
    let loaded = resource::load_all(settings);
    for w in &loaded.warnings {
        warn!("{w}");
    }
    for e in &loaded.errors {
        error!("{e}");
    }
    let mut out = BTreeMap::new();
    for r in loaded.resources {
        let file = r.file.clone();
        match Template::load_as(&r.src, r.engine) {
            Ok(template) => {
                out.insert(
                    file,
                    Arc::new(Prepared {
                        resource: r,
                        template,
                    }),
                );
            }
            Err(e) => {
                error!(reconfd.resource = %r.name, "{}: {e}", r.file.display());
                if let Some(old) = previous.get(&file) {
                    warn!(reconfd.resource = %r.name, "keeping the previous version of this resource");
                    out.insert(file, old.clone());
                }
            }
        }
    }
    for file in loaded.failed {
        if let Some(old) = previous.get(&file) {
            warn!(reconfd.resource = %old.resource.name, "keeping the previous version of this resource");
            out.insert(file, old.clone());
        }
    }
    refuse_dests_of_kept(&mut out, previous);
    out
}

/// A kept previous version (its file now fails to load) still installs its `dest`; a new or
/// changed resource that now names the same `dest` would fight it, so that one is refused.
/// (Resources that loaded now were already checked against each other.)
fn refuse_dests_of_kept(
    out: &mut BTreeMap<PathBuf, Arc<Prepared>>,
    previous: &BTreeMap<PathBuf, Arc<Prepared>>,
) {
    let kept: BTreeMap<PathBuf, PathBuf> = out
        .iter()
        .filter(|(file, p)| previous.get(*file).is_some_and(|old| Arc::ptr_eq(old, p)))
        .map(|(file, p)| (p.resource.dest_key(), file.clone()))
        .collect();
    out.retain(|file, p| {
        let dest = p.resource.dest_key();
        match kept.get(&dest) {
            Some(owner) if owner != file => {
                error!(
                    reconfd.resource = %p.resource.name,
                    "{}: dest {} is also the dest of {}, whose previous version is kept because its file fails to load; resources sharing a file would overwrite each other at every change",
                    file.display(),
                    dest.display(),
                    owner.display()
                );
                false
            }
            _ => true,
        }
    });
}

/// One etcd task and its actors, all stopped together.
struct Generation {
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// Every actor's status after each of its reconciles.
    status_rx: mpsc::UnboundedReceiver<(String, Status)>,
    /// The etcd task's health (last answer, current error).
    health: watch::Receiver<etcd::watch::Health>,
}

impl Generation {
    fn start(
        settings: &Settings,
        resources: &BTreeMap<PathBuf, Arc<Prepared>>,
        source: Source,
        (noop, sync_only): (bool, bool),
        carried: &CarriedState,
    ) -> Self {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let watched: Vec<String> = resources
            .values()
            .flat_map(|p| p.resource.watched())
            .collect();
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let (health_tx, health) = watch::channel(etcd::watch::Health::default());
        if !watched.is_empty() {
            let (etcd, c) = (settings.etcd.clone(), cancel.clone());
            match source {
                Source::Watch => {
                    tracker.spawn(etcd::watch::follow(etcd, watched, tx, health_tx, c))
                }
                Source::Poll(every) => {
                    tracker.spawn(etcd::watch::poll(etcd, watched, every, tx, health_tx, c))
                }
            };
        }
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        let permits = Arc::new(Semaphore::new(parallelism));
        for p in resources.values() {
            let actor = Actor {
                prepared: p.clone(),
                rx: rx.clone(),
                cancel: cancel.clone(),
                permits: permits.clone(),
                status: status_tx.clone(),
                noop,
                sync_only,
                carried: carried.clone(),
            };
            let span = info_span!("resource", reconfd.resource = %p.resource.name);
            tracker.spawn(actor.run().instrument(span));
        }
        tracker.close();
        Generation {
            cancel,
            tracker,
            status_rx,
            health,
        }
    }

    /// Cancels every task and waits for them; an install in progress finishes first. The
    /// watchdog keeps being fed meanwhile (systemd keeps it armed during a reload).
    async fn stop_alive(self, watchdog: Option<Duration>) {
        self.cancel.cancel();
        let wait = self.tracker.wait();
        tokio::pin!(wait);
        let mut tick = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |w| w / 2));
        loop {
            tokio::select! {
                _ = &mut wait => return,
                _ = tick.tick(), if watchdog.is_some() => notify::watchdog(),
            }
        }
    }
}

/// One resource's actor: the sole owner of its batching state.
struct Actor {
    prepared: Arc<Prepared>,
    rx: watch::Receiver<Arc<Snapshot>>,
    cancel: CancellationToken,
    permits: Arc<Semaphore>,
    /// Told after every reconcile: the supervisor says READY once every actor reported, and
    /// keeps STATUS= current.
    status: mpsc::UnboundedSender<(String, Status)>,
    noop: bool,
    /// Install without running `check_cmd` or `reload_cmd` (`reconfd confd -sync-only`).
    sync_only: bool,
    /// Shared with the supervisor: what outlives this generation.
    carried: CarriedState,
}

/// What a resource's actor leaves to its successor after a SIGHUP, by destination.
#[derive(Debug, Default)]
struct Carried {
    /// Destinations installed whose `reload_cmd` has not succeeded yet.
    owed: std::collections::BTreeSet<PathBuf>,
    /// Reload budgets, so reloads spent before a SIGHUP still count after it.
    budgets: BTreeMap<PathBuf, crate::batch::Budget>,
}

type CarriedState = Arc<std::sync::Mutex<Carried>>;

impl Actor {
    async fn run(mut self) {
        let dest = self.prepared.resource.dest.clone();
        let mut batcher = Batcher::new(self.prepared.resource.batch, Instant::now().into_std());
        let carried = self
            .carried
            .lock()
            .ok()
            .and_then(|mut c| c.budgets.remove(&dest));
        if let Some(budget) = carried {
            batcher.resume_budget(budget);
        }
        self.follow(&mut batcher).await;
        if let (Some(budget), Ok(mut c)) = (batcher.take_budget(), self.carried.lock()) {
            c.budgets.insert(dest, budget);
        }
    }

    /// Reconciles on changes, timers and retries until the generation stops.
    async fn follow(&mut self, batcher: &mut Batcher) {
        let r = &self.prepared.resource;
        let watched = r.watched();
        // Wait for the first full read before the first reconcile.
        if self.rx.wait_for(|s| s.seq > 0).await.is_err() {
            return;
        }
        let first = self.rx.borrow_and_update().clone();
        let mut seen = first.seq;
        // Watched keys the etcd user may not read, as last logged for this resource.
        let mut denied_logged: Vec<String> = Vec::new();
        // The resource's view, kept current by applying each snapshot's changes.
        let mut view = Arc::new(first.view(&r.prefix, &watched));
        let dest = r.dest.clone();
        let mut last_failure: Option<&'static str> = None;
        let mut reload_owed = self
            .carried
            .lock()
            .map(|o| o.owed.contains(&dest))
            .unwrap_or(false);
        let mut action = batcher.request(Instant::now().into_std());
        let mut timer: Option<Instant>;
        loop {
            match action {
                Action::Reconcile => {
                    let latest = self.rx.borrow().clone();
                    latest.refresh(&mut view, &r.prefix, &watched);
                    let denied = latest.denied_of(&watched);
                    if denied != denied_logged {
                        if !denied.is_empty() {
                            error!(
                                reconfd.resource = %r.name,
                                "{}: not rendered: etcd user may not read {} (the file stays as it is)",
                                r.file.display(),
                                denied.join(", ")
                            );
                        }
                        denied_logged = denied.clone();
                    }
                    let done = if !denied.is_empty() {
                        // Its view lacks those keys: a render would drop their entries.
                        last_failure = Some("etcd denies reading its keys");
                        Done::Failed
                    } else {
                        self.reconcile_once(
                            view.clone(),
                            batcher,
                            &mut reload_owed,
                            &mut last_failure,
                        )
                        .await
                    };
                    if let Ok(mut o) = self.carried.lock() {
                        if reload_owed {
                            o.owed.insert(dest.clone());
                        } else {
                            o.owed.remove(&dest);
                        }
                    }
                    let status = match &done {
                        Done::Unchanged | Done::Installed => Status::InSync(view.revision),
                        Done::Deferred(_) => Status::Deferred,
                        Done::Failed => Status::Failing(last_failure.take().unwrap_or("failed")),
                    };
                    let _ = self.status.send((r.name.clone(), status));
                    action = batcher.on_done(Instant::now().into_std(), done);
                    continue;
                }
                Action::ArmTimer(at) => timer = Some(Instant::from_std(at)),
                Action::Idle => timer = None,
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let snap = self.rx.borrow_and_update().clone();
                    // A skipped snapshot (since != seen) may hide a change: count it as one. So
                    // does a change of which of its keys etcd lets us read.
                    let relevant = snap.since != seen
                        || snap.touches(&watched)
                        || snap.denied_of(&watched) != denied_logged;
                    seen = snap.seq;
                    snap.refresh(&mut view, &r.prefix, &watched);
                    if relevant {
                        action = batcher.on_change(Instant::now().into_std());
                    }
                }
                _ = async { tokio::time::sleep_until(timer.unwrap()).await }, if timer.is_some() => {
                    action = batcher.on_timer(Instant::now().into_std());
                }
            }
        }
    }

    /// Renders `view` (the latest state) and installs it, within the concurrency bound.
    async fn reconcile_once(
        &self,
        view: Arc<KvView>,
        batcher: &mut Batcher,
        reload_owed: &mut bool,
        failure: &mut Option<&'static str>,
    ) -> Done {
        let Ok(_permit) = self.permits.acquire().await else {
            return Done::Failed;
        };
        let p = &self.prepared;
        let mut permit = || batcher.reload_permit(Instant::now().into_std());
        let mut options = crate::install::Options {
            noop: self.noop,
            sync_only: self.sync_only,
            reload_owed: *reload_owed,
            permit: if p.resource.reload_cmd.is_some() {
                Some(&mut permit)
            } else {
                None
            },
        };
        match p.reconcile_with(view, &mut options).await {
            Ok(Outcome::Deferred { until }) => Done::Deferred(until),
            Ok(Outcome::Installed { .. } | Outcome::Reloaded) => {
                *reload_owed = false;
                Done::Installed
            }
            Ok(Outcome::Unchanged | Outcome::WouldInstall { .. }) => Done::Unchanged,
            Err(ReconcileError::Install(crate::install::InstallError::Reload { .. })) => {
                *reload_owed = true;
                *failure = Some("reload failed");
                Done::Failed
            }
            Err(ReconcileError::Install(crate::install::InstallError::Check { .. })) => {
                *failure = Some("check failed");
                Done::Failed
            }
            Err(ReconcileError::Render(_)) => {
                *failure = Some("render failed");
                Done::Failed
            }
            Err(_) => {
                *failure = Some("install failed");
                Done::Failed
            }
        }
    }
}
