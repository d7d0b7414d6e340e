//! Logging setup: journald when the process runs under it, stderr otherwise.
//!
//! Journald entries carry structured fields that `journalctl` filters on: spans name their
//! fields `reconfd.resource`, `reconfd.dest`, `reconfd.revision`, which journald receives as
//! `RECONFD_RESOURCE`, `RECONFD_DEST`, `RECONFD_REVISION`; key events carry a stable
//! `MESSAGE_ID` (the constants below, documented in docs/systemd.md). Under systemd
//! (`JOURNAL_STREAM` set) stderr lines carry no timestamp, since journald adds one.

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// A file was installed (`MESSAGE_ID`).
pub const INSTALLED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e50";
/// A `check_cmd` rejected a staged file.
pub const CHECK_FAILED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e51";
/// A `reload_cmd` failed after the file was installed.
pub const RELOAD_FAILED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e52";
/// etcd cannot be followed (every endpoint failing, or the watch broken).
pub const ETCD_UNREACHABLE: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e53";
/// etcd answers again after being unreachable.
pub const ETCD_RECOVERED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e54";
/// A template failed to render.
pub const RENDER_FAILED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e55";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// journald when `JOURNAL_STREAM` says stderr is the journal, else stderr.
    Auto,
    /// The journal's native protocol, with structured fields.
    Journald,
    /// Standard error.
    Stderr,
}

/// How stderr lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// The field names journald receives for a tracing field name (as tracing-journald maps
/// them: upper case, `.` to `_`, other characters dropped, no prefix).
pub fn journald_field_name(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            '.' => Some('_'),
            c if c.is_ascii_alphanumeric() || c == '_' => Some(c.to_ascii_uppercase()),
            _ => None,
        })
        .collect::<String>()
        .trim_start_matches('_')
        .to_owned()
}

/// Installs the global subscriber. `level` is a level or an `EnvFilter` directive.
pub fn init(level: &str, target: Target, format: Format) {
    let (filter, bad) = match EnvFilter::try_new(level) {
        Ok(f) => (f, false),
        Err(_) => (EnvFilter::new("info"), true),
    };
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    let want_journal = match target {
        Target::Journald => true,
        Target::Auto => under_journal,
        Target::Stderr => false,
    };
    let mut journal_error = None;
    if want_journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("reconfd".into());
                let _ = registry.with(layer).try_init();
                if bad {
                    tracing::warn!("invalid log level {level:?}; using info");
                }
                return;
            }
            Err(e) => journal_error = Some(e),
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match (format, under_journal) {
        (Format::Json, _) => registry.with(fmt.json()).try_init(),
        (Format::Text, true) => registry
            .with(fmt.with_ansi(false).without_time())
            .try_init(),
        (Format::Text, false) => registry.with(fmt.with_ansi(ansi)).try_init(),
    };
    if bad {
        tracing::warn!("invalid log level {level:?}; using info");
    }
    if let Some(e) = journal_error {
        tracing::warn!("journald is not reachable ({e}); logging to stderr");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_names() {
        assert_eq!(journald_field_name("reconfd.resource"), "RECONFD_RESOURCE");
        assert_eq!(journald_field_name("reconfd.revision"), "RECONFD_REVISION");
        assert_eq!(journald_field_name("message_id"), "MESSAGE_ID");
    }

    #[test]
    fn message_ids_are_128_bit_hex_and_distinct() {
        let ids = [
            INSTALLED,
            CHECK_FAILED,
            RELOAD_FAILED,
            ETCD_UNREACHABLE,
            ETCD_RECOVERED,
            RENDER_FAILED,
        ];
        for id in ids {
            assert_eq!(id.len(), 32);
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        }
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
    }
}
