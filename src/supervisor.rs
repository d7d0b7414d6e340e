//! `reconfd run`'s supervisor: loads the configuration, runs one *generation* (the etcd task
//! and one [`Actor`] per resource) at a time, tells systemd how things stand, and replaces
//! the generation when asked to reload.
//!
//! Waits on: the actors' [`Report`]s, the etcd task's [`Health`], the watchdog tick, the
//! injected `reload` requests and `shutdown` future, and [`Command`]s (the control socket's
//! requests: an approval goes to the named resource's actor, which answers it). Sends: READY=, STATUS=, WATCHDOG=,
//! RELOADING=, STOPPING= through a [`Notifier`].
//!
//! It installs no signal handlers (`cmd::run` turns SIGHUP into `reload` and SIGTERM/SIGINT
//! into `shutdown`), renders nothing and installs nothing: that is the actors' work.
//!
//! - READY=1 once every actor reported its first reconcile (at once without resources).
//! - A reload loads the configuration again while the old generation keeps running; an
//!   invalid config (or TLS or password file) keeps the running settings, a resource file
//!   that fails keeps its previous version. Then the old generation stops (an install in
//!   progress finishes first) and the new one starts; owed reloads and reload budgets pass
//!   to it through the [`Handover`].
//! - Shutdown: STOPPING=1, cancel, wait for every task (in-flight installs finish), exit 0.
//! - [`Command`]s from the control socket are answered from what it records: the board of
//!   states, and [`metrics::live`] for times and last errors.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Interval;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::{EtcdSettings, Settings};
use crate::control::{Command, EtcdView, Overview, ResourceView};
use crate::diag::Diagnostic;
use crate::etcd::{self, watch::Health};
use crate::metrics;
use crate::reconciler::{
    self, render_permits, Actor, ActorCommand, Approval, Handover, InstallMode, Prepared, Report,
    Status, Wiring,
};
use crate::store::Snapshot;
use crate::{exit, notify};

/// A generation's etcd task, as a future the supervisor spawns.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a generation's snapshots come from.
pub trait SnapshotSource: Send + Sync {
    /// The etcd task of one generation: reads the `watched` keys, publishes each state on
    /// `snapshots` (an empty snapshot with `seq` 0 until the first full read) and how it is
    /// doing on `health`, until `cancel` fires.
    fn task(
        &self,
        etcd: EtcdSettings,
        watched: Vec<String>,
        snapshots: watch::Sender<Arc<Snapshot>>,
        health: watch::Sender<Health>,
        cancel: CancellationToken,
    ) -> Task;

    /// Extra silence the watchdog tolerates (a poller answers only once per interval).
    fn slack(&self) -> Duration {
        Duration::ZERO
    }
}

/// How `run` gets its data from etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Follow etcd's watch (the default).
    Watch,
    /// Re-read everything every interval (confd's interval mode).
    Poll(Duration),
}

impl SnapshotSource for Source {
    fn task(
        &self,
        etcd: EtcdSettings,
        watched: Vec<String>,
        snapshots: watch::Sender<Arc<Snapshot>>,
        health: watch::Sender<Health>,
        cancel: CancellationToken,
    ) -> Task {
        match *self {
            Source::Watch => Box::pin(etcd::watch::follow(
                etcd, watched, snapshots, health, cancel,
            )),
            Source::Poll(every) => Box::pin(etcd::watch::poll(
                etcd, watched, every, snapshots, health, cancel,
            )),
        }
    }

    fn slack(&self) -> Duration {
        match *self {
            Source::Watch => Duration::ZERO,
            Source::Poll(every) => every,
        }
    }
}

/// Where the supervisor's state goes: systemd in production, a recorder in tests.
pub trait Notifier: Send + Sync {
    /// Every resource reconciled once (at start or after a reload); `status` says how.
    fn ready(&self, status: &str);
    /// A new STATUS= line.
    fn status(&self, status: &str);
    /// A reload has started.
    fn reloading(&self);
    /// The daemon is stopping.
    fn stopping(&self);
    /// The watchdog keep-alive.
    fn watchdog(&self);
    /// How often the watchdog must hear from us (`WatchdogSec=`), if it is on.
    fn watchdog_timeout(&self) -> Option<Duration>;
}

/// sd_notify, through [`crate::notify`]: a no-op without `NOTIFY_SOCKET`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Systemd;

impl Notifier for Systemd {
    fn ready(&self, status: &str) {
        notify::ready(status);
    }
    fn status(&self, status: &str) {
        notify::status(status);
    }
    fn reloading(&self) {
        notify::reloading();
    }
    fn stopping(&self) {
        notify::stopping();
    }
    fn watchdog(&self) {
        notify::watchdog();
    }
    fn watchdog_timeout(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled()
    }
}

/// How the daemon installs, whom it tells and who may ask it things.
pub struct Options {
    /// Noop or sync-only, for every generation.
    pub mode: InstallMode,
    /// Where READY=, STATUS= and the rest go.
    pub notifier: Arc<dyn Notifier>,
    /// Requests from the control socket; `None` without one.
    pub commands: Option<mpsc::Receiver<Command>>,
}

impl Options {
    /// Installs as `mode` says and notifies systemd; answers `commands`, if given.
    pub fn systemd(mode: InstallMode, commands: Option<mpsc::Receiver<Command>>) -> Self {
        Options {
            mode,
            notifier: Arc::new(Systemd),
            commands,
        }
    }
}

/// Runs the daemon until `shutdown` completes; returns the exit code.
///
/// `load_settings` is called at start and on every `reload` request (`reconfd confd` reads
/// confd.toml there); its errors are one line each. A bad configuration at start exits
/// [`exit::CONFIG`] (a TLS or password file that cannot be used too).
pub async fn run<L, S>(
    load_settings: L,
    source: S,
    shutdown: impl Future<Output = ()>,
    mut reload: mpsc::Receiver<()>,
    options: Options,
) -> u8
where
    L: Fn() -> Result<Settings, Vec<String>>,
    S: SnapshotSource,
{
    let settings = match first_settings(&load_settings).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut sup = Supervisor::new(load_settings, source, options, settings);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let mut generation = sup.start();
        let reloading = tokio::select! {
            () = sup.serve(&mut generation, &mut reload) => true,
            () = &mut shutdown => false,
        };
        if !reloading {
            sup.options.notifier.stopping();
            info!("stopping");
            // systemd does not watch a stopping service, and STOPPING=1 stays the last word.
            generation.stop(None).await;
            return exit::SUCCESS;
        }
        sup.options.notifier.reloading();
        info!("SIGHUP: loading the configuration again");
        sup.reload().await;
        generation.stop(sup.watchdog_pings()).await;
    }
}

/// The settings at start, checked as far as can be without etcd; the exit code if unusable.
async fn first_settings(
    load_settings: &impl Fn() -> Result<Settings, Vec<String>>,
) -> Result<Settings, u8> {
    let settings = load_settings().map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        exit::CONFIG
    })?;
    // A bad TLS or password file is the operator's to fix: say so and stop, instead of
    // retrying forever (the unit does not restart on exit 78).
    if let Err(e) = etcd::preflight(&settings.etcd).await {
        error!("{e}");
        return Err(e.failure().code());
    }
    // DNS SRV discovery: without an answer there is nothing to follow; exit 69 and let the
    // unit's Restart= ask again.
    discovered(settings).await.map_err(|e| {
        error!("{e}");
        e.failure().code()
    })
}

/// `settings` with the etcd endpoints DNS SRV lists, when `[etcd] srv_domain` asks for it.
async fn discovered(mut settings: Settings) -> Result<Settings, etcd::EtcdError> {
    settings.etcd = etcd::srv::discover(&settings.etcd).await?;
    Ok(settings)
}

/// What lives across generations.
struct Supervisor<L, S> {
    load_settings: L,
    source: S,
    options: Options,
    settings: Settings,
    /// The running resources by file; a file that fails on reload keeps its entry.
    resources: BTreeMap<PathBuf, Arc<Prepared>>,
    /// Owed reloads and reload budgets, passed from each generation to the next.
    handover: Handover,
    /// `WatchdogSec=`, if the unit asks for pings.
    watchdog: Option<Duration>,
    /// Ticks at half the watchdog timeout (hourly, unused, without one).
    watchdog_tick: Interval,
    /// Requests from the control socket, taken from the options.
    commands: Option<mpsc::Receiver<Command>>,
}

/// One etcd task and its actors, all stopped together.
struct Generation {
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// Every actor's report after each of its reconciles.
    reports: mpsc::UnboundedReceiver<Report>,
    /// The etcd task's health (last answer, current error).
    health: watch::Receiver<Health>,
    /// How many actors must report before READY=1.
    actors: usize,
    /// The resources' names, for `reconfd status` (those not reported yet are pending).
    names: Vec<String>,
    /// Each actor's command channel, by resource name.
    commands: BTreeMap<String, mpsc::UnboundedSender<ActorCommand>>,
}

impl<L, S> Supervisor<L, S>
where
    L: Fn() -> Result<Settings, Vec<String>>,
    S: SnapshotSource,
{
    fn new(load_settings: L, source: S, mut options: Options, settings: Settings) -> Self {
        let resources = load_resources(&settings, &BTreeMap::new());
        let watchdog = options.notifier.watchdog_timeout();
        let commands = options.commands.take();
        Supervisor {
            load_settings,
            source,
            options,
            settings,
            resources,
            handover: Handover::default(),
            watchdog,
            watchdog_tick: tokio::time::interval(
                watchdog.map_or(Duration::from_secs(3600), |w| w / 2),
            ),
            commands,
        }
    }

    /// Starts the etcd task and one actor per resource.
    fn start(&self) -> Generation {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (snapshots, rx) = watch::channel(Arc::new(Snapshot::default()));
        let (health_tx, health) = watch::channel(Health::default());
        let watched: Vec<String> = self
            .resources
            .values()
            .flat_map(|p| p.resource.watched())
            .collect();
        metrics::live::set_health((!watched.is_empty()).then(|| {
            let health = health.clone();
            let probe: metrics::live::HealthProbe = Box::new(move || {
                let h = health.borrow();
                metrics::live::EtcdHealth {
                    last_answer: h.last_answer,
                    member: h.member().map(str::to_owned),
                    error: h.error().map(str::to_owned),
                }
            });
            (probe, self.health_window())
        }));
        if !watched.is_empty() {
            let etcd = self.settings.etcd.clone();
            tracker.spawn(
                self.source
                    .task(etcd, watched, snapshots, health_tx, cancel.clone()),
            );
        }
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let wiring = Wiring {
            snapshots: rx,
            cancel: cancel.clone(),
            permits: render_permits(),
            reports: reports_tx,
            handover: self.handover.clone(),
            mode: self.options.mode,
        };
        let mut commands = BTreeMap::new();
        for p in self.resources.values() {
            let span = info_span!("resource", reconfd.resource = %p.resource.name);
            let (tx, rx) = mpsc::unbounded_channel();
            commands.insert(p.resource.name.clone(), tx);
            let actor = Actor::new(p.clone(), wiring.clone()).with_commands(rx);
            tracker.spawn(actor.run().instrument(span));
        }
        tracker.close();
        let names: Vec<String> = self
            .resources
            .values()
            .map(|p| p.resource.name.clone())
            .collect();
        let pending: Vec<(String, &'static str)> =
            names.iter().map(|n| (n.clone(), "pending")).collect();
        metrics::set_states(&pending);
        Generation {
            cancel,
            tracker,
            reports,
            health,
            actors: self.resources.len(),
            names,
            commands,
        }
    }

    /// How long `/healthz` tolerates etcd's silence: the watchdog timeout, or three progress
    /// intervals without a watchdog, plus the source's slack.
    fn health_window(&self) -> Duration {
        let base = self
            .watchdog
            .unwrap_or_else(|| etcd::watch::progress_interval() * 3);
        base + self.source.slack()
    }

    /// Keeps systemd informed about `generation` until a reload is requested.
    async fn serve(&mut self, generation: &mut Generation, reload: &mut mpsc::Receiver<()>) {
        let notifier = self.options.notifier.clone();
        let mut board = Board::new(generation.actors);
        if generation.actors == 0 {
            warn!(
                "no resources to manage in {}",
                self.settings.confdir.join("conf.d").display()
            );
            notifier.ready("no resources to manage");
        }
        let mut health_open = true;
        let mut reload_open = true;
        loop {
            tokio::select! {
                Some(report) = generation.reports.recv() => {
                    board.record(report, &generation.health.borrow(), notifier.as_ref());
                    continue;
                }
                changed = generation.health.changed(), if health_open => {
                    // Without an etcd task (no keys to watch) there is no health to follow.
                    health_open = changed.is_ok();
                }
                _ = self.watchdog_tick.tick(), if self.watchdog.is_some() => {
                    if self.etcd_alive(generation, board.ready) {
                        notifier.watchdog();
                    }
                    continue;
                }
                request = reload.recv(), if reload_open => match request {
                    Some(()) => return,
                    None => reload_open = false,
                },
                Some(command) = next_command(&mut self.commands) => {
                    answer(command, &board, generation);
                    continue;
                }
                // Nothing left to wait for but the shutdown, which the caller waits on.
                else => std::future::pending().await,
            }
            board.refresh(&generation.health.borrow(), notifier.as_ref());
        }
    }

    /// Whether to ping the watchdog: etcd answered within the watchdog timeout (plus the
    /// source's slack), or it has not been reached yet before READY, or nothing is watched.
    /// A stalled watch stops the pings, so systemd restarts the daemon instead of it
    /// silently going stale.
    fn etcd_alive(&self, generation: &Generation, ready: bool) -> bool {
        let limit = self.watchdog.unwrap_or_default() + self.source.slack();
        let health = generation.health.borrow();
        let alive = health.answered_within(limit);
        let starting = !health.answered() && !ready;
        alive || starting || generation.actors == 0
    }

    /// Loads the configuration and resources again; on any problem keeps what runs.
    async fn reload(&mut self) {
        match self.load_checked().await {
            Ok(new) => {
                self.resources = load_resources(&new, &self.resources);
                self.settings = new;
            }
            Err(errs) => {
                for e in errs {
                    error!("{e}");
                }
                warn!("the new configuration is invalid; keeping the running one");
            }
        }
    }

    /// New settings, with their TLS and password files checked.
    async fn load_checked(&self) -> Result<Settings, Vec<String>> {
        let new = (self.load_settings)()?;
        if let Err(e) = etcd::preflight(&new.etcd).await {
            let file = new
                .config_file
                .as_deref()
                .unwrap_or(Path::new("<command line>"));
            return Err(vec![Diagnostic::file(file, e.to_string()).to_string()]);
        }
        discovered(new).await.map_err(|e| vec![e.to_string()])
    }

    /// The watchdog to keep feeding while a generation stops.
    fn watchdog_pings(&self) -> Option<(Duration, Arc<dyn Notifier>)> {
        self.watchdog
            .map(|w| (w / 2, self.options.notifier.clone()))
    }
}

impl Generation {
    /// Passes an approval to the actor it names; the actor answers. An unknown name is
    /// answered here; so is an actor that is gone (its generation is stopping): it holds
    /// nothing any more.
    fn approve(&self, resource: &str, reply: tokio::sync::oneshot::Sender<Approval>) {
        let Some(actor) = self.commands.get(resource) else {
            let _ = reply.send(Approval::Unknown);
            return;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if actor.send(ActorCommand::Approve(tx)).is_err() {
            let _ = reply.send(Approval::NotHeld);
            return;
        }
        // The actor answers between reconciles; the supervisor does not wait for it.
        tokio::spawn(async move {
            let _ = reply.send(rx.await.unwrap_or(Approval::NotHeld));
        });
    }

    /// Cancels every task and waits for them; an install in progress finishes first. The
    /// watchdog keeps being fed meanwhile (`pings`: every so often, to whom), since systemd
    /// keeps it armed during a reload.
    async fn stop(self, pings: Option<(Duration, Arc<dyn Notifier>)>) {
        self.cancel.cancel();
        let wait = self.tracker.wait();
        let Some((every, notifier)) = pings else {
            return wait.await;
        };
        tokio::pin!(wait);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = &mut wait => return,
                _ = tick.tick() => notifier.watchdog(),
            }
        }
    }
}

/// The next request from the control socket; never, without a socket (or once it closed).
async fn next_command(commands: &mut Option<mpsc::Receiver<Command>>) -> Option<Command> {
    let Some(rx) = commands.as_mut() else {
        return std::future::pending().await;
    };
    let command = rx.recv().await;
    if command.is_none() {
        *commands = None;
        return std::future::pending().await;
    }
    command
}

/// Answers a control socket request: the status from the board, an approval by the actor.
fn answer(command: Command, board: &Board, generation: &Generation) {
    match command {
        Command::Status { reply } => {
            let health = generation.health.borrow();
            let _ = reply.send(overview(board, &generation.names, &health));
        }
        Command::Approve { resource, reply } => generation.approve(&resource, reply),
    }
}

/// What `reconfd status` shows: each resource's state from the board, its times and last
/// error from [`metrics::live`], and the etcd connection.
fn overview(board: &Board, names: &[String], health: &Health) -> Overview {
    let resources = names
        .iter()
        .map(|name| {
            let status = board.statuses.get(name);
            let detail = metrics::live::detail(name);
            let pending = match status {
                Some(Status::Deferred) => Some("reload deferred".to_owned()),
                _ if detail.change_pending() => Some("changes".to_owned()),
                _ => None,
            };
            let last_error = match status {
                Some(Status::Failing(why)) => detail.last_error.or(Some((*why).to_owned())),
                _ => None,
            };
            ResourceView {
                name: name.clone(),
                state: status.map_or("pending", Status::name).to_owned(),
                revision: board.revisions.get(name).copied(),
                last_install_unix: detail.last_install.and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs())
                }),
                pending,
                last_error,
            }
        })
        .collect();
    Overview {
        ready: board.ready,
        etcd: EtcdView {
            member: health.member().map(str::to_owned),
            error: health.error().map(str::to_owned),
            last_answer_age_seconds: health.last_answer.map(|t| t.elapsed().as_secs_f64()),
        },
        resources,
    }
}

/// The actors' latest statuses, and what was last said about them.
struct Board {
    /// How many actors must report before READY=1.
    expected: usize,
    statuses: BTreeMap<String, Status>,
    /// The revision each resource last rendered successfully.
    revisions: BTreeMap<String, i64>,
    ready: bool,
    last_status: String,
}

impl Board {
    fn new(expected: usize) -> Self {
        Board {
            expected,
            statuses: BTreeMap::new(),
            revisions: BTreeMap::new(),
            ready: expected == 0,
            last_status: String::new(),
        }
    }

    /// Takes an actor's report; READY=1 when the last first reconcile came in, else a new
    /// STATUS= line if it reads differently.
    fn record(&mut self, report: Report, health: &Health, notifier: &dyn Notifier) {
        metrics::set_state(&report.resource, report.status.name());
        if let Status::InSync(rev) = report.status {
            self.revisions.insert(report.resource.clone(), rev);
        }
        self.statuses.insert(report.resource, report.status);
        if !self.ready && self.statuses.len() >= self.expected {
            self.ready = true;
            info!(resources = self.expected, "first reconcile done; ready");
            self.last_status = status_line(&self.statuses, health);
            notifier.ready(&self.last_status);
            return;
        }
        self.refresh(health, notifier);
    }

    /// A new STATUS= line once ready, if it reads differently.
    fn refresh(&mut self, health: &Health, notifier: &dyn Notifier) {
        if !self.ready {
            return;
        }
        let line = status_line(&self.statuses, health);
        if line != self.last_status {
            notifier.status(&line);
            self.last_status = line;
        }
    }
}

/// One short STATUS= line: "12 resources in sync at revision 48213 via URL; 1 failing (nginx: check failed)".
fn status_line(statuses: &BTreeMap<String, Status>, health: &Health) -> String {
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
    let held: Vec<String> = statuses
        .iter()
        .filter_map(|(n, s)| match s {
            Status::Held { keys, last } => Some(format!("{n}: {keys} of {last} keys")),
            _ => None,
        })
        .collect();
    if !held.is_empty() {
        line.push_str(&format!("; {} held ({})", held.len(), held.join(", ")));
    }
    if let Some(e) = health.error() {
        line = format!("degraded: etcd unreachable ({e}); {line}");
    }
    line
}

/// Loads resources and templates through the one loader. A file that fails keeps its
/// previous version, if any, so a typo in a reload does not stop managing a file.
fn load_resources(
    settings: &Settings,
    previous: &BTreeMap<PathBuf, Arc<Prepared>>,
) -> BTreeMap<PathBuf, Arc<Prepared>> {
    let loaded = reconciler::load(settings);
    loaded.log();
    let mut out: BTreeMap<PathBuf, Arc<Prepared>> = loaded
        .prepared
        .into_iter()
        .map(|p| (p.resource.file.clone(), Arc::new(p)))
        .collect();
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

#[cfg(test)]
mod tests;
