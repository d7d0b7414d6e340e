//! Logging setup: journald when the process runs under it, stderr otherwise.
//!
//! Journald entries carry structured fields that `journalctl` filters on: spans name their
//! fields `reconfd.resource`, `reconfd.dest`, `reconfd.revision`, which journald receives as
//! `RECONFD_RESOURCE`, `RECONFD_DEST`, `RECONFD_REVISION`; key events carry a stable
//! `MESSAGE_ID` (the constants below, documented in docs/systemd.md). Under systemd
//! (`JOURNAL_STREAM` set) stderr lines carry no timestamp, since journald adds one. The
//! `message_id` field is for journald and JSON consumers; the human text format leaves it out.
//!
//! [`LogLevel`] is the validated `log_level` / `--log-level` value: a level or an `EnvFilter`
//! directive that still lets errors through. A value `EnvFilter` would read as a target name
//! (`"warning"`, `"loud"`) and so silence every line is refused where it is read.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
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
/// etcd is not the cluster the local copy came from (restored from an older snapshot, or
/// re-created): everything is read again.
pub const ETCD_RESTORED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e5e";
/// The guard holds a render that lost keys (`MESSAGE_ID`).
pub const GUARD_HELD: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e60";
/// A held render was installed: the keys came back or an operator approved (`MESSAGE_ID`).
pub const GUARD_RELEASED: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e61";
/// A failed reload put the previous file back (`MESSAGE_ID`).
pub const ROLLED_BACK: &str = "5d0f0e3f6b7a4a1c9f7a2b8e1c3d4e62";

/// Where log lines go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// journald when `JOURNAL_STREAM` says stderr is the journal, else stderr.
    #[default]
    Auto,
    /// The journal's native protocol, with structured fields.
    Journald,
    /// Standard error.
    Stderr,
}

/// How stderr lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One human-readable line per event.
    #[default]
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

pub use crate::config::log_level::LogLevel;

/// The human text format's fields: like tracing-subscriber's default (`message`, then
/// `name=value` pairs separated by spaces) without `message_id`, which is for journald and
/// JSON consumers.
struct HumanFields;

impl<'w> FormatFields<'w> for HumanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = HumanVisitor {
            writer: &mut writer,
            seen: false,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct HumanVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    seen: bool,
    result: fmt::Result,
}

impl Visit for HumanVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || name == "message_id" || name.starts_with("log.") {
            return;
        }
        let sep = if self.seen { " " } else { "" };
        self.seen = true;
        self.result = if name == "message" {
            write!(self.writer, "{sep}{value:?}")
        } else {
            write!(
                self.writer,
                "{sep}{}={value:?}",
                name.trim_start_matches("r#")
            )
        };
    }
}

/// Installs the global subscriber. `level` is a level or an `EnvFilter` directive; a value
/// [`LogLevel`] refuses (possible only from callers that did not validate it) means `info`,
/// with a warning.
pub fn init(level: &str, target: Target, format: Format) {
    let (filter, bad) = match level.parse::<LogLevel>() {
        Ok(l) => (EnvFilter::new(l.as_str()), false),
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
            .with(fmt.fmt_fields(HumanFields).with_ansi(false).without_time())
            .try_init(),
        (Format::Text, false) => registry
            .with(fmt.fmt_fields(HumanFields).with_ansi(ansi))
            .try_init(),
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
    fn log_levels_and_directives() {
        for (given, held) in [
            ("info", "info"),
            ("warning", "warn"),
            ("WARN", "warn"),
            ("error", "error"),
            ("trace", "trace"),
            ("warn,reconfd::etcd=debug", "warn,reconfd::etcd=debug"),
            ("warning, reconfd=warning", "warn,reconfd=warn"),
            ("info,tonic=off", "info,tonic=off"),
        ] {
            assert_eq!(given.parse::<LogLevel>().unwrap().as_str(), held, "{given}");
        }
        for bad in [
            "",
            " ",
            "loud",
            "off",
            "reconfd::etcd=debug",
            "info,loud",
            "info,reconfd=loud",
            "info,,debug",
            "info,=debug",
        ] {
            let e = bad.parse::<LogLevel>().unwrap_err();
            assert!(e.contains("log level"), "{bad}: {e}");
        }
    }

    /// The text format keeps every field but `message_id`, which only journald and JSON get.
    #[test]
    fn text_format_drops_message_id() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(HumanFields)
            .with_writer(move || buf.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("resource", reconfd.resource = "nginx");
            let _g = span.enter();
            tracing::info!(message_id = INSTALLED, dest = "/etc/x", "installed");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("message_id"), "{text}");
        assert!(!text.contains(INSTALLED), "{text}");
        assert!(text.contains("installed dest=\"/etc/x\""), "{text}");
        assert!(text.contains("reconfd.resource=\"nginx\""), "{text}");
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
            ETCD_RESTORED,
        ];
        for id in ids {
            assert_eq!(id.len(), 32);
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        }
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
    }
}
