//! systemd notifications (READY, RELOADING, STOPPING, STATUS). A no-op without
//! `NOTIFY_SOCKET`; a failure to notify is logged, never fatal.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// The daemon has reconciled every resource once (or after a reload).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A SIGHUP reload has started.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading configuration"),
        ]),
        Err(e) => tracing::warn!("cannot read the monotonic clock for RELOADING: {e}"),
    }
}

/// The daemon is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("")]);
}

/// A new STATUS= line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The watchdog keep-alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}
