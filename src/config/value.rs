//! Typed values parsed from config strings at load time: durations, file modes, rate limits,
//! owners. Each implements `Deserialize` through `FromStr`, so a bad value in a TOML file is
//! reported by the TOML parser with the line it sits on.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as `"0"`, `"0s"`, `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| {
            format!("invalid duration {s:?} ({e}); write e.g. \"0\", \"250ms\", \"5s\", \"2m\"")
        })
    }
}

/// A file mode written as a string the way confd reads it: `"0644"` (octal, leading 0),
/// `"0o644"`, `"0x1a4"` (hex) or `"420"` (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u32::from_str_radix(h, 16)
        } else if let Some(o) = t.strip_prefix("0o") {
            u32::from_str_radix(o, 8)
        } else if t.len() > 1 && t.starts_with('0') {
            u32::from_str_radix(&t[1..], 8)
        } else {
            t.parse::<u32>()
        };
        match parsed {
            Ok(m) if m <= 0o7777 => Ok(Mode(m)),
            Ok(m) => Err(format!("invalid mode {s:?}: {m:#o} has bits beyond 07777")),
            Err(_) => Err(format!(
                "invalid mode {s:?}; write it in octal like \"0644\""
            )),
        }
    }
}

/// At most `count` reloads in any `per` window, written `"10/min"`, `"3/10s"`, `"1/s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Reloads allowed per window.
    pub count: NonZeroU32,
    /// The window.
    pub per: Duration,
}

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid reload_limit {s:?}; write COUNT/PERIOD like \"10/min\" or \"3/10s\"")
        };
        let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = n.trim().parse().map_err(|_| bad())?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if per.is_zero() {
            return Err(bad());
        }
        Ok(RateLimit { count, per })
    }
}

/// `reload_limit` as written: a [`RateLimit`], or `"none"` (also `"unlimited"`, `"0"`) to
/// switch the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadLimit {
    /// No limit on reloads.
    Unlimited,
    /// At most this many reloads per window.
    Limit(RateLimit),
}

impl FromStr for ReloadLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "none" | "unlimited" | "0" => Ok(ReloadLimit::Unlimited),
            _ => s.parse().map(ReloadLimit::Limit),
        }
    }
}

impl ReloadLimit {
    /// The limit, `None` when unlimited.
    pub fn limit(self) -> Option<RateLimit> {
        match self {
            ReloadLimit::Unlimited => None,
            ReloadLimit::Limit(l) => Some(l),
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// A user or group given as a name (`"www-data"`) or a number (`"33"` or `33`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    /// Looked up in the user or group database.
    Name(String),
    /// Used as is.
    Id(u32),
}

impl FromStr for NameOrId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty user or group name".into());
        }
        Ok(match t.parse::<u32>() {
            Ok(id) => NameOrId::Id(id),
            Err(_) => NameOrId::Name(t.to_owned()),
        })
    }
}

impl<'de> Deserialize<'de> for NameOrId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NameOrId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a user/group name or a numeric id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NameOrId, E> {
                u32::try_from(v)
                    .map(NameOrId::Id)
                    .map_err(|_| E::custom(format!("id {v} out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NameOrId, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(Dur, Mode, RateLimit, ReloadLimit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ms) in [
            ("0", 0),
            ("0s", 0),
            ("250ms", 250),
            ("5s", 5000),
            ("2m", 120_000),
        ] {
            assert_eq!(
                s.parse::<Dur>().unwrap().0,
                Duration::from_millis(ms),
                "{s}"
            );
        }
        assert!("5x".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
    }

    #[test]
    fn modes() {
        assert_eq!("0644".parse::<Mode>().unwrap().0, 0o644);
        assert_eq!("0o600".parse::<Mode>().unwrap().0, 0o600);
        assert_eq!("420".parse::<Mode>().unwrap().0, 0o644);
        assert_eq!("0x1a4".parse::<Mode>().unwrap().0, 0o644);
        assert!("0999".parse::<Mode>().is_err());
        assert!("rw-r--r--".parse::<Mode>().is_err());
        assert!("077777".parse::<Mode>().is_err());
    }

    #[test]
    fn rate_limits() {
        let r: RateLimit = "10/min".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (10, Duration::from_secs(60)));
        let r: RateLimit = "3/10s".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (3, Duration::from_secs(10)));
        assert!("0/min".parse::<RateLimit>().is_err());
        assert!("10".parse::<RateLimit>().is_err());
        assert!("10/0s".parse::<RateLimit>().is_err());
        assert_eq!(
            "none".parse::<ReloadLimit>().unwrap(),
            ReloadLimit::Unlimited
        );
        assert_eq!("0".parse::<ReloadLimit>().unwrap().limit(), None);
        assert!("10/min".parse::<ReloadLimit>().unwrap().limit().is_some());
    }

    #[test]
    fn owners() {
        assert_eq!("33".parse::<NameOrId>().unwrap(), NameOrId::Id(33));
        assert_eq!(
            "www-data".parse::<NameOrId>().unwrap(),
            NameOrId::Name("www-data".into())
        );
    }
}
