//! etcd access: connecting with the configured endpoints, credentials and TLS, and reading
//! every watched key at one revision so a pass renders one consistent state.
//!
//! It hides the etcd-client crate from the rest of reconfd. [`watch`] follows changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, TlsOptions, Txn, TxnOp, TxnOpResponse};

use crate::config::EtcdSettings;
use crate::keys;
use crate::store::KvView;

pub mod watch;

/// etcd's default limit of operations in one transaction (`--max-txn-ops`).
const MAX_TXN_OPS: usize = 128;
/// Responses for big prefixes exceed tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Why etcd could not be reached or read. Messages name the endpoints or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// A credential or TLS file could not be read.
    #[error("{path}: {what}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the file was for.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connecting or authenticating failed.
    #[error("cannot connect to etcd at {endpoints}: {source}")]
    Connect {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// A read failed.
    #[error("reading {what} from etcd at {endpoints} failed: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The endpoints, comma-separated.
        endpoints: String,
        /// The client's error.
        source: etcd_client::Error,
    },
}

/// Full etcd key → value. A persistent map: cloning it is O(1) and an update copies only a
/// path, so the follower can publish a new snapshot per revision without copying every key.
pub type KeyMap = imbl::OrdMap<String, String>;

/// Every watched key at one revision, by full etcd key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The revision all keys were read at.
    pub revision: i64,
    /// Full key → value.
    pub kvs: KeyMap,
    /// The revision of the snapshot published before this one (0 for the first).
    pub since: i64,
    /// Full keys whose value differs from the snapshot at `since` (put, changed or deleted),
    /// so a resource can tell cheaply whether a change concerns it.
    pub changed: Vec<String>,
}

impl Snapshot {
    /// The view one resource renders from: keys covered by `watched` (full keys), with
    /// `prefix` stripped, as confd's store holds them.
    pub fn view(&self, prefix: &str, watched: &[String]) -> KvView {
        let mut entries = BTreeMap::new();
        for w in merge_prefixes(watched) {
            for (k, v) in self
                .kvs
                .range(w.clone()..)
                .take_while(|(k, _)| k.starts_with(w.as_str()))
            {
                if keys::covers(&w, k) {
                    entries.insert(keys::strip(prefix, k), v.clone());
                }
            }
        }
        KvView::new(self.revision, prefix, entries)
    }

    /// Brings `view` (a resource's view built from an earlier snapshot) to this snapshot: by
    /// applying `changed` when the view is at `since`, else by building it again.
    pub fn refresh(&self, view: &mut Arc<KvView>, prefix: &str, watched: &[String]) {
        if view.revision == self.revision && self.revision != 0 {
            return;
        }
        if view.revision != self.since || self.since == 0 {
            *view = Arc::new(self.view(prefix, watched));
            return;
        }
        let v = Arc::make_mut(view);
        for k in &self.changed {
            if !watched.iter().any(|w| keys::covers(w, k)) {
                continue;
            }
            let rel = keys::strip(prefix, k);
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
    }

    /// Whether any key in `changed` is covered by one of `watched` (full keys).
    pub fn touches(&self, watched: &[String]) -> bool {
        self.changed
            .iter()
            .any(|k| watched.iter().any(|w| keys::covers(w, k)))
    }

    /// The next snapshot after `self`, holding `kvs` at `revision`; `changed` lists what differs.
    pub fn successor(&self, revision: i64, kvs: KeyMap) -> Snapshot {
        let mut changed: Vec<String> = kvs
            .iter()
            .filter(|(k, v)| self.kvs.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        changed.extend(self.kvs.keys().filter(|k| !kvs.contains_key(*k)).cloned());
        Snapshot {
            revision,
            kvs,
            since: self.revision,
            changed,
        }
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

/// Connects to etcd. With a username the password is read now and the client logs in.
pub async fn connect(settings: &EtcdSettings) -> Result<Client, EtcdError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10))
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
    if let Some(user) = &settings.username {
        let password = read_password(settings.password_file.as_deref())?;
        opts = opts
            .with_user(user.clone(), password)
            .with_auto_token_refresh(true);
    }
    if settings.endpoints.iter().any(|e| e.starts_with("https://")) {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &settings.ca_file {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read_file(
                ca, "CA file",
            )?));
        }
        if let Some((cert, key)) = &settings.client_cert {
            tls = tls.identity(etcd_client::Identity::from_pem(
                read_file(cert, "client certificate")?,
                read_file(key, "client key")?,
            ));
        }
        opts = opts.with_tls(tls);
    }
    Client::connect(&settings.endpoints, Some(opts))
        .await
        .map_err(|source| EtcdError::Connect {
            endpoints: settings.endpoints.join(","),
            source,
        })
}

/// Reads every key covered by `watched` (full keys) at one revision.
///
/// Each watched key becomes two range reads, the key itself and its `/`-children, so
/// `/services/apache` never transfers `/services/apachefoo`. They go in as few transactions
/// as etcd allows; the later ones are pinned to the first one's revision.
pub async fn read(
    client: &mut Client,
    endpoints: &[String],
    watched: &[String],
) -> Result<Snapshot, EtcdError> {
    let mut ops = Vec::new();
    for w in merge_prefixes(watched) {
        if w == "/" {
            ops.push((w.clone(), None));
        } else {
            ops.push((w.clone(), Some(false)));
            ops.push((format!("{w}/"), Some(true)));
        }
    }
    let mut snapshot = Snapshot::default();
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    for chunk in ops.chunks(MAX_TXN_OPS) {
        let txn_ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(key, prefix)| {
                let mut o = GetOptions::new();
                match prefix {
                    Some(false) => {}
                    Some(true) => o = o.with_prefix(),
                    // "/" covers every key starting with "/".
                    None => o = o.with_prefix(),
                }
                if snapshot.revision > 0 {
                    o = o.with_revision(snapshot.revision);
                }
                TxnOp::get(key.as_str(), Some(o))
            })
            .collect();
        let resp = kv
            .txn(Txn::new().and_then(txn_ops))
            .await
            .map_err(|source| EtcdError::Read {
                what: chunk
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                endpoints: endpoints.join(","),
                source,
            })?;
        if snapshot.revision == 0 {
            snapshot.revision = resp.header().map_or(0, |h| h.revision());
        }
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                for kv in get.kvs() {
                    snapshot.kvs.insert(
                        String::from_utf8_lossy(kv.key()).into_owned(),
                        String::from_utf8_lossy(kv.value()).into_owned(),
                    );
                }
            }
        }
    }
    Ok(snapshot)
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::File {
        path: path.to_owned(),
        what,
        source,
    })
}

/// The password from its file (one trailing newline is not part of it) or, without a file,
/// from `RECONFD_ETCD_PASSWORD`.
fn read_password(file: Option<&Path>) -> Result<String, EtcdError> {
    let mut pw = match file {
        Some(f) => String::from_utf8_lossy(&read_file(f, "password file")?).into_owned(),
        None => std::env::var("RECONFD_ETCD_PASSWORD").unwrap_or_default(),
    };
    if pw.ends_with('\n') {
        pw.pop();
        if pw.ends_with('\r') {
            pw.pop();
        }
    }
    Ok(pw)
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
    }

    #[test]
    fn password_file_trailing_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(read_password(Some(&p)).unwrap(), "s3cret");
        std::fs::write(&p, "s3cret\n\n").unwrap();
        assert_eq!(read_password(Some(&p)).unwrap(), "s3cret\n");
    }
}
