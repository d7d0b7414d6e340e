//! `reconfd once`: one consistent read of etcd, every resource reconciled, then exit.
//! With `--noop` it prints a diff per changed resource and runs the checks, but writes and
//! reloads nothing.
//!
//! The guard applies with no last install to compare with (a one-shot run keeps no count):
//! only `min_keys` can hold a resource here. A held resource is left as it is and counts as
//! failed (exit 1), unless `--force` installs it anyway.

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::config::{Overrides, Settings};
use crate::etcd;
use crate::exit;
use crate::guard::Hold;
use crate::reconciler::{self, render_permits, InstallMode, Prepared, ReconcileError, Reconciled};
use crate::store::Snapshot;

/// Runs one pass; exit 0 when every resource succeeded, else the code of the worst failure
/// ([`exit::Failure`]: 78 configuration, 77 login refused or read denied, 69 no etcd member
/// reachable, 1 a resource failed).
pub async fn run(o: &Overrides, noop: bool, force: bool) -> u8 {
    let settings = match super::settings(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mode = InstallMode {
        noop,
        sync_only: false,
    };
    pass(&settings, mode, force).await
}

/// One pass with settings already assembled (`reconfd confd -onetime` comes here too).
pub async fn pass(settings: &Settings, mode: InstallMode, force: bool) -> u8 {
    let loaded = reconciler::load(settings);
    loaded.log();
    let mut failed = loaded.failed.len();
    let mut failures = Vec::new();
    if loaded.prepared.is_empty() {
        if failed == 0 {
            warn!(
                "no resources in {}",
                settings.confdir.join("conf.d").display()
            );
        }
        return verdict(failed, failures);
    }
    let watched: Vec<String> = loaded
        .prepared
        .iter()
        .flat_map(|p| p.resource.watched())
        .collect();
    let read = match etcd::read_any(&settings.etcd, &watched).await {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return e.failure().code();
        }
    };
    // A resource whose keys the etcd user may not read fails; the others still render.
    let mut readable = Vec::with_capacity(loaded.prepared.len());
    for p in loaded.prepared {
        let denied: Vec<String> = p
            .resource
            .watched()
            .into_iter()
            .filter(|k| read.denied.contains(k))
            .collect();
        if denied.is_empty() {
            readable.push(p);
        } else {
            let e = etcd::denied(&settings.etcd, denied);
            error!(reconfd.resource = %p.resource.name, "{}: {e}", p.resource.file.display());
            failed += 1;
            failures.push(e.failure());
        }
    }
    let results = reconcile_all(readable, Arc::new(read.snapshot), mode, force).await;
    for result in results {
        match result {
            Some(Ok(Reconciled::WouldInstall { diff, .. })) => print!("{diff}"),
            Some(Ok(Reconciled::Held(_))) => failed += 1,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => failed += 1,
        }
    }
    verdict(failed, failures)
}

/// Reconciles every resource from `snapshot`, concurrently within the render bound; the
/// results come back in the resources' order (file-name order), so diffs print in it;
/// `None` for a task that panicked.
async fn reconcile_all(
    prepared: Vec<Prepared>,
    snapshot: Arc<Snapshot>,
    mode: InstallMode,
    force: bool,
) -> Vec<Option<Result<Reconciled, ReconcileError>>> {
    let permits = render_permits();
    let mut tasks = tokio::task::JoinSet::new();
    let count = prepared.len();
    for (i, p) in prepared.into_iter().enumerate() {
        let (snapshot, permits) = (snapshot.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let view = Arc::new(snapshot.view(&p.resource.prefix, &p.resource.watched()));
            if let Some(hold) = held(&p, view.entries.len(), force) {
                return (i, Ok(Reconciled::Held(hold)));
            }
            (i, p.reconcile(view, mode).await)
        });
    }
    let mut results: Vec<Option<Result<Reconciled, ReconcileError>>> =
        (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => results[i] = Some(result),
            Err(e) => error!("a reconcile task failed: {e}"),
        }
    }
    results
}

/// Whether the guard holds `p`'s render of `keys` keys (logged); `force` installs anyway.
fn held(p: &Prepared, keys: usize, force: bool) -> Option<Hold> {
    let r = &p.resource;
    let hold = r.batch.guard.check(keys, None).err()?;
    if force {
        info!(reconfd.resource = %r.name, "{}: --force: installing a render the guard would hold ({hold})", r.file.display());
        return None;
    }
    warn!(
        reconfd.resource = %r.name,
        message_id = crate::logging::GUARD_HELD,
        "{}: render held, the file stays as it is: {hold}; `reconfd once --force` installs it",
        r.file.display()
    );
    Some(hold)
}

/// Exit 0 when nothing failed, else the worst of `failures` (at least
/// [`exit::Failure::Resource`]) with a count.
fn verdict(failed: usize, mut failures: Vec<exit::Failure>) -> u8 {
    if failed == 0 {
        return exit::SUCCESS;
    }
    error!("{failed} resource(s) failed");
    failures.push(exit::Failure::Resource);
    exit::Failure::worst(failures)
}
