//! The `log_level` value (`reconfd.toml`, `--log-level`, `RECONFD_LOG_LEVEL`), validated so
//! that no value can silence the daemon. [`crate::logging`] turns it into the subscriber.

use std::fmt;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// The bare levels a `log_level` may name; `warning` is read as `warn`.
const LEVELS: [&str; 6] = ["error", "warn", "warning", "info", "debug", "trace"];

/// A validated log filter: a level (`error`, `warn`/`warning`, `info`, `debug`, `trace`) or
/// an `EnvFilter` directive list such as `warn,reconfd::etcd=debug`. Held in the form
/// `EnvFilter` reads (lower-case levels, `warning` spelled `warn`).
///
/// Refused: an empty value; a bare word that is not a level (`EnvFilter` would take it as a
/// target and turn everything else off); a directive list without a level for everything
/// else (`reconfd::etcd=debug` alone hides every other error); `off` as that level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel("info".into())
    }
}

impl LogLevel {
    /// The directive in the form `EnvFilter` reads.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<LogLevel> for String {
    fn from(l: LogLevel) -> String {
        l.0
    }
}

/// `Some(level)` in `EnvFilter`'s spelling when `word` names a level.
fn level_word(word: &str) -> Option<&'static str> {
    let w = word.trim().to_ascii_lowercase();
    match w.as_str() {
        "warning" => Some("warn"),
        _ => LEVELS.iter().find(|l| **l == w).copied(),
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const HINT: &str = "use error, warn, info, debug or trace, or a directive list such as \"warn,reconfd::etcd=debug\"";
        if s.trim().is_empty() {
            return Err(format!("empty log level; {HINT}"));
        }
        let mut parts = Vec::new();
        let mut global = false;
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!("invalid log level {s:?}: empty directive; {HINT}"));
            }
            if let Some(level) = level_word(part) {
                global = true;
                parts.push(level.to_owned());
            } else if part.eq_ignore_ascii_case("off") {
                return Err(format!(
                    "invalid log level {s:?}: \"off\" would hide errors too; the quietest level is \"error\""
                ));
            } else if let Some((target, level)) = part.rsplit_once('=') {
                let level = level_word(level)
                    .or_else(|| level.trim().eq_ignore_ascii_case("off").then_some("off"))
                    .ok_or_else(|| {
                        format!(
                            "invalid log level {s:?}: {level:?} in {part:?} is not a level; {HINT}"
                        )
                    })?;
                if target.trim().is_empty() {
                    return Err(format!(
                        "invalid log level {s:?}: {part:?} names no target; {HINT}"
                    ));
                }
                parts.push(format!("{}={level}", target.trim()));
            } else {
                return Err(format!(
                    "invalid log level {s:?}: {part:?} is not a level; {HINT}"
                ));
            }
        }
        if !global {
            return Err(format!(
                "invalid log level {s:?}: no level for everything else, so other errors would be hidden; add one, e.g. \"info,{s}\""
            ));
        }
        let directive = parts.join(",");
        EnvFilter::try_new(&directive)
            .map_err(|e| format!("invalid log level {s:?}: {e}; {HINT}"))?;
        Ok(LogLevel(directive))
    }
}

impl<'de> serde::Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
