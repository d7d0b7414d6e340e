//! Bringing one resource's file in line with a view of etcd: render, then the install steps
//! (stage and check, commit, reload), and what came of it.
//!
//! - [`prepared`]: the one loader (resource files → templates → [`Prepared`] resources).
//! - [`actor`]: `reconfd run`'s per-resource task: batching, the reload budget, retries.
//! - here: the sequence shared by `once` and the actor ([`Prepared::render_and_stage`],
//!   [`finish`]), its outcome ([`Reconciled`]) and how an outcome reads as a [`Status`].
//!
//! Nothing outside this module renders or installs: callers hand it a view and get an
//! outcome. When to reconcile is the actor's [`crate::batch::Batcher`]'s business.
//!
//! Before a render: the view's keys and values must be text ([`KvView::check_text`], in
//! [`Prepared::render_and_stage`], so `once` and `run` decide alike), and the caller asks the
//! resource's [`crate::guard::Guard`] whether the render may go ahead at all (the actor with
//! its last install's count, `once` without one); a held render is [`Reconciled::Held`].

pub mod actor;
pub mod prepared;
#[cfg(test)]
pub(crate) mod testkit;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::{debug, error, info, info_span, Instrument};

use crate::batch::Done;
use crate::guard::Hold;
use crate::install::{self, Change, InstallError, Staging};
use crate::metrics::{self, Step};
use crate::store::KvView;
use crate::template::TemplateError;

pub use actor::{Actor, ActorCommand, Handover, Report, Wiring};
pub use prepared::{load, Loaded, Prepared};

/// How installs are carried out, for a whole `once` pass or daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallMode {
    /// Stage and check only; never commit or reload (`--noop`).
    pub noop: bool,
    /// Install without running `check_cmd` or `reload_cmd` (confd's `-sync-only`): the
    /// files are kept in line while the services are left alone. A reload owed from before
    /// is not run either, and no reload budget is spent.
    pub sync_only: bool,
}

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The live file was already right; nothing was written and no command ran.
    Unchanged,
    /// The file was already right, but a reload owed from an earlier failed attempt ran.
    Reloaded,
    /// Noop: the file would change and passed its check, but was not installed.
    WouldInstall {
        /// Why it would be installed.
        changes: Vec<Change>,
        /// Unified diff of live vs rendered content (empty when only owner or mode differ).
        diff: String,
    },
    /// The file would change but the reload budget is spent: nothing was installed; the
    /// actor tries again (with the then latest render) at `until`.
    Deferred {
        /// When a reload is permitted again.
        until: std::time::Instant,
    },
    /// The guard holds the render: nothing was rendered or written, the live file stays.
    /// Re-evaluated on the next change; an approval lets it through once.
    Held(Hold),
    /// The new file is in place (and the reload, if any, succeeded).
    Installed {
        /// Why it was installed.
        changes: Vec<Change>,
        /// Whether a `reload_cmd` ran.
        reloaded: bool,
    },
}

/// Why a resource could not be brought in line.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The template failed to render; nothing was written.
    #[error("render failed: {0}")]
    Render(#[from] TemplateError),
    /// A watched key or value is not text (see [`crate::store::text`]); nothing was
    /// rendered or written.
    #[error("not rendered: {0}")]
    NotText(#[from] crate::store::NotText),
    /// Staging, checking, installing or reloading failed.
    #[error(transparent)]
    Install(#[from] InstallError),
}

impl ReconcileError {
    /// A few words for STATUS=: which step failed.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Render(_) => "render failed",
            Self::NotText(_) => "a key or value is not text",
            Self::Install(InstallError::Check { .. }) => "check failed",
            Self::Install(InstallError::Reload { .. }) => "reload failed",
            Self::Install(InstallError::RolledBack { .. }) => "reload failed, rolled back",
            Self::Install(_) => "install failed",
        }
    }
}

/// What an actor reports after each reconcile, for READY= and STATUS=.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The destination matches etcd at this revision.
    InSync(i64),
    /// Waiting for the reload budget.
    Deferred,
    /// The last attempt failed (short reason); it is being retried.
    Failing(&'static str),
    /// The guard holds a render that lost keys; the live file stays until the keys come back
    /// or an operator approves.
    Held {
        /// Keys in the watched keys now.
        keys: usize,
        /// Keys at the last install (0 when there was none since the daemon started).
        last: usize,
    },
}

/// What an approval of a held render came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The held render is being installed.
    Accepted,
    /// The resource exists but holds nothing.
    NotHeld,
    /// No resource of that name.
    Unknown,
}

impl Status {
    /// How a reconcile of a view at `revision` reads in STATUS=.
    pub fn of(result: &Result<Reconciled, ReconcileError>, revision: i64) -> Self {
        match result {
            Ok(Reconciled::Deferred { .. }) => Status::Deferred,
            Ok(Reconciled::Held(hold)) => Status::Held {
                keys: hold.keys(),
                last: hold.last().unwrap_or(0),
            },
            Ok(_) => Status::InSync(revision),
            Err(e) => Status::Failing(e.step()),
        }
    }
}

impl Status {
    /// The state's name in `reconfd status`, `/readyz` and `reconfd_resource_state`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::InSync(_) => "in_sync",
            Status::Deferred => "deferred",
            Status::Failing(_) => "failing",
            Status::Held { .. } => "held",
        }
    }
}

/// What the batcher needs to know of a reconcile.
pub fn done_of(result: &Result<Reconciled, ReconcileError>) -> Done {
    match result {
        Ok(Reconciled::Deferred { until }) => Done::Deferred(*until),
        Ok(Reconciled::Installed { .. } | Reconciled::Reloaded) => Done::Installed,
        // A held render waits for a change or an approval, not for a retry timer.
        Ok(Reconciled::Unchanged | Reconciled::WouldInstall { .. } | Reconciled::Held(_)) => {
            Done::Unchanged
        }
        Err(_) => Done::Failed,
    }
}

/// Whether a reload is owed after a reconcile, given whether one was owed before: a failed
/// reload leaves the new file installed and the reload owed; a reload that ran pays it; a
/// rollback whose reload passed leaves the service running the file on disk.
pub fn owed_after(result: &Result<Reconciled, ReconcileError>, owed: bool) -> bool {
    match result {
        Err(ReconcileError::Install(InstallError::Reload { .. })) => true,
        // The previous file is back: owed only if the service did not take it either.
        Err(ReconcileError::Install(InstallError::RolledBack { rollback, .. })) => {
            rollback.reload.is_err()
        }
        Ok(Reconciled::Installed { .. } | Reconciled::Reloaded) => false,
        _ => owed,
    }
}

/// The bound on concurrent reconciles: renders are CPU-bound, so a few per core (twice the
/// cores). One semaphore is shared by every resource of a `once` pass or daemon generation.
pub fn render_permits() -> Arc<Semaphore> {
    let n = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    Arc::new(Semaphore::new(n))
}

impl Prepared {
    /// One reconcile without a reload budget or owed reload (`once`, the golden test):
    /// render, stage and check, then commit and reload (or preview, under noop).
    pub async fn reconcile(
        &self,
        view: Arc<KvView>,
        mode: InstallMode,
    ) -> Result<Reconciled, ReconcileError> {
        let revision = view.revision;
        self.traced(revision, async {
            let staging = self.render_and_stage(view, mode).await?;
            Ok(finish(staging, mode, false).await?)
        })
        .await
    }

    /// The first half of a reconcile: renders `view` and stages and checks the result
    /// ([`install::stage_and_check`]). Nothing is installed yet.
    pub async fn render_and_stage(
        &self,
        view: Arc<KvView>,
        mode: InstallMode,
    ) -> Result<Staging, ReconcileError> {
        view.check_text(self.resource.lossy_utf8)?;
        let started = std::time::Instant::now();
        let rendered = self.template.render(view);
        crate::metrics::observe(Step::Render, started.elapsed());
        let rendered = rendered?;
        let hooks = self.hooks(mode.sync_only);
        let spec = self.file_spec();
        let staging = install::stage_and_check(&spec, &hooks, rendered.into_bytes());
        Ok(metrics::timed(Step::Check, staging).await?)
    }

    /// Runs `steps`, one reconcile of this resource, in its `reconcile` span (journald:
    /// RECONFD_RESOURCE, RECONFD_DEST, RECONFD_REVISION) and logs how it ended.
    pub async fn traced(
        &self,
        revision: i64,
        steps: impl Future<Output = Result<Reconciled, ReconcileError>>,
    ) -> Result<Reconciled, ReconcileError> {
        let r = &self.resource;
        let span = info_span!(
            "reconcile",
            reconfd.resource = %r.name,
            reconfd.dest = %r.dest.display(),
            reconfd.revision = revision
        );
        // Boxed: each wrapper below would otherwise hold its own copy of the steps' state
        // (rustc keeps a moved-in future and its awaited copy apart), which made this
        // future 95 KB, allocated up front by every actor and by each of `once`'s tasks.
        let steps = Box::pin(steps);
        let timed = async move {
            let started = std::time::Instant::now();
            let result = steps.await;
            log_result(&result, started.elapsed());
            metrics::reconciled(&r.name, &outcome_of(&result));
            if result.is_ok() {
                metrics::revision(&r.name, revision);
            }
            result
        };
        metrics::scoped(&r.name, timed.instrument(span)).await
    }
}

/// How `result` counts in the metrics.
fn outcome_of(result: &Result<Reconciled, ReconcileError>) -> metrics::Outcome {
    use metrics::{Failure, Outcome};
    match result {
        Ok(Reconciled::Unchanged) => Outcome::Unchanged,
        Ok(Reconciled::Installed { .. }) => Outcome::Installed,
        Ok(Reconciled::Reloaded) => Outcome::Reloaded,
        Ok(Reconciled::WouldInstall { .. }) => Outcome::WouldInstall,
        Ok(Reconciled::Deferred { .. }) => Outcome::Deferred,
        Ok(Reconciled::Held(_)) => Outcome::Held,
        Err(e) => {
            let step = match e {
                // Not text: the render cannot start, as for a template error.
                ReconcileError::Render(_) | ReconcileError::NotText(_) => Failure::Render,
                ReconcileError::Install(InstallError::Check { .. }) => Failure::Check,
                ReconcileError::Install(
                    InstallError::Reload { .. } | InstallError::RolledBack { .. },
                ) => Failure::Reload,
                ReconcileError::Install(_) => Failure::Install,
            };
            Outcome::Failed(step, e.to_string())
        }
    }
}

/// The second half of a reconcile, once the caller has decided the staged file may go in:
/// under noop, a preview; otherwise commit and reload. An unchanged file runs the reload
/// only when one is `owed` (and not under noop).
pub async fn finish(
    staging: Staging,
    mode: InstallMode,
    owed: bool,
) -> Result<Reconciled, InstallError> {
    match staging {
        Staging::InSync(file) => {
            if owed && !mode.noop && metrics::timed(Step::Reload, file.reload()).await? {
                return Ok(Reconciled::Reloaded);
            }
            Ok(Reconciled::Unchanged)
        }
        Staging::Staged(staged) if mode.noop => {
            let (changes, diff) = staged.into_preview();
            Ok(Reconciled::WouldInstall { changes, diff })
        }
        Staging::Staged(staged) => {
            let committed = metrics::timed(Step::Install, staged.commit()).await?;
            let reloaded = metrics::timed(Step::Reload, committed.reload()).await?;
            Ok(Reconciled::Installed {
                changes: committed.into_changes(),
                reloaded,
            })
        }
    }
}

fn log_result(result: &Result<Reconciled, ReconcileError>, elapsed: std::time::Duration) {
    let elapsed_ms = elapsed.as_millis() as u64;
    match result {
        Ok(Reconciled::Unchanged) => info!(elapsed_ms, "in sync"),
        // The install steps already logged what they installed and why.
        Ok(outcome) => debug!(elapsed_ms, "{}", outcome_text(outcome)),
        Err(e @ (ReconcileError::Render(_) | ReconcileError::NotText(_))) => {
            error!(message_id = crate::logging::RENDER_FAILED, "{e}")
        }
        Err(e) => error!("{e}"),
    }
}

fn outcome_text(o: &Reconciled) -> &'static str {
    match o {
        Reconciled::Unchanged => "in sync",
        Reconciled::WouldInstall { .. } => "would change (noop)",
        Reconciled::Deferred { .. } => "deferred by the reload limit",
        Reconciled::Held(_) => "held by the guard",
        Reconciled::Reloaded => "reloaded (owed from an earlier failure)",
        Reconciled::Installed { reloaded: true, .. } => "installed and reloaded",
        Reconciled::Installed {
            reloaded: false, ..
        } => "installed",
    }
}
