//! Keys and values that are not text: how etcd's bytes become the store's strings, and the
//! one rule that decides whether a resource may render a view holding them.
//!
//! Decoding ([`decode`]) never fails: etcd's read and watch both use it, and a key or value
//! that is not valid UTF-8 is kept lossily (U+FFFD) and marked in the snapshot
//! ([`super::Snapshot::not_text`]). Whether that is acceptable is the resource's business,
//! decided once, before its render ([`super::KvView::check_text`]): by default a resource
//! whose watched keys hold such a key or value fails naming it (the live file stays), unless
//! it sets `lossy_utf8 = true`. A key with a control character (a newline, a tab, NUL…)
//! always fails its resource: a key is a name, and a newline in one would render as extra
//! lines of configuration wherever `ls`, `gets`, `base` or a loop prints it.

use std::fmt;

/// `bytes` as text, and whether they were valid UTF-8 (else decoded lossily).
pub fn decode(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), true),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), false),
    }
}

/// Whether `key` holds a control character (C0, DEL or C1).
pub fn has_control(key: &str) -> bool {
    key.chars().any(char::is_control)
}

/// Why a view cannot be rendered: a key or value that is not text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotText {
    /// A value (or the key itself) is not valid UTF-8 and the resource does not allow lossy
    /// rendering.
    #[error("etcd key {key}: the key or its value is not valid UTF-8 (set lossy_utf8 = true in the resource to render it with U+FFFD)")]
    InvalidUtf8 {
        /// The full key (lossily decoded).
        key: String,
    },
    /// A key holds a control character.
    #[error("etcd key {}: the key holds a control character; keys must be names", Escaped(.key))]
    ControlInKey {
        /// The full key.
        key: String,
    },
}

/// A key with its control characters escaped (`\n`, `\u{1}`), so an error stays one line.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_marks_invalid_utf8() {
        assert_eq!(decode(b"ok"), ("ok".to_owned(), true));
        assert_eq!(decode(b"a\xffb"), ("a\u{fffd}b".to_owned(), false));
        assert_eq!(decode("\u{fffd}".as_bytes()), ("\u{fffd}".to_owned(), true));
    }

    #[test]
    fn control_characters_are_escaped_in_the_error() {
        assert!(has_control("/a/b\nc") && has_control("/a\u{7f}") && !has_control("/a b/ü"));
        let e = NotText::ControlInKey {
            key: "/app/x\ny".into(),
        };
        assert_eq!(
            e.to_string(),
            "etcd key /app/x\\ny: the key holds a control character; keys must be names"
        );
    }
}
