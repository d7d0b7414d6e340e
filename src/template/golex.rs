//! The lexical facts of Go's `text/template`, read straight from the template source with
//! Go's own rules: which text is emitted (after the `{{-` / `-}}` trim markers and comments),
//! whether control actions nest, the value of a string literal, and the form of a number
//! literal.
//!
//! The parse tree comes from the `gotmpl` crate, which follows Go closely but not in every
//! corner (it trims Unicode whitespace where Go trims only `" \t\r\n"`, it trims after a
//! comment opened with `{{-` even when the comment closes without `-}}`, it accepts some
//! string escapes Go rejects, and it stops at a stray `{{end}}`, dropping the rest of the
//! template). The Go engine ([`super::go`]) rejects at load time what Go's parser rejects
//! here; `reconfd migrate` checks gotmpl's text and literals against what this module derives
//! and refuses the template where they differ, so a gotmpl quirk can never turn into a wrong
//! translation. This module does no parsing beyond that.

use std::collections::BTreeMap;

/// Go's `isSpace` for trim markers: ASCII space, tab, carriage return and newline only.
fn is_go_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// A lexical problem Go reports at parse time (the template never renders in confd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// Byte offset in the source.
    pub offset: usize,
    /// What Go objects to.
    pub message: String,
}

/// The text Go emits, by the byte offset where each piece of raw text starts (before any
/// trimming): exactly the non-empty text items Go's lexer produces.
///
/// Also checks that control actions nest (`{{if}}`/`{{range}}`/`{{with}}`/`{{define}}`/
/// `{{block}}` each closed by an `{{end}}`, `{{else}}` only inside one): gotmpl accepts a
/// stray top-level `{{end}}` and silently drops the rest of the template; Go rejects it.
pub fn text_segments(src: &str) -> Result<BTreeMap<usize, String>, LexError> {
    let bytes = src.as_bytes();
    let mut out = BTreeMap::new();
    let mut pos = 0;
    let mut trim_leading = false;
    let mut open = 0usize;
    loop {
        let delim = src[pos..].find("{{").map(|x| pos + x);
        let end = delim.unwrap_or(src.len());
        let mut text = &src[pos..end];
        if trim_leading {
            text = text.trim_start_matches(GO_SPACE);
        }
        // `{{- ` (a minus and a space) trims the text before it.
        if let Some(d) = delim {
            if has_left_trim_marker(&bytes[d + 2..]) {
                text = text.trim_end_matches(GO_SPACE);
            }
        }
        if !text.is_empty() {
            out.insert(pos, text.to_owned());
        }
        let Some(d) = delim else {
            if open > 0 {
                return Err(LexError {
                    offset: src.len(),
                    message: "unexpected EOF: a control action is not closed by {{end}}".into(),
                });
            }
            return Ok(out);
        };
        let mut p = d + 2;
        if has_left_trim_marker(&bytes[p..]) {
            p += 2;
        }
        if bytes[p..].starts_with(b"/*") {
            // A comment must follow `{{` (or `{{- `) directly and end with `*/}}` or `*/ -}}`.
            let close = src[p + 2..].find("*/").ok_or_else(|| LexError {
                offset: d,
                message: "unclosed comment".into(),
            })?;
            let q = p + 2 + close + 2;
            let (after, trims) = right_delim_at(bytes, q).ok_or_else(|| LexError {
                offset: d,
                message: "comment ends before closing delimiter".into(),
            })?;
            pos = after;
            trim_leading = trims;
            continue;
        }
        // gotmpl also takes `{{ /* c */}}` for a comment; Go does not.
        if bytes[p..]
            .iter()
            .position(|b| !is_go_space(*b))
            .is_some_and(|i| bytes[p + i..].starts_with(b"/*"))
        {
            return Err(LexError {
                offset: d,
                message: "unexpected \"/\" in command".into(),
            });
        }
        let (after, trims) = action_end(bytes, p).ok_or_else(|| LexError {
            offset: d,
            message: "unclosed action".into(),
        })?;
        match keyword(&src[p..after]) {
            "if" | "range" | "with" | "define" | "block" => open += 1,
            "end" if open == 0 => {
                return Err(LexError {
                    offset: d,
                    message: "unexpected {{end}}".into(),
                })
            }
            "end" => open -= 1,
            "else" if open == 0 => {
                return Err(LexError {
                    offset: d,
                    message: "unexpected {{else}}".into(),
                })
            }
            _ => {}
        }
        pos = after;
        trim_leading = trims;
    }
}

/// The first word of an action's body, if it is a bare identifier.
fn keyword(body: &str) -> &str {
    let body = body.trim_start_matches(GO_SPACE);
    let end = body
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(body.len());
    &body[..end]
}

/// Go's `hasLeftTrimMarker`: `-` followed by a space character.
fn has_left_trim_marker(s: &[u8]) -> bool {
    s.len() >= 2 && s[0] == b'-' && is_go_space(s[1])
}

/// Go's `atRightDelim` at `i`: the offset after the delimiter and whether it trims.
fn right_delim_at(s: &[u8], i: usize) -> Option<(usize, bool)> {
    let rest = &s[i..];
    if rest.len() >= 4 && is_go_space(rest[0]) && rest[1] == b'-' && rest[2..].starts_with(b"}}") {
        Some((i + 4, true))
    } else if rest.starts_with(b"}}") {
        Some((i + 2, false))
    } else {
        None
    }
}

/// Scans an action from `i` to its closing delimiter, stepping over quoted strings, raw
/// strings and character constants (which may contain `}}`).
fn action_end(s: &[u8], mut i: usize) -> Option<(usize, bool)> {
    while i < s.len() {
        if let Some(end) = right_delim_at(s, i) {
            return Some(end);
        }
        match s[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < s.len() && s[i] != q {
                    if s[i] == b'\\' {
                        i += 1;
                    }
                    if i < s.len() && s[i] == b'\n' {
                        return None;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < s.len() && s[i] != b'`' {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// A string literal's value by Go's rules (`strconv.Unquote`), from the literal's source text
/// starting at `offset`. `None` when the source there is not a string literal Go accepts, or
/// when its value is not UTF-8 text (a `\x80`-style byte escape).
pub fn string_literal(src: &str, offset: usize) -> Option<String> {
    let rest = src.get(offset..)?;
    let mut chars = rest.chars();
    match chars.next()? {
        '`' => {
            let end = rest[1..].find('`')?;
            // Go drops carriage returns from raw strings.
            Some(rest[1..1 + end].replace('\r', ""))
        }
        '"' => {
            let mut bytes = Vec::new();
            loop {
                let c = chars.next()?;
                match c {
                    '"' => break,
                    '\n' => return None,
                    '\\' => unescape(&mut chars, &mut bytes)?,
                    c => {
                        let mut buf = [0; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            String::from_utf8(bytes).ok()
        }
        _ => None,
    }
}

/// One escape of a double-quoted Go string (after the backslash), appended as bytes.
fn unescape(chars: &mut std::str::Chars<'_>, out: &mut Vec<u8>) -> Option<()> {
    let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + chars.next()?.to_digit(16)?;
        }
        Some(v)
    };
    let push_char = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    match chars.next()? {
        'a' => out.push(0x07),
        'b' => out.push(0x08),
        'f' => out.push(0x0c),
        'n' => out.push(b'\n'),
        'r' => out.push(b'\r'),
        't' => out.push(b'\t'),
        'v' => out.push(0x0b),
        '\\' => out.push(b'\\'),
        '"' => out.push(b'"'),
        'x' => out.push(u8::try_from(hex(chars, 2)?).ok()?),
        'u' => push_char(out, char::from_u32(hex(chars, 4)?)?),
        'U' => push_char(out, char::from_u32(hex(chars, 8)?)?),
        d @ '0'..='7' => {
            let mut v = d.to_digit(8)?;
            for _ in 0..2 {
                v = v * 8 + chars.next()?.to_digit(8)?;
            }
            out.push(u8::try_from(v).ok()?);
        }
        _ => return None,
    }
    Some(())
}

/// The decimal integer a number literal at `offset` spells, when it is written in plain
/// decimal (`0`, `42`, `-7`; no sign `+`, no leading zeros, no `_`, no other base, no
/// fraction or exponent). Other forms are valid Go but are not translated.
pub fn decimal_literal(src: &str, offset: usize) -> Option<i64> {
    let rest = src.get(offset..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | '_')))
        .unwrap_or(rest.len());
    let token = &rest[..end];
    let digits = token.strip_prefix('-').unwrap_or(token);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    token.parse().ok()
}

/// The 1-based line and column (in characters) of byte `offset`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(usize, String)> {
        text_segments(src).unwrap().into_iter().collect()
    }

    #[test]
    fn trim_markers_trim_ascii_space_only() {
        assert_eq!(
            texts("a \n{{- 1 -}} \t b"),
            vec![(0, "a".into()), (12, "b".into())]
        );
        // U+00A0 is not a Go space: it stays.
        assert_eq!(
            texts("a\u{a0}{{- 1 -}}\u{a0}b"),
            vec![(0, "a\u{a0}".into()), (12, "\u{a0}b".into())]
        );
        // `{{-3}}` is the number -3, not a trim marker.
        assert_eq!(texts("a {{-3}}"), vec![(0, "a ".into())]);
    }

    #[test]
    fn comments_trim_only_where_marked() {
        // Go trims before `{{- /*` but not after a comment closed without `-}}`.
        assert_eq!(
            texts("a {{- /* c */}} b"),
            vec![(0, "a".into()), (15, " b".into())]
        );
        assert_eq!(
            texts("a {{- /* c */ -}} b"),
            vec![(0, "a".into()), (17, "b".into())]
        );
        assert!(text_segments("{{ /* c */}}").is_err());
        assert!(text_segments("{{/* c */ }}").is_err());
        assert!(text_segments("{{/* c").is_err());
    }

    #[test]
    fn strings_inside_actions_may_hold_delimiters() {
        assert_eq!(
            texts(r#"{{ "}}" }}x{{ `}}` }}y{{ '}' }}z"#),
            vec![(10, "x".into()), (21, "y".into()), (31, "z".into())]
        );
        assert!(text_segments("{{ \"a").is_err());
    }

    #[test]
    fn control_actions_must_nest() {
        assert!(text_segments("{{if 1}}{{else}}{{range 1}}{{end}}{{end}}").is_ok());
        assert!(text_segments("{{- define \"x\" -}}{{end}}").is_ok());
        assert_eq!(text_segments("a{{end}}b").unwrap_err().offset, 1);
        assert!(text_segments("{{else}}").is_err());
        assert!(text_segments("{{if 1}}").is_err());
        // Not keywords: a field, a variable, a longer identifier.
        assert!(text_segments("{{.end}}{{$end}}{{ending}}").is_ok());
    }

    #[test]
    fn go_string_literals() {
        assert_eq!(
            string_literal(r#""a\tb\"c\x41\101\u00e9""#, 0).unwrap(),
            "a\tb\"cAAé"
        );
        assert_eq!(string_literal("`a\r\nb`", 0).unwrap(), "a\nb");
        // Not UTF-8, or not valid Go.
        assert_eq!(string_literal(r#""\x80""#, 0), None);
        assert_eq!(string_literal(r#""\q""#, 0), None);
        assert_eq!(string_literal(r#""\'""#, 0), None);
        assert_eq!(string_literal(r#""\ud800""#, 0), None);
    }

    #[test]
    fn decimal_literals() {
        assert_eq!(decimal_literal("{{ 42 }}", 3), Some(42));
        assert_eq!(decimal_literal("-7)", 0), Some(-7));
        assert_eq!(decimal_literal("0", 0), Some(0));
        for other in ["0x1f", "010", "1_000", "1.5", "1e3", "+1", "2i"] {
            assert_eq!(decimal_literal(other, 0), None, "{other}");
        }
    }

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncé{{", 6), (2, 3));
        assert_eq!(line_col("{{", 0), (1, 1));
    }
}
