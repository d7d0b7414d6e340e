//! `reconfd run`: the daemon. Installs the signal handlers (SIGHUP reloads, SIGTERM and
//! SIGINT stop) and hands them to the [`supervisor`] as a reload channel and a shutdown
//! future; everything else is the supervisor's.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::error;

use crate::config::{Overrides, Settings};
use crate::exit;
use crate::reconciler::InstallMode;
use crate::supervisor::{self, Options, Source};

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
    supervisor::run(settings, source, shutdown, reload, Options::systemd(mode)).await
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
