//! Go's `path` package, byte for byte where templates can observe it: `Match` (the glob used
//! by `gets`/`getvs`), `Clean`, `Dir` and `Base` (the `dir` and `base` template helpers).

/// A glob pattern Go's `path.Match` would reject with `ErrBadPattern`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {pattern:?}")]
pub struct BadPattern {
    /// The malformed pattern.
    pub pattern: String,
}

/// Go's `path.Match(pattern, name)`: whether `name` matches the whole shell pattern.
///
/// `*` matches any run of non-`/` bytes, `?` one non-`/` character, `[...]` / `[^...]` a
/// character class with ranges `a-z`, and `\` escapes the next character. A malformed
/// pattern (unclosed or empty class, bad range, trailing `\`) is an error, checked over the
/// whole pattern even after the match has failed, as Go does.
pub fn match_pattern(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let bad = || BadPattern {
        pattern: pattern.to_owned(),
    };
    let mut pat = pattern.as_bytes();
    let mut name = name.as_bytes();
    'pattern: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            // Trailing * matches the rest of the name unless it has a '/'.
            return Ok(!name.contains(&b'/'));
        }
        // Look for a match at the current position.
        let res = match_chunk(chunk, name).map_err(|()| bad())?;
        if let Some(t) = res {
            // If this is the last chunk, the name must be used up; otherwise a later
            // star could still match.
            if t.is_empty() || !pat.is_empty() {
                name = t;
                continue;
            }
        }
        if star {
            // Look for a match skipping i+1 bytes; a star cannot skip '/'.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..]).map_err(|()| bad())? {
                    if pat.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                i += 1;
            }
        }
        // No match: still report a malformed remainder of the pattern.
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(pat);
            pat = rest;
            match_chunk(chunk, b"").map_err(|()| bad())?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// The literal head of `pattern`: the bytes before its first `*`, `?`, `[` or `\`. A name
/// `pattern` matches starts with exactly these bytes (the first chunk is matched from the
/// name's first byte, and literal bytes match only themselves).
pub fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// Splits off the next chunk: an optional run of stars, then bytes up to the next star
/// outside a class.
fn scan_chunk(mut pat: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some(b'*') = pat.first() {
        pat = &pat[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            // A trailing backslash is left in the chunk for match_chunk to report.
            b'\\' if i + 1 < pat.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pat[..i], &pat[i..])
}

/// Matches one star-free chunk against the start of `s`: `Ok(Some(rest))` on a match,
/// `Ok(None)` on none, `Err(())` for a malformed chunk. After a failure it keeps parsing
/// the chunk without reading `s`, so syntax errors are always found.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, ()> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(&e) => e,
                        None => return Err(()),
                    }
                } else {
                    c
                };
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// Reads a possibly escaped character of a class; the class must go on after it.
fn get_esc(mut chunk: &[u8]) -> Result<(u32, &[u8]), ()> {
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(()),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(());
            }
        }
        _ => {}
    }
    let (r, n) = decode_rune(chunk);
    if r == char::REPLACEMENT_CHARACTER as u32 && n == 1 {
        return Err(());
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((r, rest))
}

/// Go's `utf8.DecodeRune`: the first character and its length, or (U+FFFD, 1) if invalid.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let want = match s.first() {
        None => return (char::REPLACEMENT_CHARACTER as u32, 0),
        Some(b) if *b < 0x80 => 1,
        Some(b) if *b >= 0xF0 => 4,
        Some(b) if *b >= 0xE0 => 3,
        Some(_) => 2,
    };
    match s.get(..want).and_then(|b| std::str::from_utf8(b).ok()) {
        Some(st) => (st.chars().next().map_or(0, |c| c as u32), want),
        None => (char::REPLACEMENT_CHARACTER as u32, 1),
    }
}

/// Go's `path.Clean`: one slash between names, no `.`, `..` resolved lexically (and dropped
/// at the root), no trailing slash; `""` becomes `.`.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `path.Dir`: everything before the last `/`, cleaned (`/a/b` → `/a`, `a` → `.`).
pub fn dir(p: &str) -> String {
    let cut = p.rfind('/').map_or(0, |i| i + 1);
    clean(&p[..cut])
}

/// Go's `path.Base`: the last element, trailing slashes ignored (`/a/b/` → `b`, `` → `.`,
/// `///` → `/`).
pub fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_owned();
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_owned(),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own path.Match test table (src/path/match_test.go), plus a few more.
    #[test]
    fn match_follows_go_path_match() {
        let ok: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
            ("/services/apache/*", "/services/apache/a", true),
            ("/services/apache/*", "/services/apache/a/b", false),
            ("/services/*/a", "/services/apache/a", true),
            ("", "", true),
            ("", "a", false),
        ];
        for (p, n, want) in ok {
            assert_eq!(match_pattern(p, n), Ok(*want), "Match({p:?}, {n:?})");
        }
        let bad: &[(&str, &str)] = &[
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[x-]", "-"),
            ("[x-]", "z"),
            ("[-x]", "x"),
            ("[-x]", "-"),
            ("[-x]", "a"),
            ("\\", "a"),
            ("[a-b-c]", "a"),
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
            ("*x[", "xxx"),
            ("a*[", "abc"),
        ];
        for (p, n) in bad {
            assert!(
                match_pattern(p, n).is_err(),
                "Match({p:?}, {n:?}) should be ErrBadPattern"
            );
        }
    }

    #[test]
    fn literal_prefix_stops_at_the_first_special_byte() {
        assert_eq!(literal_prefix("/services/web/*"), "/services/web/");
        assert_eq!(literal_prefix("/a/b"), "/a/b");
        assert_eq!(literal_prefix("/a?/b"), "/a");
        assert_eq!(literal_prefix("/a[bc]"), "/a");
        assert_eq!(literal_prefix("/a\\*"), "/a");
        assert_eq!(literal_prefix("*"), "");
        assert_eq!(literal_prefix(""), "");
    }

    #[test]
    fn go_path_helpers() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("/a//b/./c/.."), "/a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a/.."), "..");
        assert_eq!(clean("a/"), "a");
        assert_eq!(dir("/a/b"), "/a");
        assert_eq!(dir("/a"), "/");
        assert_eq!(dir("a"), ".");
        assert_eq!(dir("/a/b/"), "/a/b");
        assert_eq!(dir(""), ".");
        assert_eq!(base("/a/b"), "b");
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base(""), ".");
        assert_eq!(base("///"), "/");
        assert_eq!(base("a"), "a");
    }
}
