//! confd's template function set, once, for both front ends: the Tera adapter
//! (`tera_funcs`, keyword arguments) and the Go-template adapter (`go_funcs`, positional
//! arguments) call these and only convert values and errors. The store functions live on
//! [`KvView`]; the view a render reads is installed per thread by [`ViewScope`].
//!
//! Errors are plain strings worded like Go's (`strconv.Atoi: parsing "x": invalid syntax`),
//! so both engines report the same problem the same way.

use std::cell::RefCell;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use base64::Engine as _;

use crate::store::KvView;

pub(crate) use super::dns::Srv;

thread_local! {
    /// The view the render running on this thread reads; set by [`ViewScope`].
    static CURRENT_VIEW: RefCell<Option<Arc<KvView>>> = const { RefCell::new(None) };
}

/// Makes `view` the one the store functions read on this thread until dropped.
///
/// Both engines render synchronously on the calling thread, so a thread-local slot gives every
/// render exactly its own view, lets renders of one template run on several threads at
/// once, and needs no lock. Dropping restores whatever was set before (also on panic).
pub(crate) struct ViewScope {
    previous: Option<Arc<KvView>>,
}

impl ViewScope {
    /// Installs `view` for the current thread.
    pub(crate) fn enter(view: Arc<KvView>) -> Self {
        let previous = CURRENT_VIEW.with(|slot| slot.replace(Some(view)));
        Self { previous }
    }
}

impl Drop for ViewScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT_VIEW.with(|slot| *slot.borrow_mut() = previous);
    }
}

/// The view of the render in progress on this thread.
pub(crate) fn current_view() -> Result<Arc<KvView>, String> {
    CURRENT_VIEW
        .with(|slot| slot.borrow().clone())
        .ok_or_else(|| {
            "store functions can only be called while rendering against etcd data".to_owned()
        })
}

/// confd's missing-key error (`key does not exist: /k`) plus the etcd key that was looked up.
pub(crate) fn missing_key(view: &KvView, key: &str) -> String {
    format!(
        "key does not exist: {key} (etcd key {:?})",
        view.full_key(key)
    )
}

/// Go's `strings.Split`: an empty separator splits into single characters.
pub(crate) fn split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(str::to_owned).collect()
    }
}

/// Go's `strings.Replace`: the first `n` matches, all when `n < 0`, none when `n == 0`.
pub(crate) fn replace(s: &str, old: &str, new: &str, n: i64) -> String {
    match usize::try_from(n) {
        Ok(count) => s.replacen(old, new, count),
        Err(_) => s.replace(old, new),
    }
}

/// Go's `strings.ToUpper`: rune by rune with Unicode's simple mapping, so `ß` stays `ß`
/// (Rust's `to_uppercase` would write `SS`).
pub(crate) fn to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToLower`: rune by rune, so a final `Σ` is `σ` (not `ς`) and `İ` is `i`.
pub(crate) fn to_lower(s: &str) -> String {
    // char::to_lowercase has no final-sigma rule; its only multi-char result is İ → i̇, whose
    // simple mapping is the first char.
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Go's `strings.TrimSuffix`.
pub(crate) fn trim_suffix<'a>(s: &'a str, suffix: &str) -> &'a str {
    s.strip_suffix(suffix).unwrap_or(s)
}

/// confd's `json`: the text must hold a JSON object.
pub(crate) fn json_object(s: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(j @ serde_json::Value::Object(_)) => Ok(j),
        Ok(_) => Err("the JSON is not an object (use jsonArray for a list)".to_owned()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// confd's `jsonArray`: the text must hold a JSON array.
pub(crate) fn json_array(s: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(j @ serde_json::Value::Array(_)) => Ok(j),
        Ok(_) => Err("the JSON is not an array (use json for an object)".to_owned()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// confd's `getenv`: an unset or empty variable gives the default.
pub(crate) fn getenv(name: &str, default: &str) -> String {
    // The etcd password must never reach a rendered file or a --noop diff.
    if name == "RECONFD_ETCD_PASSWORD" {
        return default.to_owned();
    }
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => v.to_string_lossy().into_owned(),
        _ => default.to_owned(),
    }
}

/// The most items `seq` will produce, so a typo cannot exhaust memory.
const MAX_SEQ: i64 = 100_000;

/// confd's `seq`: the inclusive range; empty when `end < start`.
pub(crate) fn seq(start: i64, end: i64) -> Result<Vec<i64>, String> {
    if end < start {
        return Ok(Vec::new());
    }
    if (end as i128) - (start as i128) >= MAX_SEQ as i128 {
        return Err(format!("would produce more than {MAX_SEQ} numbers"));
    }
    Ok((start..=end).collect())
}

/// Go's `strconv.Atoi`: optional sign and decimal digits, nothing else.
pub(crate) fn atoi(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))
}

/// Go's `strconv.ParseBool` spellings.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {s:?}: invalid syntax \
             (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)"
        )),
    }
}

/// One of confd's integer helpers.
pub(crate) type IntOp = fn(i64, i64) -> Result<i64, String>;

/// confd's integer helpers, by name: `add`, `sub`, `mul`, `div`, `mod`.
pub(crate) const ARITH: [(&str, IntOp); 5] = [
    ("add", |a, b| Ok(a.wrapping_add(b))),
    ("sub", |a, b| Ok(a.wrapping_sub(b))),
    ("mul", |a, b| Ok(a.wrapping_mul(b))),
    ("div", |a, b| nonzero(b).map(|b| a.wrapping_div(b))),
    ("mod", |a, b| nonzero(b).map(|b| a.wrapping_rem(b))),
];

fn nonzero(b: i64) -> Result<i64, String> {
    if b == 0 {
        // Go panics here; text/template reports the recovered panic this way.
        Err("runtime error: integer divide by zero".to_owned())
    } else {
        Ok(b)
    }
}

/// Go's `base64.StdEncoding` for encoding (padded); decoding is [`decode_std_base64`].
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// confd's `base64Encode`.
pub(crate) fn b64_encode(s: &str) -> String {
    B64.encode(s)
}

/// confd's `base64Decode`: Go's `base64.StdEncoding.DecodeString`, whose leniency (CR and
/// LF skipped anywhere, non-zero trailing bits accepted) and error offsets (Go's
/// `CorruptInputError`) [`decode_std_base64`] reproduces.
pub(crate) fn b64_decode(s: &str) -> Result<String, String> {
    let bytes = decode_std_base64(s.as_bytes())
        .map_err(|at| format!("illegal base64 data at input byte {at}"))?;
    String::from_utf8(bytes).map_err(|_| "the decoded data is not UTF-8 text".to_owned())
}

/// The 6-bit value of a standard-alphabet base64 character.
fn b64_digit(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Padded standard base64, decoded group by group of four digits as Go 1.19 does; the error
/// is the input offset Go reports: an unknown byte's own, a short last group's start, a
/// misplaced `=`'s, or the first byte after the padding.
fn decode_std_base64(src: &[u8]) -> Result<Vec<u8>, usize> {
    let skip_newlines = |mut i: usize| {
        while i < src.len() && matches!(src[i], b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut i = 0;
    loop {
        let mut group = [0u32; 4];
        let mut have = 0;
        let mut padded = false;
        while have < 4 {
            if i == src.len() {
                if have == 0 {
                    return Ok(out);
                }
                // A padded encoding needs whole groups.
                return Err(i - have);
            }
            let c = src[i];
            i += 1;
            if let Some(d) = b64_digit(c) {
                group[have] = d;
                have += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' || have < 2 {
                return Err(i - 1);
            }
            if have == 2 {
                // "xx" takes "==": the second one may come after line breaks.
                i = skip_newlines(i);
                if i == src.len() {
                    return Err(src.len());
                }
                if src[i] != b'=' {
                    return Err(i - 1);
                }
                i += 1;
            }
            i = skip_newlines(i);
            if i < src.len() {
                return Err(i);
            }
            padded = true;
            break;
        }
        let bits = group[0] << 18 | group[1] << 12 | group[2] << 6 | group[3];
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..have - 1]);
        if padded {
            return Ok(out);
        }
    }
}

/// `sortByLength` / `sortKVByLength`: by byte length (Go's `len`), shortest first; equal
/// lengths keep their order.
pub(crate) fn sort_by_length<T>(mut items: Vec<T>, len: impl Fn(&T) -> usize) -> Vec<T> {
    items.sort_by_key(len);
    items
}

/// The host's addresses as sorted, unique strings; empty when the lookup fails (as confd).
pub(crate) fn lookup_ip(name: &str, keep: impl Fn(&IpAddr) -> bool) -> Vec<String> {
    let addrs = match (name, 0u16).to_socket_addrs() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(name, error = %e, "lookupIP failed; using no addresses");
            return Vec::new();
        }
    };
    let mut out: Vec<String> = addrs
        .map(|sa| canonical_ip(sa.ip()))
        .filter(|ip| keep(ip))
        .map(|ip| ip.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// IPv4-mapped IPv6 addresses print as IPv4, as Go's `net.IP.String` does.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// SRV records in confd's order; empty when the lookup fails (as confd).
pub(crate) fn lookup_srv(service: &str, proto: &str, name: &str) -> Vec<Srv> {
    super::dns::lookup_srv(service, proto, name).unwrap_or_else(|e| {
        tracing::warn!(service, proto, name, error = %e, "lookupSRV failed; using no records");
        Vec::new()
    })
}

/// confd's `fileExists`: false only when the path does not exist (a permission error is true).
pub(crate) fn file_exists(path: &str) -> bool {
    !matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::decode_std_base64;

    /// Results and offsets as Go 1.19's `base64.StdEncoding.DecodeString` gives them.
    #[test]
    fn base64_decodes_and_fails_as_go() {
        let ok: &[(&str, &str)] = &[
            ("YQ==", "a"),
            ("YR==", "a"),
            ("YWJj", "abc"),
            ("YW\nJj", "abc"),
            ("YQ==\n", "a"),
            ("YWJ=", "ab"),
            ("a\r\nGk=", "hi"),
            ("YQ\n=\n=", "a"),
            ("", ""),
        ];
        for (src, want) in ok {
            assert_eq!(
                decode_std_base64(src.as_bytes()).unwrap(),
                want.as_bytes(),
                "{src:?}"
            );
        }
        let bad: &[(&str, usize)] = &[
            ("YQ", 0),
            ("YQ=", 3),
            ("YQ=x", 2),
            ("YQ==x", 4),
            ("Y", 0),
            ("=", 0),
            ("!!!!", 0),
            ("YWJjYQ", 4),
        ];
        for (src, at) in bad {
            assert_eq!(decode_std_base64(src.as_bytes()), Err(*at), "{src:?}");
        }
    }
}
