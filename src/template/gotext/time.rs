//! The `time.Time` that confd's `datetime` returns, with the methods a template can call on
//! it (`.Format`, `.Unix`, `.Year`, ...), Go's layout-based formatting and Go's `String()`.
//!
//! Zone abbreviations come from the offset (`UTC`, else `+0100` style): Go reads them from
//! the tz database, which reconfd does not.

use std::sync::OnceLock;
use std::time::Instant;

/// A point in time with a fixed offset.
#[derive(Debug, Clone)]
pub(crate) struct GoTime {
    /// Seconds since 1970-01-01 UTC.
    pub secs: i64,
    pub nanos: u32,
    /// Seconds east of UTC.
    pub offset: i32,
    /// Whether this is the local zone (Go's `time.Local`) rather than UTC.
    pub local: bool,
    /// Monotonic clock reading in seconds since the process started (Go prints it as `m=`).
    pub mono: Option<f64>,
}

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `time.Month(n).String()`.
pub(crate) fn month_name(n: i64) -> String {
    match usize::try_from(n - 1).ok().and_then(|i| MONTHS.get(i)) {
        Some(m) => (*m).to_owned(),
        None => format!("%!Month({n})"),
    }
}

/// `time.Weekday(n).String()`.
pub(crate) fn weekday_name(n: i64) -> String {
    match usize::try_from(n).ok().and_then(|i| DAYS.get(i)) {
        Some(d) => (*d).to_owned(),
        None => format!("%!Weekday({n})"),
    }
}

/// `time.Duration(n).String()`.
pub(crate) fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut s = String::new();
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        s.push_str(&frac(u, div));
        s.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let nanos = u % 1_000_000_000;
        let h = secs / 3600;
        let m = (secs / 60) % 60;
        let sec = secs % 60;
        if h > 0 {
            s.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            s.push_str(&format!("{m}m"));
        }
        s.push_str(&frac(sec * 1_000_000_000 + nanos, 1_000_000_000));
        s.push('s');
    }
    if neg {
        s.insert(0, '-');
    }
    s
}

/// `v / div` with the fraction, trailing zeros dropped (`div` a power of ten).
fn frac(v: u64, div: u64) -> String {
    let int = v / div;
    let rest = v % div;
    if rest == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let mut f = format!("{rest:0width$}");
    while f.ends_with('0') {
        f.pop();
    }
    format!("{int}.{f}")
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl GoTime {
    /// `time.Now()` in the local zone.
    pub(crate) fn now() -> Self {
        let start = process_start();
        let now = chrono::Local::now();
        GoTime {
            secs: now.timestamp(),
            nanos: now.timestamp_subsec_nanos(),
            offset: now.offset().local_minus_utc(),
            local: true,
            mono: Some(start.elapsed().as_secs_f64()),
        }
    }

    fn local_secs(&self) -> i64 {
        self.secs + i64::from(self.offset)
    }

    fn days(&self) -> i64 {
        self.local_secs().div_euclid(86_400)
    }

    fn clock(&self) -> (i64, i64, i64) {
        let s = self.local_secs().rem_euclid(86_400);
        (s / 3600, (s / 60) % 60, s % 60)
    }

    pub(crate) fn date(&self) -> (i64, u32, u32) {
        civil(self.days())
    }

    pub(crate) fn year(&self) -> i64 {
        self.date().0
    }

    pub(crate) fn month(&self) -> i64 {
        i64::from(self.date().1)
    }

    pub(crate) fn day(&self) -> i64 {
        i64::from(self.date().2)
    }

    pub(crate) fn hour(&self) -> i64 {
        self.clock().0
    }

    pub(crate) fn minute(&self) -> i64 {
        self.clock().1
    }

    pub(crate) fn second(&self) -> i64 {
        self.clock().2
    }

    pub(crate) fn weekday(&self) -> i64 {
        (self.days() + 4).rem_euclid(7)
    }

    pub(crate) fn year_day(&self) -> i64 {
        let (y, _, _) = self.date();
        self.days() - days_from_civil(y, 1, 1) + 1
    }

    pub(crate) fn unix_nano(&self) -> i64 {
        self.secs
            .wrapping_mul(1_000_000_000)
            .wrapping_add(i64::from(self.nanos))
    }

    pub(crate) fn utc(&self) -> Self {
        GoTime {
            offset: 0,
            local: false,
            mono: None,
            ..self.clone()
        }
    }

    pub(crate) fn in_local(&self) -> Self {
        let offset = chrono::Local::now().offset().local_minus_utc();
        GoTime {
            offset,
            local: true,
            mono: None,
            ..self.clone()
        }
    }

    /// Adds `d` nanoseconds.
    pub(crate) fn add(&self, d: i64) -> Self {
        let total = i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos) + i128::from(d);
        GoTime {
            secs: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as u32,
            mono: self.mono.map(|m| m + d as f64 / 1e9),
            ..self.clone()
        }
    }

    pub(crate) fn zone_name(&self) -> String {
        if self.offset == 0 {
            "UTC".into()
        } else {
            self.format("-0700")
        }
    }

    /// `Time.String()`.
    pub(crate) fn string(&self) -> String {
        let mut s = self.format("2006-01-02 15:04:05.999999999 -0700 MST");
        if let Some(m) = self.mono {
            s.push_str(&format!(
                " m={}{:.9}",
                if m >= 0.0 { "+" } else { "-" },
                m.abs()
            ));
        }
        s
    }

    /// `Time.GoString()` (what `%#v` prints).
    pub(crate) fn go_string(&self) -> String {
        let (y, m, d) = self.date();
        let (h, mi, s) = self.clock();
        format!(
            "time.Date({y}, time.{}, {d}, {h}, {mi}, {s}, {}, {})",
            month_name(i64::from(m)),
            self.nanos,
            if self.local { "time.Local" } else { "time.UTC" }
        )
    }

    /// `Time.Format(layout)`: one arm per layout element, as Go's `appendFormat` has them.
    pub(crate) fn format(&self, layout: &str) -> String {
        let (year, month, day) = self.date();
        let (hour, min, sec) = self.clock();
        let mut out = String::new();
        let b = layout.as_bytes();
        let mut i = 0;
        let starts = |i: usize, s: &str| layout[i..].starts_with(s);
        while i < b.len() {
            let c = b[i];
            let (token, len): (Option<String>, usize) = match c {
                b'J' if starts(i, "January") => (Some(month_name(i64::from(month))), 7),
                b'J' if starts(i, "Jan") => (Some(month_name(i64::from(month))[..3].to_owned()), 3),
                b'M' if starts(i, "Monday") => (Some(weekday_name(self.weekday())), 6),
                b'M' if starts(i, "Mon") => (Some(weekday_name(self.weekday())[..3].to_owned()), 3),
                b'M' if starts(i, "MST") => (Some(self.zone_name()), 3),
                b'0' if starts(i, "002") => (Some(format!("{:03}", self.year_day())), 3),
                b'0' if b.get(i + 1).is_some_and(|d| (b'1'..=b'6').contains(d)) => {
                    let v = match b[i + 1] {
                        b'1' => format!("{month:02}"),
                        b'2' => format!("{day:02}"),
                        b'3' => format!("{:02}", if hour % 12 == 0 { 12 } else { hour % 12 }),
                        b'4' => format!("{min:02}"),
                        b'5' => format!("{sec:02}"),
                        _ => format!("{:02}", year.rem_euclid(100)),
                    };
                    (Some(v), 2)
                }
                b'1' if starts(i, "15") => (Some(format!("{hour:02}")), 2),
                b'1' => (Some(month.to_string()), 1),
                b'2' if starts(i, "2006") => (Some(format!("{year:04}")), 4),
                b'2' => (Some(day.to_string()), 1),
                b'_' if starts(i, "_2") && !starts(i, "_2006") => (Some(format!("{day:>2}")), 2),
                b'_' if starts(i, "__2") => (Some(format!("{:>3}", self.year_day())), 3),
                b'3' => (
                    Some((if hour % 12 == 0 { 12 } else { hour % 12 }).to_string()),
                    1,
                ),
                b'4' => (Some(min.to_string()), 1),
                b'5' => (Some(sec.to_string()), 1),
                b'P' if starts(i, "PM") => (Some(if hour >= 12 { "PM" } else { "AM" }.into()), 2),
                b'p' if starts(i, "pm") => (Some(if hour >= 12 { "pm" } else { "am" }.into()), 2),
                b'-' | b'Z' => {
                    let z = c == b'Z';
                    let rest = &layout[i + 1..];
                    let forms = ["070000", "07:00:00", "0700", "07:00", "07"];
                    match forms.iter().find(|f| rest.starts_with(**f)) {
                        Some(f) => (Some(self.zone_offset(f, z)), 1 + f.len()),
                        None => (None, 1),
                    }
                }
                b'.' | b',' if b.get(i + 1).is_some_and(|d| *d == b'0' || *d == b'9') => {
                    let ch = b[i + 1];
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if b.get(j).is_some_and(u8::is_ascii_digit) {
                        (None, 1)
                    } else {
                        let n = j - i - 1;
                        let digits = format!("{:09}", self.nanos);
                        let mut f = digits[..n.min(9)].to_owned();
                        if ch == b'9' {
                            while f.ends_with('0') {
                                f.pop();
                            }
                            if f.is_empty() {
                                (Some(String::new()), j - i)
                            } else {
                                (Some(format!("{}{f}", c as char)), j - i)
                            }
                        } else {
                            (Some(format!("{}{f}", c as char)), j - i)
                        }
                    }
                }
                _ => (None, 1),
            };
            match token {
                Some(t) => out.push_str(&t),
                None => {
                    let ch = layout[i..].chars().next().unwrap_or(' ');
                    out.push(ch);
                    i += ch.len_utf8();
                    continue;
                }
            }
            i += len;
        }
        out
    }

    fn zone_offset(&self, form: &str, z: bool) -> String {
        if z && self.offset == 0 {
            return "Z".into();
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let off = self.offset.unsigned_abs();
        let (h, m, s) = (off / 3600, (off / 60) % 60, off % 60);
        match form {
            "070000" => format!("{sign}{h:02}{m:02}{s:02}"),
            "07:00:00" => format!("{sign}{h:02}:{m:02}:{s:02}"),
            "0700" => format!("{sign}{h:02}{m:02}"),
            "07:00" => format!("{sign}{h:02}:{m:02}"),
            _ => format!("{sign}{h:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = GoTime {
            secs: 1_136_239_445,
            nanos: 123_000_000,
            offset: -7 * 3600,
            local: true,
            mono: None,
        };
        assert_eq!(
            t.format("2006-01-02 15:04:05.000 Mon Jan _2 3:4:5 PM -07:00 Z0700 .999"),
            "2006-01-02 15:04:05.123 Mon Jan  2 3:4:5 PM -07:00 -0700 .123"
        );
        assert_eq!(t.year_day(), 2);
        assert_eq!(duration_string(90_000_000_000), "1m30s");
        assert_eq!(duration_string(1_500), "1.5µs");
        assert_eq!(duration_string(0), "0s");
    }
}
