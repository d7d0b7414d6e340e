//! What the daemon tells Prometheus, and what `reconfd status` and `/readyz` read about each
//! resource.
//!
//! Two stores, both process-wide (one daemon per process):
//! - the Prometheus registry ([`prometheus_client`]): per-resource, etcd, process and build
//!   metrics. Recording is skipped (one atomic load) until [`enable`] is called, which the
//!   daemon does only when a listener is configured: no listener, no cost.
//! - [`live`]: each resource's last error, install and attempt times and the supervisor's
//!   board of states, always kept (the control socket reads it). Small, one lock per event.
//!
//! Recording happens where things happen: [`reconciled`] and [`timed`] in the reconciler,
//! [`changed`] in the actor, the `etcd_*` functions in the etcd task, [`set_states`] in the
//! supervisor. [`server`] serves `/metrics`, `/healthz` and `/readyz`; nothing there touches
//! etcd. The exposition is written by `prometheus-client` (OpenMetrics text).

pub mod live;
mod process;
pub mod server;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The states a resource's `reconfd_resource_state` gauge set takes, as `reconfd status`
/// names them.
pub const STATES: [&str; 5] = ["pending", "in_sync", "deferred", "failing", "held"];

/// One step of a reconcile, for the duration histogram's `step` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Rendering the template.
    Render,
    /// Staging the file beside the destination and running `check_cmd`.
    Check,
    /// Renaming the staged file over the destination.
    Install,
    /// Running `reload_cmd`.
    Reload,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::Render => "render",
            Step::Check => "check",
            Step::Install => "install",
            Step::Reload => "reload",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    resource: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    resource: String,
    step: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabel {
    member: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type PerResource<M> = Family<ResourceLabel, M>;
type Timestamp = Gauge<f64, AtomicU64>;

/// Per-resource metrics.
struct Resources {
    state: Family<StateLabel, Gauge>,
    revision: PerResource<Gauge>,
    last_install: PerResource<Timestamp>,
    last_success: PerResource<Timestamp>,
    last_attempt: PerResource<Timestamp>,
    last_change: PerResource<Timestamp>,
    renders: PerResource<Counter>,
    installs: PerResource<Counter>,
    unchanged: PerResource<Counter>,
    render_failures: PerResource<Counter>,
    check_failures: PerResource<Counter>,
    install_failures: PerResource<Counter>,
    reload_failures: PerResource<Counter>,
    deferred: PerResource<Counter>,
    retries: PerResource<Counter>,
    duration: Family<StepLabel, Histogram, fn() -> Histogram>,
}

impl Resources {
    /// Creates `resource`'s counters at 0, so the first event is an increase Prometheus sees.
    fn zero_counters(&self, resource: &str) {
        let l = label(resource);
        for c in [
            &self.renders,
            &self.installs,
            &self.unchanged,
            &self.render_failures,
            &self.check_failures,
            &self.install_failures,
            &self.reload_failures,
            &self.deferred,
            &self.retries,
        ] {
            let _ = c.get_or_create(&l);
        }
    }
}

/// etcd metrics (the age of the last answer is computed at scrape time, in [`live`]).
struct Etcd {
    member: Family<MemberLabel, Gauge>,
    connected: Gauge,
    revision: Gauge,
    keys: Gauge,
    connects: Counter,
    reconnects: Counter,
    failovers: Counter,
    full_reads: Counter,
    /// The endpoint of the last connect, to tell a failover from a reconnect.
    last_endpoint: std::sync::Mutex<Option<String>>,
}

/// The registry and the handles recorded into.
struct Metrics {
    registry: Registry,
    res: Resources,
    etcd: Etcd,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Starts recording (the daemon calls it when it serves the metrics).
pub fn enable() {
    LazyLock::force(&METRICS);
    ENABLED.store(true, Ordering::Release);
}

/// The registry, if recording.
fn metrics() -> Option<&'static Metrics> {
    ENABLED.load(Ordering::Acquire).then(|| &*METRICS)
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s: a render is milliseconds, a check or reload command can be seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    /// Registers every metric. Long because it is the list of metrics (names, help texts,
    /// types), kept in one place so that docs/metrics.md can be checked against it.
    fn new() -> Self {
        let mut registry = Registry::default();
        let res = Resources {
            state: Family::default(),
            revision: Family::default(),
            last_install: Family::default(),
            last_success: Family::default(),
            last_attempt: Family::default(),
            last_change: Family::default(),
            renders: Family::default(),
            installs: Family::default(),
            unchanged: Family::default(),
            render_failures: Family::default(),
            check_failures: Family::default(),
            install_failures: Family::default(),
            reload_failures: Family::default(),
            deferred: Family::default(),
            retries: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        let r = &mut registry;
        r.register("reconfd_resource_state", "1 for the resource's current state (pending: first reconcile not done), 0 for the others", res.state.clone());
        r.register(
            "reconfd_resource_revision",
            "etcd revision the resource last rendered successfully",
            res.revision.clone(),
        );
        r.register(
            "reconfd_resource_last_install_timestamp_seconds",
            "Unix time the destination was last replaced",
            res.last_install.clone(),
        );
        r.register(
            "reconfd_resource_last_success_timestamp_seconds",
            "Unix time of the last reconcile that left the destination in line with etcd",
            res.last_success.clone(),
        );
        r.register(
            "reconfd_resource_last_attempt_timestamp_seconds",
            "Unix time of the last reconcile, whatever its outcome",
            res.last_attempt.clone(),
        );
        r.register(
            "reconfd_resource_last_change_timestamp_seconds",
            "Unix time a change of the resource's keys last arrived from etcd",
            res.last_change.clone(),
        );
        r.register(
            "reconfd_resource_renders",
            "Successful renders",
            res.renders.clone(),
        );
        r.register(
            "reconfd_resource_installs",
            "Destinations replaced",
            res.installs.clone(),
        );
        r.register(
            "reconfd_resource_unchanged",
            "Renders equal to the live file (nothing written, nothing reloaded)",
            res.unchanged.clone(),
        );
        r.register(
            "reconfd_resource_render_failures",
            "Renders that failed",
            res.render_failures.clone(),
        );
        r.register(
            "reconfd_resource_check_failures",
            "Staged files refused by check_cmd",
            res.check_failures.clone(),
        );
        r.register(
            "reconfd_resource_install_failures",
            "Staging or renames that failed",
            res.install_failures.clone(),
        );
        r.register(
            "reconfd_resource_reload_failures",
            "reload_cmd runs that failed",
            res.reload_failures.clone(),
        );
        r.register(
            "reconfd_resource_deferred",
            "Installs deferred by the reload limit",
            res.deferred.clone(),
        );
        r.register(
            "reconfd_resource_retries",
            "Reconciles that retried after a failed one",
            res.retries.clone(),
        );
        r.register(
            "reconfd_resource_duration_seconds",
            "Time spent in each step of a reconcile (check: staging and check_cmd)",
            res.duration.clone(),
        );
        let etcd = Etcd {
            member: Family::default(),
            connected: Gauge::default(),
            revision: Gauge::default(),
            keys: Gauge::default(),
            connects: Counter::default(),
            reconnects: Counter::default(),
            failovers: Counter::default(),
            full_reads: Counter::default(),
            last_endpoint: std::sync::Mutex::new(None),
        };
        r.register(
            "reconfd_etcd_member",
            "1 for the etcd endpoint followed now (or last)",
            etcd.member.clone(),
        );
        r.register(
            "reconfd_etcd_connected",
            "1 while etcd is being followed, 0 while no member can be",
            etcd.connected.clone(),
        );
        r.register(
            "reconfd_etcd_revision",
            "etcd revision of the local copy",
            etcd.revision.clone(),
        );
        r.register(
            "reconfd_etcd_keys",
            "Keys held in the local copy of etcd",
            etcd.keys.clone(),
        );
        r.register(
            "reconfd_etcd_reconnects",
            "Connections to etcd after the first",
            etcd.reconnects.clone(),
        );
        r.register(
            "reconfd_etcd_failovers",
            "Connections to another endpoint than the one before",
            etcd.failovers.clone(),
        );
        r.register(
            "reconfd_etcd_full_reads",
            "Full reads of the watched keys after the first (reconnect, compaction, denied keys)",
            etcd.full_reads.clone(),
        );
        // A gauge at 1, as the other Prometheus clients write build info: OpenMetrics' `info`
        // type is not understood by `promtool check metrics` or older scrapers.
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        r.register("reconfd_build_info", "reconfd's version (always 1)", build);
        r.register_collector(Box::new(live::EtcdAge));
        r.register_collector(Box::new(process::Process));
        Metrics {
            registry,
            res,
            etcd,
        }
    }
}

/// The exposition of every metric, in OpenMetrics text.
pub fn encode() -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn label(resource: &str) -> ResourceLabel {
    ResourceLabel {
        resource: resource.to_owned(),
    }
}

/// The supervisor's board: every resource's state, replacing the last one (resources that
/// left the configuration drop out).
pub fn set_states(states: &[(String, &'static str)]) {
    live::set_states(states);
    let Some(m) = metrics() else { return };
    m.res.state.clear();
    for (resource, current) in states {
        m.res.zero_counters(resource);
        for s in STATES {
            m.res
                .state
                .get_or_create(&StateLabel {
                    resource: resource.clone(),
                    state: s.to_owned(),
                })
                .set(i64::from(s == *current));
        }
    }
}

/// One resource's new state.
pub fn set_state(resource: &str, current: &'static str) {
    live::set_state(resource, current);
    let Some(m) = metrics() else { return };
    for s in STATES {
        m.res
            .state
            .get_or_create(&StateLabel {
                resource: resource.to_owned(),
                state: s.to_owned(),
            })
            .set(i64::from(s == current));
    }
}

/// A resource's successful render of `revision`.
pub fn revision(resource: &str, revision: i64) {
    if let Some(m) = metrics() {
        m.res.revision.get_or_create(&label(resource)).set(revision);
    }
}

/// A change of `resource`'s keys arrived.
pub fn changed(resource: &str) {
    live::changed(resource);
    if let Some(m) = metrics() {
        m.res
            .last_change
            .get_or_create(&label(resource))
            .set(unix_now());
    }
}

/// How a reconcile ended, as the metrics count it. The reconciler maps its own outcome to
/// this, so that metrics depends on nothing above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file was in line already.
    Unchanged,
    /// A new version was installed.
    Installed,
    /// The file was in line and an owed reload ran.
    Reloaded,
    /// Under noop: a new version would have been installed.
    WouldInstall,
    /// Installed; the reload waits for the budget.
    Deferred,
    /// The guard held the render; the live file stays.
    Held,
    /// A step failed, with the error's text.
    Failed(Failure, String),
}

/// Which step of a reconcile failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Loading or rendering the template.
    Render,
    /// `check_cmd` refused the staged file.
    Check,
    /// `reload_cmd` failed.
    Reload,
    /// Staging or installing the file.
    Install,
}

/// How one reconcile of `resource` ended: counters, times, the last error.
pub fn reconciled(resource: &str, outcome: &Outcome) {
    let retry = live::reconciled(resource, outcome);
    let Some(m) = metrics() else { return };
    let l = label(resource);
    let now = unix_now();
    let r = &m.res;
    r.last_attempt.get_or_create(&l).set(now);
    if retry {
        r.retries.get_or_create(&l).inc();
    }
    let counter = match outcome {
        Outcome::Unchanged => Some(&r.unchanged),
        Outcome::Installed => {
            r.last_install.get_or_create(&l).set(now);
            Some(&r.installs)
        }
        Outcome::Deferred => Some(&r.deferred),
        Outcome::Reloaded | Outcome::WouldInstall | Outcome::Held => None,
        Outcome::Failed(Failure::Render, _) => Some(&r.render_failures),
        Outcome::Failed(Failure::Check, _) => Some(&r.check_failures),
        Outcome::Failed(Failure::Reload, _) => Some(&r.reload_failures),
        Outcome::Failed(Failure::Install, _) => Some(&r.install_failures),
    };
    if let Some(c) = counter {
        c.get_or_create(&l).inc();
    }
    if !matches!(outcome, Outcome::Failed(Failure::Render, _)) {
        r.renders.get_or_create(&l).inc();
    }
    if matches!(
        outcome,
        Outcome::Unchanged | Outcome::Installed | Outcome::Reloaded
    ) {
        r.last_success.get_or_create(&l).set(now);
    }
}

tokio::task_local! {
    /// The resource whose reconcile runs in this task, for [`timed`].
    static RESOURCE: String;
}

/// Runs `fut` (one reconcile of `resource`) so that [`timed`] and [`observe`] inside it
/// know the resource.
pub async fn scoped<F: std::future::Future>(resource: &str, fut: F) -> F::Output {
    RESOURCE.scope(resource.to_owned(), fut).await
}

/// Records how long `step` took for the resource of the current [`scoped`] reconcile.
pub fn observe(step: Step, took: Duration) {
    let Some(m) = metrics() else { return };
    let _ = RESOURCE.try_with(|resource| {
        m.res
            .duration
            .get_or_create(&StepLabel {
                resource: resource.clone(),
                step: step.label().to_owned(),
            })
            .observe(took.as_secs_f64());
    });
}

/// Runs `fut`, one `step`, and records its duration.
pub async fn timed<F: std::future::Future>(step: Step, fut: F) -> F::Output {
    let started = std::time::Instant::now();
    let out = fut.await;
    observe(step, started.elapsed());
    out
}

/// The etcd task connected to `endpoint`.
pub fn etcd_connected(endpoint: &str) {
    let Some(m) = metrics() else { return };
    let e = &m.etcd;
    let mut last = e.last_endpoint.lock().unwrap_or_else(|p| p.into_inner());
    if e.connects.inc() > 0 {
        e.reconnects.inc();
    }
    if last.as_deref().is_some_and(|l| l != endpoint) {
        e.failovers.inc();
    }
    *last = Some(endpoint.to_owned());
}

/// The etcd task starts a full read of the watched keys.
pub fn etcd_full_read(first: bool) {
    if let Some(m) = metrics() {
        if !first {
            m.etcd.full_reads.inc();
        }
    }
}

/// The etcd task published a snapshot of `keys` keys at `revision`.
pub fn etcd_snapshot(revision: i64, keys: usize) {
    if let Some(m) = metrics() {
        m.etcd.revision.set(revision);
        m.etcd.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
    }
}

/// Where etcd stands: the member followed (or last followed) and whether it is reachable.
pub fn etcd_reach(member: Option<&str>, connected: bool) {
    let Some(m) = metrics() else { return };
    m.etcd.connected.set(i64::from(connected));
    if let Some(member) = member {
        m.etcd.member.clear();
        m.etcd
            .member
            .get_or_create(&MemberLabel {
                member: member.to_owned(),
            })
            .set(1);
    }
}
