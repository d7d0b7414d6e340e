//! [`KvView`]: the keys one resource renders from, at one revision, with its prefix stripped
//! (as confd's memkv store holds them), and the queries confd's template functions need
//! (`get`, `gets`, `getvs`, `ls`, `lsdir`, `exists`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::gopath::{self, BadPattern};

/// A resource's view of etcd at one revision.
///
/// Keys are relative to the resource's prefix and always start with `/` (confd stores
/// `path.Join("/", strings.TrimPrefix(key, prefix))`). `prefix` is kept so an error about a
/// missing key can name the full etcd key that was looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvView {
    /// The etcd revision this view was read at (0 for data that did not come from etcd).
    pub revision: i64,
    /// The [`super::Snapshot::seq`] this view was built or brought up to (0 outside
    /// the daemon): what tells whether a snapshot's changes can be patched in.
    pub seq: u64,
    /// The joined global and resource prefix, e.g. `/dc1/svc`; empty for none.
    pub prefix: String,
    /// Relative key → value, sorted by key.
    pub entries: BTreeMap<String, String>,
    /// Relative keys whose key or value was not valid UTF-8 (held lossily in `entries`).
    pub not_text: BTreeSet<String>,
    /// Relative keys holding a control character, kept up to date as keys come and go (see
    /// [`super::Snapshot::refresh`]) so that the check before each render does not scan every
    /// key of a large view.
    pub control: BTreeSet<String>,
}

impl KvView {
    /// Builds a view from relative keys.
    pub fn new(
        revision: i64,
        prefix: impl Into<String>,
        entries: BTreeMap<String, String>,
    ) -> Self {
        let control = entries
            .keys()
            .filter(|k| super::text::has_control(k))
            .cloned()
            .collect();
        Self {
            revision,
            seq: 0,
            prefix: prefix.into(),
            entries,
            not_text: BTreeSet::new(),
            control,
        }
    }

    /// Whether this view may be rendered: the one decision about keys and values that are
    /// not text (see [`super::text`]). A key with a control character always fails; a key
    /// or value that was not valid UTF-8 fails unless `lossy_utf8`. The first such key (in
    /// key order) is named.
    pub fn check_text(&self, lossy_utf8: bool) -> Result<(), super::NotText> {
        if let Some(k) = self.control.first() {
            return Err(super::NotText::ControlInKey {
                key: self.full_key(k),
            });
        }
        match self.not_text.first() {
            Some(k) if !lossy_utf8 => Err(super::NotText::InvalidUtf8 {
                key: self.full_key(k),
            }),
            _ => Ok(()),
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
        Ok(self
            .matching(pattern)?
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// [`KvView::gets`] without copying: the matching entries borrowed from the view.
    ///
    /// Only keys that start with the pattern's literal head (see
    /// [`gopath::literal_prefix`]) can match, so just that range of the sorted map is tested:
    /// a `gets` per service in a large view reads the service's keys, not every key.
    pub fn matching(&self, pattern: &str) -> Result<Vec<(&str, &str)>, BadPattern> {
        gopath::match_pattern(pattern, "")?;
        let head = gopath::literal_prefix(pattern);
        let mut out = Vec::new();
        // BTreeMap iteration is already in key order, which is memkv's sort order.
        let range = self
            .entries
            .range::<str, _>((Bound::Included(head), Bound::Unbounded));
        // The head matches itself, so the rest of the pattern decides on the rest of the key.
        // (The whole pattern was checked above; an error would name it all the same.)
        let rest = &pattern[head.len()..];
        let whole = |_| BadPattern {
            pattern: pattern.to_owned(),
        };
        for (k, v) in range.take_while(|(k, _)| k.starts_with(head)) {
            if gopath::match_pattern(rest, &k[head.len()..]).map_err(whole)? {
                out.push((k.as_str(), v.as_str()));
            }
        }
        Ok(out)
    }

    /// The values of every key matching `pattern`, sorted as strings by value, not by key
    /// (memkv `GetAllValues` calls `sort.Strings` on the values).
    pub fn getvs(&self, pattern: &str) -> Result<Vec<String>, BadPattern> {
        Ok(self
            .getvs_borrowed(pattern)?
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    /// [`KvView::getvs`] without copying: the values borrowed from the view, so an engine
    /// copies each value once, into its own string type.
    pub fn getvs_borrowed(&self, pattern: &str) -> Result<Vec<&str>, BadPattern> {
        let mut vs: Vec<&str> = self
            .matching(pattern)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        // Equal strings cannot be told apart, so an unstable sort gives sort.Strings' result.
        vs.sort_unstable();
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

#[cfg(test)]
mod tests {
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

    /// Only the range of keys under the pattern's literal head is tested; the answers are
    /// those of testing every key (neighbours that share or sort around the head included).
    #[test]
    fn gets_by_literal_head_finds_what_a_full_scan_finds() {
        let v = view(&[
            ("/a", "1"),
            ("/a/b", "2"),
            ("/a/b/c", "3"),
            ("/a/bc", "4"),
            ("/a/c", "5"),
            ("/a.b", "6"),
            ("/a0", "7"),
            ("/b", "8"),
            ("/a*b", "9"),
        ]);
        for p in [
            "", "*", "/*", "/a", "/a/*", "/a/b*", "/a/[b]", "/a/?", "/a/b/*", "/a*", "/a\\*b",
            "/?/b", "/a/bc", "/z/*", "/a/b/c", "/a/b?", "/a/b/c*", "/a[/]b", "/a/*/c", "/a/b*c",
        ] {
            let full: Vec<(String, String)> = v
                .entries
                .iter()
                .filter(|(k, _)| gopath::match_pattern(p, k).unwrap())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(v.gets(p).unwrap(), full, "gets {p:?}");
            let mut values: Vec<String> = full.into_iter().map(|(_, v)| v).collect();
            values.sort();
            assert_eq!(v.getvs(p).unwrap(), values, "getvs {p:?}");
        }
        assert!(v.matching("/a/[").is_err());
        assert!(v.getvs_borrowed("/a/\\").is_err());
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
