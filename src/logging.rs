//! Logging setup: journald when the process runs under it, stderr otherwise.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp, since journald adds one.

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is a level or an `EnvFilter` directive.
pub fn init(level: &str) {
    let (filter, bad) = match EnvFilter::try_new(level) {
        Ok(f) => (f, false),
        Err(_) => (EnvFilter::new("info"), true),
    };
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    if under_journal {
        if let Ok(layer) = tracing_journald::layer() {
            let _ = registry
                .with(layer.with_syslog_identifier("reconfd".into()))
                .try_init();
            return;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if under_journal {
        let _ = registry.with(fmt.without_time()).try_init();
    } else {
        let _ = registry.with(fmt).try_init();
    }
    if bad {
        tracing::warn!("invalid log level {level:?}; using info");
    }
}
