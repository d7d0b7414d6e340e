//! Serde mirror of `reconfd.toml`, exactly as written: every field optional, unknown fields
//! rejected (so `relaod_cmd`-style typos are errors with a line), values already typed.

use std::path::PathBuf;

use serde::Deserialize;

use super::value::{Dur, ReloadLimit};

/// The daemon config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where `conf.d/` and `templates/` live.
    pub confdir: Option<PathBuf>,
    /// Prepended to every resource's prefix.
    pub prefix: Option<String>,
    /// `info`, `debug`, ... or an `EnvFilter` directive; refused with its line when invalid.
    pub log_level: Option<crate::config::log_level::LogLevel>,
    /// Connection to etcd.
    #[serde(default)]
    pub etcd: RawEtcd,
    /// Batching defaults for every resource.
    #[serde(default)]
    pub batch: RawBatch,
    /// The metrics, `/healthz` and `/readyz` listener.
    #[serde(default)]
    pub metrics: super::observe::RawMetrics,
    /// The control socket of `reconfd status`.
    #[serde(default)]
    pub control: super::observe::RawControl,
}

/// `[etcd]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    /// Every member of the cluster.
    pub endpoints: Option<Vec<String>>,
    /// A username turns authentication on.
    pub username: Option<String>,
    /// File holding the password (one trailing newline is ignored); refused when group- or
    /// world-readable.
    pub password_file: Option<PathBuf>,
    /// Name of a systemd credential holding the password, read from
    /// `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=NAME:…` in the unit).
    pub password_credential: Option<String>,
    /// Read the password from the system keyring (Secret Service), service `reconfd`,
    /// account = username.
    pub password_keyring: Option<bool>,
    /// `"linearizable"` (default) or `"serializable"`: how full reads ask etcd.
    pub read: Option<super::ReadMode>,
    /// Largest gRPC message sent to or accepted from etcd, in bytes (reads and watches).
    pub max_message_size: Option<u64>,
    /// Longest random delay before a full re-read after an outage ("0" disables).
    pub reread_jitter: Option<Dur>,
    /// Discover the endpoints from DNS SRV records under this domain.
    pub srv_domain: Option<String>,
    /// The full SRV record name to ask for instead of `_etcd-client[-ssl]._tcp.DOMAIN`.
    pub srv_record: Option<String>,
    /// `IP:PORT` of the DNS server to ask instead of the system's resolver.
    pub srv_resolver: Option<String>,
    /// After a failover, how long to stay on another member before going back to the first
    /// one once it answers; `"0"` never goes back.
    pub prefer_first_after: Option<super::value::Dur>,
    /// TLS files.
    #[serde(default)]
    pub tls: RawTls,
}

/// `[etcd.tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM bundle of the CA(s) that sign the etcd server certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM client key (PKCS#8, RSA or SEC1).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when it differs from the endpoints' host.
    pub server_name: Option<String>,
}

/// `[batch]`, also the shape of the per-resource overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    /// Quiet period that restarts on every change.
    pub debounce: Option<Dur>,
    /// Longest a change waits under continuous churn.
    pub max_wait: Option<Dur>,
    /// Reloads allowed per window, e.g. `"10/min"`, or `"none"`.
    pub reload_limit: Option<ReloadLimit>,
    /// Reconcile the first change after a quiet period at once.
    pub leading: Option<bool>,
    /// Hold a render while the watched keys hold fewer keys than this.
    pub min_keys: Option<usize>,
    /// Hold a render whose keys dropped by more than this since the last install.
    pub max_shrink: Option<crate::guard::MaxShrink>,
}
