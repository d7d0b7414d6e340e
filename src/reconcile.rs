//! One reconcile of one resource: render its template against a view of etcd, then hand the
//! bytes to the install pipeline (compare, stage, check, rename, reload).
//!
//! Scheduling (when to reconcile, retries) is not this module's business.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, error, info, info_span, Instrument};

use crate::install::{self, FileSpec, Hooks, InstallError, Outcome, ShellCommand};
use crate::resource::Resource;
use crate::store::KvView;
use crate::template::{Template, TemplateError};

/// Why a resource could not be brought in line.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The template failed to render; nothing was written.
    #[error("render failed: {0}")]
    Render(#[from] TemplateError),
    /// Staging, checking, installing or reloading failed.
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// A resource with its loaded template, ready to reconcile.
#[derive(Debug)]
pub struct Prepared {
    /// The resource.
    pub resource: Resource,
    /// Its parsed template.
    pub template: Template,
}

impl Prepared {
    /// How the install pipeline sees this resource's destination.
    pub fn file_spec(&self) -> FileSpec {
        let r = &self.resource;
        FileSpec {
            dest: r.dest.clone(),
            uid: r.uid,
            gid: r.gid,
            mode: r.mode,
        }
    }

    /// The resource's commands and their timeouts.
    pub fn hooks(&self) -> Hooks {
        let r = &self.resource;
        Hooks {
            check: r.check_cmd.clone().map(ShellCommand::new),
            reload: r.reload_cmd.clone().map(ShellCommand::new),
            check_timeout: r.check_timeout,
            reload_timeout: r.reload_timeout,
        }
    }

    /// Renders and installs. `noop` stages and checks but never installs or reloads.
    pub async fn reconcile(
        &self,
        view: Arc<KvView>,
        noop: bool,
    ) -> Result<Outcome, ReconcileError> {
        self.reconcile_with(
            view,
            &mut install::Options {
                noop,
                ..Default::default()
            },
        )
        .await
    }

    /// [`Prepared::reconcile`] with the daemon's install options (reload budget, owed reload).
    pub async fn reconcile_with(
        &self,
        view: Arc<KvView>,
        options: &mut install::Options<'_>,
    ) -> Result<Outcome, ReconcileError> {
        let r = &self.resource;
        let revision = view.revision;
        // Dotted names become RECONFD_RESOURCE, RECONFD_DEST, RECONFD_REVISION in journald.
        let span = info_span!(
            "reconcile",
            reconfd.resource = %r.name,
            reconfd.dest = %r.dest.display(),
            reconfd.revision = revision
        );
        async move {
            let started = Instant::now();
            let result = match self.template.render(view) {
                Ok(rendered) => install::install_with(
                    &r.name,
                    &self.file_spec(),
                    &self.hooks(),
                    rendered.as_bytes(),
                    options,
                )
                .await
                .map_err(ReconcileError::from),
                Err(e) => Err(e.into()),
            };
            match &result {
                Ok(Outcome::Unchanged) => {
                    info!(elapsed_ms = started.elapsed().as_millis() as u64, "in sync")
                }
                // The install pipeline already logged what it installed and why.
                Ok(outcome) => debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "{}",
                    outcome_text(outcome)
                ),
                Err(e @ ReconcileError::Render(_)) => {
                    error!(message_id = crate::logging::RENDER_FAILED, "{e}")
                }
                Err(e) => error!("{e}"),
            }
            result
        }
        .instrument(span)
        .await
    }
}

fn outcome_text(o: &Outcome) -> &'static str {
    match o {
        Outcome::Unchanged => "in sync",
        Outcome::WouldInstall { .. } => "would change (noop)",
        Outcome::Deferred { .. } => "deferred by the reload limit",
        Outcome::Reloaded => "reloaded (owed from an earlier failure)",
        Outcome::Installed { reloaded: true, .. } => "installed and reloaded",
        Outcome::Installed {
            reloaded: false, ..
        } => "installed",
    }
}
