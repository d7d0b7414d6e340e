//! The key/value data one render sees: a resource's keys at one etcd revision, with the
//! resource's prefix stripped (as confd's memkv store holds them), plus the queries confd's
//! template functions need (`get`, `gets`, `getvs`, `ls`, `lsdir`, `exists`).
//!
//! It owns no I/O: the etcd module fills it, the template engines read it.

use std::collections::BTreeMap;

/// A resource's view of etcd at one revision.
///
/// Keys are relative to the resource's prefix and always start with `/` (confd stores
/// `path.Join("/", strings.TrimPrefix(key, prefix))`). `prefix` is kept so an error about a
/// missing key can name the full etcd key that was looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvView {
    /// The etcd revision this view was read at (0 for data that did not come from etcd).
    pub revision: i64,
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
            prefix: prefix.into(),
            entries,
        }
    }

    /// The full etcd key a template's relative key stands for (`/dc1/svc` + `/a` = `/dc1/svc/a`).
    pub fn full_key(&self, key: &str) -> String {
        crate::keys::join(&self.prefix, key)
    }
}
