//! etcd access: connecting with the configured endpoints, credentials and TLS, and reading
//! every watched key at one revision so a pass renders one consistent state.
//!
//! It hides the etcd-client crate from the rest of reconfd. [`follower`] decides how to follow
//! changes and [`watch`] carries that out, [`endpoints`] is the order endpoints are tried in,
//! [`credentials`] finds the password, [`tls`] loads and validates the PEM files.
//!
//! Authentication: a username turns it on. The client logs in inside [`connect`] and
//! re-authenticates once and retries when a unary call meets an expired token (etcd's simple
//! tokens expire after `--auth-token-ttl` without use). A *new* watch is refused in-band
//! instead; [`watch`] handles that by refreshing the token and watching again.

use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, GetOptions, GetResponse, KvClient, Txn, TxnOp, TxnOpResponse,
};

use crate::config::EtcdSettings;
use crate::exit;
use crate::store::{merge_prefixes, Snapshot};

pub mod credentials;
pub mod endpoints;
pub mod follower;
pub mod material;
pub mod preference;
pub mod reason;
pub mod srv;
pub mod tls;
pub mod watch;

pub use credentials::CredentialError;
pub use tls::TlsError;

/// How often the HTTP/2 connection to etcd is pinged, and how long an answer may take before
/// the connection is given up: a member that hangs or is black-holed is left after at most the
/// sum.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// See [`KEEP_ALIVE_INTERVAL`].
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// etcd's default limit of operations in one transaction (`--max-txn-ops`).
const MAX_TXN_OPS: usize = 128;

pub use crate::config::ReadMode;

/// Why etcd could not be reached or read. Messages name the endpoints, user, keys or file at
/// fault, and never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The password could not be had.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A TLS file is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// DNS SRV discovery found no endpoint.
    #[error(transparent)]
    Srv(#[from] srv::SrvError),
    /// etcd refused the login (wrong password, unknown user, auth not enabled).
    #[error("etcd at {endpoints} refused the login of user {user:?}: {reason}")]
    Auth {
        /// The user.
        user: String,
        /// The endpoints, comma-separated.
        endpoints: String,
        /// etcd's message.
        reason: String,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// Connecting failed: refused, timed out, TLS handshake failed.
    #[error("cannot connect to {endpoints}: {reason}{hint}")]
    Connect {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// Why, in words ([`reason::describe`]).
        reason: String,
        /// The client's error.
        source: etcd_client::Error,
        /// What probably causes it, when the error says (empty or `"; …"`).
        hint: String,
    },
    /// A read failed with an answer from etcd (a failed connection is [`EtcdError::Connect`]).
    #[error("reading {what} from etcd at {endpoints} failed: {reason}{hint}")]
    Read {
        /// What was being read.
        what: String,
        /// The endpoints, comma-separated.
        endpoints: String,
        /// Why, in words ([`reason::describe`]).
        reason: String,
        /// The client's error.
        source: etcd_client::Error,
        /// What probably causes it, when the error says (empty or `"; …"`).
        hint: String,
    },
    /// The user's role does not allow reading these keys.
    #[error("{}", denied_message(user.as_deref(), keys, endpoints))]
    Denied {
        /// The user, when known.
        user: Option<String>,
        /// The watched keys that may not be read.
        keys: Vec<String>,
        /// The endpoints, comma-separated.
        endpoints: String,
    },
}

impl EtcdError {
    /// Whether the fault is in the local configuration (a credential or TLS file), so the
    /// process should exit with the configuration error code rather than retry.
    pub fn is_config(&self) -> bool {
        matches!(self, EtcdError::Credential(_) | EtcdError::Tls(_))
    }

    /// What kind of failure this is, for the exit code ([`exit::Failure`]).
    pub fn failure(&self) -> exit::Failure {
        match self {
            EtcdError::Credential(_) | EtcdError::Tls(_) => exit::Failure::Config,
            EtcdError::Auth { .. } | EtcdError::Denied { .. } => exit::Failure::NoPermission,
            EtcdError::Read { source, .. } if is_denied(source) => exit::Failure::NoPermission,
            EtcdError::Connect { .. } | EtcdError::Read { .. } | EtcdError::Srv(_) => {
                exit::Failure::Unavailable
            }
        }
    }

    /// A connect or read error for `source` at `endpoints`: [`EtcdError::Connect`] when no
    /// connection could be made, else [`EtcdError::Read`] of `what` (`None`: the login).
    fn client(
        source: etcd_client::Error,
        what: Option<String>,
        settings: &EtcdSettings,
    ) -> EtcdError {
        let endpoints = settings.endpoints.join(",");
        let hint = hint(&source, settings);
        match (reason::connection_failure(&source), what) {
            (Some(reason), _) => EtcdError::Connect {
                reason,
                endpoints,
                source,
                hint,
            },
            (None, None) => EtcdError::Connect {
                reason: reason::describe(&source),
                endpoints,
                source,
                hint,
            },
            (None, Some(what)) => EtcdError::Read {
                reason: reason::describe(&source),
                what,
                endpoints,
                source,
                hint,
            },
        }
    }
}

fn denied_message(user: Option<&str>, keys: &[String], endpoints: &str) -> String {
    let first = keys.first().map_or("", String::as_str);
    let keys = keys.join(", ");
    match user {
        Some(u) => format!(
            "etcd user {u:?} may not read {keys} (permission denied by etcd at {endpoints}); grant one of its roles read on that prefix, e.g. etcdctl role grant-permission ROLE --prefix=true read {first}"
        ),
        None => format!("permission denied reading {keys} from etcd at {endpoints}"),
    }
}

/// The key ranges holding exactly the keys `prefixes` (merged watched keys) cover, for reads
/// and for split watches alike: for each `W`, the key `W` itself (no end) and its children
/// `[W/, W0)` (`'0'` is the byte after `'/'`); for `/`, every key, `[/, 0)`.
pub fn key_ranges(prefixes: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for w in prefixes {
        if w == "/" {
            out.push(("/".to_owned(), Some("0".to_owned())));
        } else {
            out.push((w.clone(), None));
            out.push((format!("{w}/"), Some(format!("{w}0"))));
        }
    }
    out
}

/// Loads everything [`connect`] needs from disk (TLS files, the password) without
/// contacting etcd, so a daemon can refuse to start on a local mistake instead of retrying.
pub async fn preflight(settings: &EtcdSettings) -> Result<(), EtcdError> {
    material::read(settings).await.map(drop)
}

/// Connects to etcd. The TLS files and the password are read now, at every connection, so
/// replaced files are picked up by the next reconnect; a file that has become unusable is
/// replaced by the version last read ([`material`]). With a username the client logs in here.
///
/// Every call requires the member to have a leader (etcd's `hasleader`): a member cut off
/// from the cluster's majority refuses new calls and ends our watch (after about three
/// election timeouts), so the follower moves to a member that sees current data instead of
/// quietly following one that cannot.
pub async fn connect(settings: &EtcdSettings) -> Result<Client, EtcdError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10))
        .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
        .with_require_leader(true);
    let material = material::for_connection(settings).await?;
    if let Some(tls) = material.tls {
        opts = opts.with_tls(tls);
    }
    if let Some((user, password)) = &material.login {
        opts = opts
            .with_user(user.clone(), password.expose())
            .with_auto_token_refresh(true);
    }
    Client::connect(&settings.endpoints, Some(opts))
        .await
        .map_err(|source| {
            let endpoints = settings.endpoints.join(",");
            match (&settings.username, &source) {
                (Some(user), etcd_client::Error::GRpcStatus(status))
                    if matches!(
                        status.code(),
                        tonic::Code::InvalidArgument
                            | tonic::Code::FailedPrecondition
                            | tonic::Code::Unauthenticated
                            | tonic::Code::PermissionDenied
                    ) =>
                {
                    EtcdError::Auth {
                        user: user.clone(),
                        endpoints,
                        reason: status.message().to_owned(),
                        source,
                    }
                }
                _ => EtcdError::client(source, None, settings),
            }
        })
}

/// What probably causes a connection or read error, from its text: `"; …"` or empty.
fn hint(e: &etcd_client::Error, settings: &EtcdSettings) -> String {
    let endpoints = &settings.endpoints;
    // Debug shows the whole chain (TLS errors live in the transport error's sources).
    let text = format!("{e:?}");
    let tls = endpoints.iter().any(|e| e.starts_with("https://"));
    let ca = settings
        .ca_file
        .as_ref()
        .map_or("etcd.tls.ca_file".to_owned(), |p| p.display().to_string());
    let client_cert = settings.client_cert.as_ref();
    let closed = text.contains("connection closed")
        || text.contains("BrokenPipe")
        || text.contains("ConnectionReset");
    if text.contains("UnknownIssuer") {
        format!("; the server's certificate is not signed by a CA in {ca}")
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        "; the server's certificate does not name the endpoint's host: connect by a name it carries, or set [etcd.tls] server_name to one".into()
    } else if text.contains("CertificateRequired")
        || text.contains("BadCertificate")
        || text.contains("UnknownCA")
    {
        match client_cert {
            Some((cert, _)) => format!(
                "; the server refused the client certificate {}",
                cert.display()
            ),
            None => {
                "; the server requires a client certificate: set etcd.tls.cert_file and key_file"
                    .into()
            }
        }
    } else if text.contains("tls handshake eof") || text.contains("CorruptMessage") {
        "; the server broke off the TLS handshake: does it serve TLS on this port?".into()
    } else if tls && closed && client_cert.is_none() {
        "; the server closed the connection: if it requires client certificates (--client-cert-auth), set etcd.tls.cert_file and key_file".into()
    } else if !tls && closed {
        "; the server closed the connection: if it serves TLS, use https:// endpoints".into()
    } else if text.contains("message length too large") {
        format!(
            "; a response is larger than [etcd] max_message_size ({} bytes): raise it if values this large belong under the watched keys",
            settings.max_message_size
        )
    } else if text.contains("user name is empty") {
        "; etcd requires authentication: set etcd.username (--username) and a password source"
            .into()
    } else {
        String::new()
    }
}

fn is_denied(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::PermissionDenied)
}

/// The result of [`read_allowed`]: every readable watched key at one revision, and the
/// watched keys the user may not read.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Every key under the readable watched keys.
    pub snapshot: Snapshot,
    /// Watched keys (full keys, as given) that etcd refused with "permission denied".
    pub denied: Vec<String>,
    /// The endpoint(s) read from: the one that answered, after [`read_any`].
    pub endpoint: String,
    /// The cluster that answered (its response headers' `cluster_id`; 0 when nothing was
    /// read), so the follower notices a different cluster behind the same endpoints.
    pub cluster_id: u64,
    /// Whether the read was linearizable: its revision is then the cluster's current one and
    /// cannot be older than anything seen before on the same cluster.
    pub linearizable: bool,
}

/// Tries the endpoints in the one failover order ([`endpoints::Failover`]: one member at a
/// time, since etcd-client would otherwise balance over dead members too) and reads at the
/// first that answers, as [`read_allowed`]; after a round of failures, the last error. A local
/// configuration problem (a TLS or password file) stops at once.
pub async fn read_any(settings: &EtcdSettings, watched: &[String]) -> Result<Read, EtcdError> {
    let settings = &srv::discover(settings).await?;
    let mut order = endpoints::Failover::new(&settings.endpoints);
    loop {
        let endpoint = order.current().to_owned();
        let mut one = settings.clone();
        one.endpoints = vec![endpoint.clone()];
        let attempt = async {
            let mut client = connect(&one).await?;
            read_allowed(&mut client, &one, watched).await
        };
        match attempt.await {
            Ok(r) => return Ok(r),
            Err(e) if e.is_config() => return Err(e),
            Err(e) => {
                if order.len() > 1 {
                    tracing::warn!(reconfd.endpoint = %endpoint, "{e}; trying the next endpoint");
                }
                if let endpoints::Next::Backoff(_) = order.failed(false) {
                    return Err(e);
                }
            }
        }
    }
}

/// The error for watched keys `keys` that the configured user may not read.
pub fn denied(settings: &EtcdSettings, keys: Vec<String>) -> EtcdError {
    EtcdError::Denied {
        user: settings.username.clone(),
        keys,
        endpoints: settings.endpoints.join(","),
    }
}

/// Reads every key covered by `watched` (full keys) at one revision.
///
/// Each watched key becomes two range reads ([`key_ranges`]), the key itself and its
/// `/`-children, so `/services/apache` never transfers `/services/apachefoo`. Linearizable
/// ([`ReadMode`]): they go in as few transactions as etcd allows. Serializable: each is one
/// serializable `Range` request. Either way the later ones are pinned to the first one's
/// revision.
/// A watched key the user may not read does not fail the others: it is
/// listed in [`Read::denied`], and every other key is still read at one revision. Errors name
/// the user.
pub async fn read_allowed(
    client: &mut Client,
    settings: &EtcdSettings,
    watched: &[String],
) -> Result<Read, EtcdError> {
    let endpoints = &settings.endpoints;

    let mut kv = kv_client(client, settings);
    let fail =
        |what: String, source: etcd_client::Error| EtcdError::client(source, Some(what), settings);
    let mut snapshot = Snapshot::default();
    let mode = settings.read;
    let mut cluster_id = 0;
    let linearizable = mode == ReadMode::Linearizable;
    let prefixes = merge_prefixes(watched);
    match read_into(&mut kv, &prefixes, &mut snapshot, &mut cluster_id, mode).await {
        Ok(()) => {
            return Ok(Read {
                snapshot,
                denied: Vec::new(),
                endpoint: endpoints.join(","),
                cluster_id,
                linearizable,
            })
        }
        Err((_, source)) if is_denied(&source) => {}
        Err((what, source)) => return Err(fail(what, source)),
    }
    // One transaction holds every key, so one denied key fails them all: read each watched
    // key on its own to tell the readable from the denied, pinned to one revision (the
    // first readable key's).
    let mut each = watched.to_vec();
    each.sort();
    each.dedup();
    let mut snapshot = Snapshot::default();
    let mut denied = Vec::new();
    for key in each {
        let one = std::slice::from_ref(&key);
        match read_into(&mut kv, one, &mut snapshot, &mut cluster_id, mode).await {
            Ok(()) => {}
            Err((_, source)) if is_denied(&source) => denied.push(key),
            Err((what, source)) => return Err(fail(what, source)),
        }
    }
    Ok(Read {
        snapshot,
        denied,
        endpoint: endpoints.join(","),
        cluster_id,
        linearizable,
    })
}

/// A KV client that sends and accepts messages up to `[etcd] max_message_size`.
fn kv_client(client: &Client, settings: &EtcdSettings) -> KvClient {
    client
        .kv_client()
        .max_decoding_message_size(settings.max_message_size)
        .max_encoding_message_size(settings.max_message_size)
}

/// Where the cluster behind `client` is now, by a linearizable request (a count of `key`,
/// which the user may read): its answer comes from the leader's current state, so its
/// revision is never below one the cluster already had. Confirms a revision that seems to
/// have gone backwards before the follower re-reads everything.
pub async fn confirm(
    client: &Client,
    settings: &EtcdSettings,
    key: &str,
) -> Result<follower::Header, EtcdError> {
    let mut kv = kv_client(client, settings);
    let resp = kv
        .get(key, Some(GetOptions::new().with_count_only()))
        .await
        .map_err(|source| EtcdError::client(source, Some(key.to_owned()), settings))?;
    Ok(header_of(resp.header()))
}

/// The cluster and revision a response header names (zeros without a header).
pub fn header_of(header: Option<&etcd_client::ResponseHeader>) -> follower::Header {
    follower::Header {
        cluster_id: header.map_or(0, |h| h.cluster_id()),
        revision: header.map_or(0, |h| h.revision()),
    }
}

/// Whether a message from etcd exceeded `[etcd] max_message_size` (tonic's own limit error).
pub fn is_oversized(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.message().contains("message length too large"))
}

/// Reads every key under `prefixes` (merged watched keys) into `snapshot`, pinned to its
/// revision when it has one, else taking the first response's. On failure returns what was
/// being read and the error.
async fn read_into(
    kv: &mut KvClient,
    prefixes: &[String],
    snapshot: &mut Snapshot,
    cluster_id: &mut u64,
    mode: ReadMode,
) -> Result<(), (String, etcd_client::Error)> {
    match mode {
        ReadMode::Linearizable => read_txns(kv, prefixes, snapshot, cluster_id).await,
        ReadMode::Serializable => read_ranges(kv, prefixes, snapshot, cluster_id).await,
    }
}

/// [`read_into`] in transactions of up to [`MAX_TXN_OPS`] range reads.
async fn read_txns(
    kv: &mut KvClient,
    prefixes: &[String],
    snapshot: &mut Snapshot,
    cluster_id: &mut u64,
) -> Result<(), (String, etcd_client::Error)> {
    let ranges = key_ranges(prefixes);
    for chunk in ranges.chunks(MAX_TXN_OPS) {
        let txn_ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(key, end)| {
                let mut o = GetOptions::new();
                if let Some(end) = end {
                    o = o.with_range(end.as_str());
                }
                if snapshot.revision > 0 {
                    o = o.with_revision(snapshot.revision);
                }
                TxnOp::get(key.as_str(), Some(o))
            })
            .collect();
        let resp = kv.txn(Txn::new().and_then(txn_ops)).await.map_err(|e| {
            let what = chunk
                .iter()
                .filter(|(_, end)| end.is_none() || chunk.len() == 1)
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (what, e)
        })?;
        if snapshot.revision == 0 {
            snapshot.revision = resp.header().map_or(0, |h| h.revision());
        }
        if let Some(h) = resp.header() {
            *cluster_id = h.cluster_id();
        }
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                insert_kvs(snapshot, &get);
            }
        }
    }
    Ok(())
}

/// [`read_into`] in serializable `Range` requests, one per range, which etcd's gRPC proxy
/// answers from its cache when another client asked the same before.
///
/// The first request is not pinned, so every host starting at once asks the same question
/// and shares the proxy's answer; its revision R pins the others (answers at one past
/// revision never change, so those are cached safely). The proxy does not notice writes that
/// reach etcd another way, so R may be old; the watch from R + 1 brings the rest. If etcd has
/// compacted R away, that watch could never start, and a read served from the same cached
/// answer would meet the same fate forever: so R is checked once against etcd with a tiny
/// linearizable request (a count at R), and when it is gone the first range is read again
/// linearizably, at etcd's current revision (which the proxy caches in place of the old
/// answer).
async fn read_ranges(
    kv: &mut KvClient,
    prefixes: &[String],
    snapshot: &mut Snapshot,
    cluster_id: &mut u64,
) -> Result<(), (String, etcd_client::Error)> {
    for (key, end) in key_ranges(prefixes) {
        let what = || match end {
            Some(_) if key != "/" => key.trim_end_matches('/').to_owned(),
            _ => key.clone(),
        };
        let options = |serializable: bool, revision: i64| {
            let mut o = GetOptions::new();
            if let Some(end) = &end {
                o = o.with_range(end.as_str());
            }
            if serializable {
                o = o.with_serializable();
            }
            if revision > 0 {
                o = o.with_revision(revision);
            }
            o
        };
        let mut resp = kv
            .get(key.as_str(), Some(options(true, snapshot.revision)))
            .await
            .map_err(|e| (what(), e))?;
        if snapshot.revision == 0 {
            let revision = resp.header().map_or(0, |h| h.revision());
            let check = GetOptions::new().with_count_only().with_revision(revision);
            match kv.get(key.as_str(), Some(check)).await {
                Ok(current) => {
                    let current = current.header().map_or(0, |h| h.revision());
                    tracing::debug!(
                        revision,
                        current,
                        "serializable read; the watch catches up the difference"
                    );
                }
                Err(e) if is_compacted(&e) => {
                    tracing::info!(
                        revision,
                        "the serializable answer is older than etcd's compaction (or newer than etcd, restored from an older snapshot); reading at the current revision"
                    );
                    resp = kv
                        .get(key.as_str(), Some(options(false, 0)))
                        .await
                        .map_err(|e| (what(), e))?;
                }
                Err(e) => return Err((what(), e)),
            }
            snapshot.revision = resp.header().map_or(0, |h| h.revision());
        }
        if let Some(h) = resp.header() {
            *cluster_id = h.cluster_id();
        }
        insert_kvs(snapshot, &resp);
    }
    Ok(())
}

/// Whether etcd refused a read at a revision it does not have: compacted away, or a future
/// one (a cached answer from before etcd was restored from an older snapshot). By the
/// message: etcd says `OutOfRange`, but its gRPC proxy passes the error on as `Unknown`.
fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.message().contains("required revision has been compacted")
            || s.message().contains("required revision is a future revision"))
}

fn insert_kvs(snapshot: &mut Snapshot, get: &GetResponse) {
    for kv in get.kvs() {
        snapshot.put_bytes(kv.key(), kv.value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_are_each_key_and_its_children() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            key_ranges(&merge_prefixes(&w(&["/b", "/a/x", "/a"]))),
            vec![
                ("/a".to_owned(), None),
                ("/a/".to_owned(), some("/a0")),
                ("/b".to_owned(), None),
                ("/b/".to_owned(), some("/b0")),
            ]
        );
        assert_eq!(
            key_ranges(&merge_prefixes(&w(&["/", "/a"]))),
            vec![("/".to_owned(), some("0"))]
        );
    }
}
