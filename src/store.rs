//! The key/value data one render sees: a resource's keys at one etcd revision, with the
//! resource's prefix stripped (as confd's memkv store holds them), plus the queries confd's
//! template functions need (`get`, `gets`, `getvs`, `ls`, `lsdir`, `exists`).
//!
//! It owns no I/O: the etcd module fills it, the template engines read it. The [`gopath`]
//! submodule holds Go's `path` package semantics (`Match`, `Clean`, `Dir`, `Base`) that the
//! queries and the template helpers share, so globs and path helpers behave as in confd.

use std::collections::{BTreeMap, BTreeSet};

pub use gopath::BadPattern;

/// A resource's view of etcd at one revision.
///
/// Keys are relative to the resource's prefix and always start with `/` (confd stores
/// `path.Join("/", strings.TrimPrefix(key, prefix))`). `prefix` is kept so an error about a
/// missing key can name the full etcd key that was looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvView {
    /// The etcd revision this view was read at (0 for data that did not come from etcd).
    pub revision: i64,
    /// The [`crate::etcd::Snapshot::seq`] this view was built or brought up to (0 outside
    /// the daemon): what tells whether a snapshot's changes can be patched in.
    pub seq: u64,
    /// The joined global and resource prefix, e.g. `/dc1/svc`; empty for none.
    pub prefix: String,
    /// Relative key → value, sorted by key.
    pub entries: BTreeMap<String, String>,
}

impl KvView {
    /// Builds a view from relative keys.
    pub fn new(
        revision: i64,
        prefix: impl Into<String>,
        entries: BTreeMap<String, String>,
    ) -> Self {
        Self {
            revision,
            seq: 0,
            prefix: prefix.into(),
            entries,
        }
    }

    /// The full etcd key a template's relative key stands for (`/dc1/svc` + `/a` = `/dc1/svc/a`).
    pub fn full_key(&self, key: &str) -> String {
        crate::keys::join(&self.prefix, key)
    }

    /// The value of exactly `key` (memkv `Get`/`GetValue`: no path cleaning, so `/a/` is not `/a`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Whether exactly `key` is present (memkv `Exists`).
    pub fn exists(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Every `(key, value)` whose key matches the glob `pattern` (Go `path.Match`: `*` and `?`
    /// never match `/`), sorted by key (memkv `GetAll`).
    ///
    /// A malformed pattern is an error even when the view is empty (memkv only notices it when
    /// some key is tested), so a bad template fails the same way whatever etcd holds.
    pub fn gets(&self, pattern: &str) -> Result<Vec<(String, String)>, BadPattern> {
        gopath::match_pattern(pattern, "")?;
        let mut out = Vec::new();
        // BTreeMap iteration is already in key order, which is memkv's sort order.
        for (k, v) in &self.entries {
            if gopath::match_pattern(pattern, k)? {
                out.push((k.clone(), v.clone()));
            }
        }
        Ok(out)
    }

    /// The values of every key matching `pattern`, sorted as strings by value, not by key
    /// (memkv `GetAllValues` calls `sort.Strings` on the values).
    pub fn getvs(&self, pattern: &str) -> Result<Vec<String>, BadPattern> {
        let mut vs: Vec<String> = self.gets(pattern)?.into_iter().map(|(_, v)| v).collect();
        vs.sort();
        Ok(vs)
    }

    /// The names directly below `dir`, keys and "directories" alike, sorted and unique (memkv
    /// `List`). If `dir` is itself a key, its base name is listed too.
    ///
    /// `dir` is compared segment-wise after Go's `path.Clean`, so `/a` and `/a/` list the same
    /// names and `/a` does not list `/ab`. One deliberate difference from memkv: `ls("/")` lists
    /// every top-level name (memkv only finds top-level keys there, a bug in its root handling).
    pub fn ls(&self, dir: &str) -> Vec<String> {
        if !dir.starts_with('/') {
            // Keys are absolute; memkv's segment comparison never matches a relative path.
            return Vec::new();
        }
        let cleaned = gopath::clean(dir);
        let prefix = segments(&cleaned);
        let mut names = BTreeSet::new();
        for key in self.entries.keys() {
            if key == dir {
                names.insert(gopath::base(key));
                continue;
            }
            let parent = gopath::dir(key);
            let target = segments(&parent);
            if target.starts_with(&prefix) {
                match target.get(prefix.len()) {
                    Some(child) => names.insert((*child).to_owned()),
                    None => names.insert(gopath::base(key)),
                };
            }
        }
        names.into_iter().collect()
    }

    /// The names of the "directories" directly below `dir`: names that have at least one key
    /// beneath them, not leaf keys (memkv `ListDir`). Sorted and unique; same path rules as
    /// [`KvView::ls`].
    pub fn lsdir(&self, dir: &str) -> Vec<String> {
        let cleaned = gopath::clean(dir);
        let prefix = segments(&cleaned);
        let mut names = BTreeSet::new();
        for key in self.entries.keys() {
            // memkv first filters on the raw string prefix, then compares segments.
            if !key.starts_with(dir) {
                continue;
            }
            let parent = gopath::dir(key);
            let target = segments(&parent);
            if target.len() > prefix.len() && target.starts_with(&prefix) {
                names.insert(target[prefix.len()].to_owned());
            }
        }
        names.into_iter().collect()
    }
}

/// The non-empty segments of a cleaned path (`/` has none, `/a/b` has `a`, `b`).
fn segments(p: &str) -> Vec<&str> {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

/// Go's `path` package, byte for byte where templates can observe it: `Match` (the glob used
/// by `gets`/`getvs`), `Clean`, `Dir` and `Base` (the `dir` and `base` template helpers).
pub mod gopath {
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
}

#[cfg(test)]
mod tests {
    use super::gopath::{base, clean, dir, match_pattern};
    use super::*;

    fn view(pairs: &[(&str, &str)]) -> KvView {
        KvView::new(
            7,
            "/dc1",
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

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

    #[test]
    fn get_and_exists_are_exact() {
        let v = view(&[("/db/user", "admin")]);
        assert_eq!(v.get("/db/user"), Some("admin"));
        assert_eq!(v.get("/db/user/"), None);
        assert_eq!(v.get("/missing"), None);
        assert!(v.exists("/db/user"));
        assert!(!v.exists("/db"));
        assert_eq!(v.full_key("/db/user"), "/dc1/db/user");
    }

    /// memkv's GetAll table: sorted by key, `*` within one segment, bad pattern is an error.
    #[test]
    fn gets_sorted_by_key() {
        let v = view(&[
            ("/app/db/pass", "foo"),
            ("/app/db/user", "admin"),
            ("/app/port", "443"),
            ("/app/url", "app.example.com"),
            ("/app/vhosts/host1", "app.example.com"),
            ("/app/upstream/host1", "203.0.113.0.1:8080"),
            ("/app/upstream/host1/domain", "app.example.com"),
            ("/app/upstream/host2", "203.0.113.0.2:8080"),
            ("/app/upstream/host2/domain", "app.example.com"),
        ]);
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            v.gets("/app/db/*").unwrap(),
            vec![kv("/app/db/pass", "foo"), kv("/app/db/user", "admin")]
        );
        assert_eq!(
            v.gets("/app/*/host1").unwrap(),
            vec![
                kv("/app/upstream/host1", "203.0.113.0.1:8080"),
                kv("/app/vhosts/host1", "app.example.com")
            ]
        );
        assert_eq!(
            v.gets("/app/upstream/*").unwrap(),
            vec![
                kv("/app/upstream/host1", "203.0.113.0.1:8080"),
                kv("/app/upstream/host2", "203.0.113.0.2:8080")
            ]
        );
        assert_eq!(v.gets("/app/missing/*").unwrap(), vec![]);
        assert!(v.gets("[]a]").is_err());
        // Bad patterns fail even with nothing to match against.
        assert_eq!(
            KvView::default().gets("/a/[").unwrap_err().to_string(),
            "syntax error in pattern \"/a/[\""
        );
    }

    #[test]
    fn getvs_sorted_by_value_not_key() {
        let v = view(&[
            ("/services/apache/a", "10.0.0.9:80"),
            ("/services/apache/b", "10.0.0.1:80"),
            ("/services/apache/c", "10.0.0.10:80"),
            ("/services/apache/c/x", "nested"),
        ]);
        assert_eq!(
            v.getvs("/services/apache/*").unwrap(),
            // Byte order: '0' sorts before ':', as Go's sort.Strings has it.
            vec!["10.0.0.10:80", "10.0.0.1:80", "10.0.0.9:80"]
        );
        assert!(v.getvs("/services/[").is_err());
    }

    /// memkv's List/ListDir tables.
    fn deis() -> KvView {
        view(&[
            ("/deis/database/user", "user"),
            ("/deis/database/pass", "pass"),
            ("/deis/services/key", "value"),
            ("/deis/services/notaservice/foo", "bar"),
            ("/deis/services/srv1/node1", "10.244.1.1:80"),
            ("/deis/services/srv1/node2", "10.244.1.2:80"),
            ("/deis/services/srv1/node3", "10.244.1.3:80"),
            ("/deis/services/srv2/node1", "10.244.2.1:80"),
            ("/deis/services/srv2/node2", "10.244.2.2:80"),
            ("/deis/prefix/node1", "prefix_node1"),
            ("/deis/prefix/node2/leafnode", "prefix_node2"),
            ("/deis/prefix/node3/leafnode", "prefix_node3"),
            ("/deis/prefix_a/node4", "prefix_a_node4"),
            ("/deis/prefixb/node5/leafnode", "prefixb_node5"),
            ("/deis/dirprefix/node1", "prefix_node1"),
            ("/deis/dirprefix/node2/leafnode", "prefix_node2"),
            ("/deis/dirprefix/node3/leafnode", "prefix_node3"),
            ("/deis/dirprefix_a/node4", "prefix_a_node4"),
            ("/deis/dirprefixb/node5/leafnode", "prefixb_node5"),
        ])
    }

    #[test]
    fn ls_lists_children_of_nested_keys() {
        let v = deis();
        for d in ["/deis/services", "/deis/services/"] {
            assert_eq!(
                v.ls(d),
                vec!["key", "notaservice", "srv1", "srv2"],
                "ls {d}"
            );
        }
        for d in ["/deis/prefix", "/deis/prefix/"] {
            assert_eq!(v.ls(d), vec!["node1", "node2", "node3"], "ls {d}");
        }
        assert_eq!(v.ls("/deis/services/key"), vec!["key"]);
        assert_eq!(v.ls("/deis/nothing"), Vec::<String>::new());
        assert_eq!(v.ls("deis"), Vec::<String>::new());
        assert_eq!(v.ls("/"), vec!["deis"]);
        assert_eq!(
            v.ls("/deis"),
            vec![
                "database",
                "dirprefix",
                "dirprefix_a",
                "dirprefixb",
                "prefix",
                "prefix_a",
                "prefixb",
                "services"
            ]
        );
    }

    #[test]
    fn lsdir_lists_only_directories() {
        let v = deis();
        for d in ["/deis/services", "/deis/services/"] {
            assert_eq!(v.lsdir(d), vec!["notaservice", "srv1", "srv2"], "lsdir {d}");
        }
        for d in ["/deis/dirprefix", "/deis/dirprefix/"] {
            assert_eq!(v.lsdir(d), vec!["node2", "node3"], "lsdir {d}");
        }
        assert_eq!(v.lsdir("/deis/services/srv1"), Vec::<String>::new());
        assert_eq!(v.lsdir("/"), vec!["deis"]);
    }
}
