//! `reconfd once`: one consistent read of etcd, every resource reconciled, then exit.
//! With `--noop` it prints a diff per changed resource and runs the checks, but writes and
//! reloads nothing.

use std::sync::Arc;

use tracing::{error, warn};

use crate::config::{Overrides, Settings};
use crate::install::Outcome;
use crate::reconcile::Prepared;
use crate::resource;
use crate::template::Template;
use crate::{etcd, exit};

/// Runs one pass; exit 0 when every resource succeeded, 1 otherwise ([`exit::CONFIG`] when a
/// credential or TLS file is unusable).
pub async fn run(o: &Overrides, noop: bool) -> u8 {
    let settings = match super::settings(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    run_with(&settings, noop, false).await
}

/// [`run`] with settings already assembled; `sync_only` installs without running
/// `check_cmd` or `reload_cmd` (`reconfd confd -onetime -sync-only`).
pub async fn run_with(settings: &Settings, noop: bool, sync_only: bool) -> u8 {
    let loaded = resource::load_all(settings);
    let mut failed = loaded.failed.len();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    for e in &loaded.errors {
        error!("{e}");
    }
    let mut prepared = Vec::new();
    for r in loaded.resources {
        match Template::load_as(&r.src, r.engine) {
            Ok(template) => prepared.push(Prepared {
                resource: r,
                template,
            }),
            Err(e) => {
                error!(reconfd.resource = %r.name, "{}: {e}", r.file.display());
                failed += 1;
            }
        }
    }
    if prepared.is_empty() {
        if failed == 0 {
            warn!(
                "no resources in {}",
                settings.confdir.join("conf.d").display()
            );
        }
        return if failed == 0 {
            exit::SUCCESS
        } else {
            exit::FAILED
        };
    }

    let watched: Vec<String> = prepared.iter().flat_map(|p| p.resource.watched()).collect();
    let read = etcd::read_any(&settings.etcd, &watched).await;
    let read = match read {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return if e.is_config() {
                exit::CONFIG
            } else {
                exit::FAILED
            };
        }
    };
    let snapshot = read.snapshot;

    // Resources reconcile concurrently (renders are CPU-bound: a few per core), and the
    // diffs are printed in file-name order afterwards. A resource whose keys the etcd user
    // may not read fails; the others still render.
    let snapshot = Arc::new(snapshot);
    let permits = Arc::new(tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in prepared.into_iter().enumerate() {
        let denied: Vec<String> = p
            .resource
            .watched()
            .into_iter()
            .filter(|k| read.denied.contains(k))
            .collect();
        if !denied.is_empty() {
            let e = etcd::denied(&settings.etcd, denied);
            error!(reconfd.resource = %p.resource.name, "{}: {e}", p.resource.file.display());
            failed += 1;
            continue;
        }
        let (snapshot, permits) = (snapshot.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let view = Arc::new(snapshot.view(&p.resource.prefix, &p.resource.watched()));
            let mut options = crate::install::Options {
                noop,
                sync_only,
                ..Default::default()
            };
            (i, p.reconcile_with(view, &mut options).await)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => {
                error!("a reconcile task failed: {e}");
                failed += 1;
            }
        }
    }
    results.sort_by_key(|(i, _)| *i);
    for (_, result) in results {
        match result {
            Ok(Outcome::WouldInstall { diff, .. }) => print!("{diff}"),
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    if failed == 0 {
        exit::SUCCESS
    } else {
        error!("{failed} resource(s) failed");
        exit::FAILED
    }
}
