//! [`Snapshot`]: every readable watched key at one etcd revision, as the etcd task publishes
//! it, and how a resource's [`KvView`] is cut from it or brought up to date with it.
//!
//! Pure data: reading and following etcd fill it, the renders read it; `reconfd render` and
//! the tests build one by hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::KvView;
use crate::keys;

/// Full etcd key → value. A persistent map: cloning it is O(1) and an update copies only a
/// path, so the follower can publish a new snapshot per revision without copying every key.
pub type KeyMap = imbl::OrdMap<String, String>;

/// Every readable watched key, by full etcd key, as the follower last published it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The etcd revision of the state (with one watch, every key is at it; when the watch had
    /// to be split per prefix, the newest revision applied).
    pub revision: i64,
    /// Publication number, one more than the previous snapshot's (0: nothing read yet).
    /// Distinct even where two snapshots share a revision (a transaction seen by two split
    /// watches), so a view can always tell which snapshot it is at.
    pub seq: u64,
    /// Full key → value.
    pub kvs: KeyMap,
    /// The `seq` of the snapshot published before this one.
    pub since: u64,
    /// Full keys whose value differs from the snapshot at `since` (put, changed or deleted),
    /// so a resource can tell cheaply whether a change concerns it.
    pub changed: Vec<String>,
    /// Watched keys (full keys, as resources name them) the etcd user may not read: their
    /// values are missing here, so a resource watching one must not render.
    pub denied: Arc<[String]>,
    /// Full keys whose key or value was not valid UTF-8 (held lossily in `kvs`); whether a
    /// resource may render them is [`KvView::check_text`]'s decision.
    pub not_text: imbl::OrdSet<String>,
}

impl Snapshot {
    /// The view one resource renders from: keys covered by `watched` (full keys), with
    /// `prefix` stripped, as confd's store holds them.
    pub fn view(&self, prefix: &str, watched: &[String]) -> KvView {
        let mut entries = BTreeMap::new();
        let mut not_text = std::collections::BTreeSet::new();
        for w in merge_prefixes(watched) {
            for (k, v) in self
                .kvs
                .range(w.clone()..)
                .take_while(|(k, _)| k.starts_with(w.as_str()))
            {
                if keys::covers(&w, k) {
                    let rel = keys::strip(prefix, k);
                    if self.not_text.contains(k) {
                        not_text.insert(rel.clone());
                    }
                    entries.insert(rel, v.clone());
                }
            }
        }
        let mut view = KvView::new(self.revision, prefix, entries);
        view.seq = self.seq;
        view.not_text = not_text;
        view
    }

    /// Brings `view` (a resource's view built from an earlier snapshot) to this snapshot: by
    /// applying `changed` when the view is at `since`, else by building it again.
    pub fn refresh(&self, view: &mut Arc<KvView>, prefix: &str, watched: &[String]) {
        if view.seq == self.seq && self.seq != 0 {
            return;
        }
        if view.seq != self.since || self.since == 0 {
            *view = Arc::new(self.view(prefix, watched));
            return;
        }
        let v = Arc::make_mut(view);
        for k in &self.changed {
            if !watched.iter().any(|w| keys::covers(w, k)) {
                continue;
            }
            let rel = keys::strip(prefix, k);
            if self.not_text.contains(k) {
                v.not_text.insert(rel.clone());
            } else {
                v.not_text.remove(&rel);
            }
            if self.kvs.contains_key(k) && super::text::has_control(&rel) {
                v.control.insert(rel.clone());
            } else {
                v.control.remove(&rel);
            }
            match self.kvs.get(k) {
                Some(value) => {
                    v.entries.insert(rel, value.clone());
                }
                None => {
                    v.entries.remove(&rel);
                }
            }
        }
        v.revision = self.revision;
        v.seq = self.seq;
    }

    /// The watched keys of `watched` that the etcd user may not read.
    pub fn denied_of(&self, watched: &[String]) -> Vec<String> {
        watched
            .iter()
            .filter(|w| self.denied.contains(w))
            .cloned()
            .collect()
    }

    /// Whether any key in `changed` is covered by one of `watched` (full keys).
    pub fn touches(&self, watched: &[String]) -> bool {
        self.changed
            .iter()
            .any(|k| watched.iter().any(|w| keys::covers(w, k)))
    }

    /// The next snapshot after `self`, holding `kvs` at `revision`, with the same keys
    /// denied; `changed` lists what differs. Keys not text here stay so where their value is
    /// unchanged (a full read passes its own set on: [`Snapshot::with_not_text`]).
    pub fn successor(&self, revision: i64, kvs: KeyMap) -> Snapshot {
        let mut changed: Vec<String> = kvs
            .iter()
            .filter(|(k, v)| self.kvs.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        changed.extend(self.kvs.keys().filter(|k| !kvs.contains_key(*k)).cloned());
        let not_text = self
            .not_text
            .iter()
            .filter(|k| kvs.get(*k).is_some() && kvs.get(*k) == self.kvs.get(*k))
            .cloned()
            .collect();
        Snapshot {
            revision,
            seq: self.seq + 1,
            kvs,
            since: self.seq,
            changed,
            denied: self.denied.clone(),
            not_text,
        }
    }

    /// Stores `bytes` under `key` (decoded by [`text::decode`](super::text::decode)), and
    /// marks the key when either was not valid UTF-8. The one way etcd's bytes enter a
    /// snapshot; a put of text unmarks the key.
    pub fn put_bytes(&mut self, key: &[u8], value: &[u8]) -> String {
        let (key, key_ok) = super::text::decode(key);
        let (value, value_ok) = super::text::decode(value);
        if key_ok && value_ok {
            self.not_text.remove(&key);
        } else {
            self.not_text.insert(key.clone());
        }
        self.kvs.insert(key.clone(), value);
        key
    }

    /// This snapshot (a [`Snapshot::successor`]) with `not_text` as the set of keys that are
    /// not text. A key whose mark alone changed (bytes that decode to the same string) is
    /// added to `changed`, so views patched from it see the new mark.
    pub fn with_not_text(mut self, not_text: imbl::OrdSet<String>) -> Self {
        let flipped: Vec<String> = not_text
            .clone()
            .symmetric_difference(self.not_text.clone())
            .into_iter()
            .collect();
        if !flipped.is_empty() {
            self.changed.extend(flipped);
            self.changed.sort();
            self.changed.dedup();
        }
        self.not_text = not_text;
        self
    }
}

/// The smallest set of watched keys covering all of `watched`: sorted, deduplicated, keys
/// below another watched key dropped.
pub fn merge_prefixes(watched: &[String]) -> Vec<String> {
    let mut all: Vec<String> = watched.to_vec();
    all.sort();
    all.dedup();
    let mut out: Vec<String> = Vec::new();
    for k in all {
        if !out.iter().any(|p| keys::covers(p, &k)) {
            out.push(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_drops_covered_keys() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            merge_prefixes(&w(&["/a/b", "/a", "/ab", "/a/b/c", "/ab"])),
            w(&["/a", "/ab"])
        );
    }

    #[test]
    fn view_strips_prefix_and_keeps_segments() {
        let mut s = Snapshot {
            revision: 7,
            ..Default::default()
        };
        for k in [
            "/dc1/services/apache/a",
            "/dc1/services/apache",
            "/dc1/services/apachefoo/x",
            "/dc2/services/apache/b",
        ] {
            s.kvs.insert(k.to_string(), format!("v{k}"));
        }
        let v = s.view("/dc1", &["/dc1/services/apache".into()]);
        assert_eq!(v.revision, 7);
        assert_eq!(
            v.entries.keys().collect::<Vec<_>>(),
            vec!["/services/apache", "/services/apache/a"]
        );
    }

    #[test]
    fn refresh_applies_changes_or_rebuilds() {
        let watched = vec!["/dc1/s".to_string()];
        let mut a = Snapshot {
            revision: 3,
            seq: 1,
            ..Default::default()
        };
        a.kvs.insert("/dc1/s/a".into(), "1".into());
        a.kvs.insert("/dc1/s/b".into(), "2".into());
        let mut view = Arc::new(a.view("/dc1", &watched));
        let mut kvs = a.kvs.clone();
        kvs.remove("/dc1/s/a");
        kvs.insert("/dc1/s/c".into(), "3".into());
        kvs.insert("/dc1/other".into(), "x".into());
        let b = a.successor(4, kvs);
        b.refresh(&mut view, "/dc1", &watched);
        assert_eq!(*view, b.view("/dc1", &watched));
        // A skipped snapshot: the view is rebuilt, not patched.
        let mut kvs = b.kvs.clone();
        kvs.insert("/dc1/s/d".into(), "4".into());
        let c = b.successor(5, kvs);
        let mut kvs = c.kvs.clone();
        kvs.insert("/dc1/s/e".into(), "5".into());
        let d = c.successor(6, kvs);
        d.refresh(&mut view, "/dc1", &watched);
        assert_eq!(*view, d.view("/dc1", &watched));
        assert_eq!(view.entries.len(), 4);
        // Two snapshots at one revision (split watches): the second is still patched in.
        let mut kvs = d.kvs.clone();
        kvs.insert("/dc1/s/f".into(), "6".into());
        let e = d.successor(6, kvs);
        assert_eq!((e.revision, e.since), (d.revision, d.seq));
        e.refresh(&mut view, "/dc1", &watched);
        assert_eq!(view.get("/s/f"), Some("6"));
        assert_eq!(view.seq, e.seq);
    }

    /// A value that is not UTF-8 fails the view's check naming the full key, unless lossy;
    /// a put of text clears it (patched and rebuilt views agree); a key with a newline
    /// always fails.
    #[test]
    fn keys_and_values_that_are_not_text_are_tracked_and_refused() {
        let watched = vec!["/dc1/s".to_string()];
        let mut a = Snapshot {
            revision: 3,
            seq: 1,
            ..Default::default()
        };
        a.put_bytes(b"/dc1/s/ok", b"fine");
        a.put_bytes(b"/dc1/s/bad", b"x\xff");
        let mut view = Arc::new(a.view("/dc1", &watched));
        assert_eq!(view.get("/s/bad"), Some("x\u{fffd}"));
        assert_eq!(
            view.check_text(false).unwrap_err().to_string(),
            "etcd key /dc1/s/bad: the key or its value is not valid UTF-8 (set lossy_utf8 = true in the resource to render it with U+FFFD)"
        );
        assert_eq!(view.check_text(true), Ok(()));

        let mut b = a.successor(4, a.kvs.clone());
        assert!(
            b.not_text.contains("/dc1/s/bad"),
            "unchanged value keeps its mark"
        );
        b.put_bytes(b"/dc1/s/bad", b"now text");
        b.changed = vec!["/dc1/s/bad".into()];
        b.refresh(&mut view, "/dc1", &watched);
        assert_eq!(*view, b.view("/dc1", &watched));
        assert_eq!(view.check_text(false), Ok(()));

        // A re-read finds the same string, now from bytes that were not UTF-8: the mark
        // alone changes, and the patched view follows it.
        let marked = imbl::OrdSet::unit("/dc1/s/ok".to_owned());
        let r = b.successor(5, b.kvs.clone()).with_not_text(marked);
        assert_eq!(r.changed, vec!["/dc1/s/ok".to_owned()]);
        r.refresh(&mut view, "/dc1", &watched);
        assert_eq!(view.not_text.iter().collect::<Vec<_>>(), ["/s/ok"]);

        let mut c = b.successor(5, b.kvs.clone());
        c.put_bytes(b"/dc1/s/x\ny", b"v");
        let e = c.view("/dc1", &watched).check_text(true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "etcd key /dc1/s/x\\ny: the key holds a control character; keys must be names"
        );
    }
}
