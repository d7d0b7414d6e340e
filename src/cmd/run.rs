//! `reconfd run`: the daemon. Installs the signal handlers (SIGHUP reloads, SIGTERM and
//! SIGINT stop) and hands them to the [`supervisor`] as a reload channel and a shutdown
//! future; opens the control socket and, when configured, the metrics listener (both for the
//! life of the process: a SIGHUP does not move them); everything else is the supervisor's.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::config::{ObserveSettings, Overrides, Settings};
use crate::control::Command;
use crate::reconciler::InstallMode;
use crate::supervisor::{self, Options, Source};
use crate::{control, exit, metrics};

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code. `interval` (seconds) polls
/// instead of watching.
pub fn run(overrides: Overrides, interval: Option<u64>, noop: bool) -> u8 {
    let source = match interval {
        Some(0) => {
            eprintln!("--interval must be at least 1 second");
            return exit::USAGE;
        }
        Some(secs) => Source::Poll(Duration::from_secs(secs)),
        None => Source::Watch,
    };
    let settings = move || {
        Settings::assemble(&overrides).map_err(|d| d.iter().map(ToString::to_string).collect())
    };
    let mode = InstallMode {
        noop,
        sync_only: false,
    };
    super::runtime().block_on(daemon(settings, source, mode))
}

/// The supervisor under signals: `settings` is called at start and on every SIGHUP.
pub async fn daemon(
    settings: impl Fn() -> Result<Settings, Vec<String>>,
    source: Source,
    mode: InstallMode,
) -> u8 {
    let (shutdown, reload) = match signals() {
        Ok(signals) => signals,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return exit::FAILED;
        }
    };
    // A config that does not load is the supervisor's to report (exit 78).
    let observe = settings().map(|s| s.observe).unwrap_or_default();
    let listener = match &observe.metrics_listen {
        Some(listen) => match metrics::server::serve(listen).await {
            Ok(task) => Some(task),
            Err(e) => {
                error!("{e}");
                return exit::CONFIG;
            }
        },
        None => None,
    };
    let (control, commands) = control_socket(&observe).await.unzip();
    let options = Options::systemd(mode, commands);
    let code = supervisor::run(settings, source, shutdown, reload, options).await;
    for task in [listener, control].into_iter().flatten() {
        task.abort();
        // The control task owns the socket: once it is gone, so is the socket file.
        let _ = task.await;
    }
    code
}

/// Binds the control socket and serves it; without one (its directory cannot be made, say)
/// the daemon runs on and `reconfd status` cannot reach it.
async fn control_socket(
    observe: &ObserveSettings,
) -> Option<(JoinHandle<()>, mpsc::Receiver<Command>)> {
    let path = &observe.control_socket;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let socket = match control::bind(path).await {
        Ok(s) => s,
        Err(e) => {
            warn!("{e}; `reconfd status` cannot reach this daemon");
            return None;
        }
    };
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move { control::serve(&socket, tx).await });
    Some((task, rx))
}

/// SIGTERM or SIGINT as a future, SIGHUP as a channel. SIGHUPs that arrive while one is
/// still waiting to be taken count as that one: a reload reads the latest files anyway.
fn signals() -> std::io::Result<(impl Future<Output = ()>, mpsc::Receiver<()>)> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                return;
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    Ok((shutdown, rx))
}
