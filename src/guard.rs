//! The guard against destructive renders: `min_keys` and `max_shrink`, and the one pure
//! decision whether a render of a view holding `keys` keys may be installed.
//!
//! It owns the rule, not the bookkeeping: the actor keeps the count of the last install (and
//! hands it over across a SIGHUP), `once` has none. Counting is by the resource's watched
//! keys in the snapshot (the entries of its view), not by what the template uses: a guard
//! must not depend on the template's logic to notice a wiped prefix.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A fraction written as a percentage, `"50%"` (also `"12.5%"`); kept in basis points so
/// comparisons are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent {
    /// Hundredths of a percent, 0 ..= 10 000.
    basis_points: u32,
}

impl Percent {
    /// `n` percent (at most 100).
    pub const fn whole(n: u32) -> Self {
        Percent {
            basis_points: n * 100,
        }
    }
}

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid percentage {s:?}; write e.g. \"50%\" (0% to 100%)");
        let t = s.trim();
        let num = t.strip_suffix('%').ok_or_else(bad)?.trim();
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty()
            || frac.len() > 2
            || !(int.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: u32 = int.parse().map_err(|_| bad())?;
        let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let basis_points = int.checked_mul(100).and_then(|i| i.checked_add(frac));
        match basis_points {
            Some(bp) if bp <= 10_000 => Ok(Percent { basis_points: bp }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.basis_points / 100, self.basis_points % 100);
        if frac == 0 {
            write!(f, "{int}%")
        } else {
            write!(f, "{int}.{frac:02}%")
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// `max_shrink` as written: a percentage, or `"none"` to switch the shrink guard off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxShrink {
    /// No shrink guard.
    Off,
    /// Hold a render whose keys dropped by more than this fraction of the last install's.
    Limit(Percent),
}

impl FromStr for MaxShrink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "none" | "off" => Ok(MaxShrink::Off),
            _ => s.parse().map(MaxShrink::Limit),
        }
    }
}

impl<'de> Deserialize<'de> for MaxShrink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// One resource's guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// Hold while the watched keys hold fewer keys than this (0: off).
    pub min_keys: usize,
    /// Hold a render whose keys dropped by more than this fraction since the last install.
    pub max_shrink: MaxShrink,
}

/// The default guard: `min_keys = 0`, `max_shrink = "99%"`.
///
/// Why: the one render that is almost never meant is the one that loses (nearly) every key
/// of a resource that had some: a deleted prefix or a revoked lease, the load balancer's
/// fleet-wide outage. 99% holds exactly that for any resource with fewer than 100 keys (a
/// drop to zero) and a drop to under 1% for larger ones, and nothing else: a resource that
/// never had keys, a first render and every ordinary shrink install as before. Stricter
/// limits (`min_keys`, `max_shrink = "50%"`) are the operator's choice per resource, as the
/// example nginx resource shows.
pub const DEFAULT: Guard = Guard {
    min_keys: 0,
    max_shrink: MaxShrink::Limit(Percent {
        basis_points: 9_900,
    }),
};

impl Default for Guard {
    fn default() -> Self {
        DEFAULT
    }
}

/// Why a render is held: the counts the warning and `Status::Held` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Fewer keys than `min_keys`.
    TooFew {
        /// Keys now.
        keys: usize,
        /// The guard's minimum.
        min_keys: usize,
        /// Keys at the last install, if any.
        last: Option<usize>,
    },
    /// The keys shrank by more than `max_shrink` since the last install.
    Shrank {
        /// Keys now.
        keys: usize,
        /// Keys at the last install.
        last: usize,
        /// The guard's limit.
        limit: Percent,
    },
}

impl Hold {
    /// Keys in the held render.
    pub fn keys(&self) -> usize {
        match *self {
            Hold::TooFew { keys, .. } | Hold::Shrank { keys, .. } => keys,
        }
    }

    /// Keys at the last install, when there was one.
    pub fn last(&self) -> Option<usize> {
        match *self {
            Hold::TooFew { last, .. } => last,
            Hold::Shrank { last, .. } => Some(last),
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Hold::TooFew { keys, min_keys, .. } => write!(
                f,
                "its watched keys hold {keys} key{}, fewer than min_keys = {min_keys}",
                plural(keys)
            ),
            Hold::Shrank { keys, last, limit } => write!(
                f,
                "its watched keys dropped from {last} at the last install to {keys}, more than max_shrink = \"{limit}\""
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Guard {
    /// Whether a render of a view with `keys` keys must be held, given the key count at the
    /// last install (`None`: no install since this daemon started, e.g. a first render or a
    /// fresh start with an existing file; then only `min_keys` applies).
    pub fn check(&self, keys: usize, last: Option<usize>) -> Result<(), Hold> {
        if keys < self.min_keys {
            return Err(Hold::TooFew {
                keys,
                min_keys: self.min_keys,
                last,
            });
        }
        if let (MaxShrink::Limit(limit), Some(last)) = (self.max_shrink, last) {
            // dropped / last > limit, in integers: (last - keys) * 10 000 > bp * last.
            let dropped = last.saturating_sub(keys) as u128;
            if last > 0 && dropped * 10_000 > u128::from(limit.basis_points) * last as u128 {
                return Err(Hold::Shrank { keys, last, limit });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(min_keys: usize, max_shrink: &str) -> Guard {
        Guard {
            min_keys,
            max_shrink: max_shrink.parse().unwrap(),
        }
    }

    #[test]
    fn percentages_parse_exactly_and_refuse_nonsense() {
        assert_eq!("50%".parse(), Ok(Percent::whole(50)));
        assert_eq!(" 12.5 %".parse::<Percent>().unwrap().to_string(), "12.50%");
        assert_eq!("100%".parse(), Ok(Percent::whole(100)));
        for bad in ["50", "101%", "-1%", "%", "1.234%", "x%", "0.5.5%"] {
            let e = bad.parse::<Percent>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!("none".parse(), Ok(MaxShrink::Off));
    }

    #[test]
    fn min_keys_holds_below_the_minimum_with_or_without_a_last_install() {
        let g = guard(2, "none");
        let too_few = |keys, last| Hold::TooFew {
            keys,
            min_keys: 2,
            last,
        };
        assert_eq!(g.check(1, None), Err(too_few(1, None)));
        assert_eq!(g.check(0, Some(5)), Err(too_few(0, Some(5))));
        assert_eq!(g.check(2, None), Ok(()));
    }

    #[test]
    fn max_shrink_compares_with_the_last_install_only() {
        let g = guard(0, "50%");
        assert_eq!(g.check(5, Some(10)), Ok(()), "exactly 50% is not more");
        assert_eq!(
            g.check(4, Some(10)),
            Err(Hold::Shrank {
                keys: 4,
                last: 10,
                limit: Percent::whole(50)
            })
        );
        assert_eq!(g.check(0, None), Ok(()), "no last install: not guarded");
        assert_eq!(g.check(0, Some(0)), Ok(()));
        assert_eq!(g.check(20, Some(10)), Ok(()), "growth is never held");
    }

    #[test]
    fn the_default_holds_only_a_wipe() {
        let g = Guard::default();
        assert!(g.check(0, Some(1)).is_err());
        assert!(g.check(0, Some(50)).is_err());
        assert_eq!(g.check(1, Some(99)), Ok(()));
        assert!(g.check(1, Some(200)).is_err());
        assert_eq!(g.check(0, None), Ok(()), "a first render is not held");
        assert_eq!(g.check(0, Some(0)), Ok(()));
    }

    #[test]
    fn the_hold_names_the_counts() {
        let h = guard(0, "50%").check(1, Some(4)).unwrap_err();
        assert_eq!(
            h.to_string(),
            "its watched keys dropped from 4 at the last install to 1, more than max_shrink = \"50%\""
        );
        let h = guard(3, "none").check(1, None).unwrap_err();
        assert_eq!(
            h.to_string(),
            "its watched keys hold 1 key, fewer than min_keys = 3"
        );
    }
}
