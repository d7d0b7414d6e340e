//! How to reach etcd, as the settings say it: endpoints, user, where the password comes from,
//! TLS files; and [`Password`], the type that holds a password without ever showing it.
//!
//! Pure data. Reading the password from its sources is [`crate::etcd::credentials`]'s job,
//! loading the TLS files [`crate::etcd::tls`]'s; both take these settings.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Every member, as URLs (`http://host:port` or `https://host:port`).
    pub endpoints: Vec<String>,
    /// Set when authentication is wanted.
    pub username: Option<String>,
    /// A password already in memory (`reconfd confd`'s `-password` or confd.toml); when
    /// set it is the only source consulted. Never read from reconfd.toml or the
    /// environment, and its `Debug` is redacted.
    pub password: Option<Password>,
    /// Password file; the first password source consulted (the order is
    /// [`crate::etcd::credentials`]'s).
    pub password_file: Option<PathBuf>,
    /// systemd credential name; the second source.
    pub password_credential: Option<String>,
    /// Whether to use the system keyring; the third source. The environment is the last.
    pub password_keyring: bool,
    /// CA bundle for verifying the servers; required with `https://` endpoints.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, always both or neither.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Name to verify the servers' certificates against instead of the endpoints' host.
    pub server_name: Option<String>,
    /// How full reads ask etcd (serializable ones a gRPC proxy can answer from its cache).
    pub read: ReadMode,
    /// The largest gRPC message reconfd sends or accepts from etcd, in bytes (`[etcd]
    /// max_message_size`), for reads and watches alike, so a value the read accepts never
    /// freezes the watch.
    pub max_message_size: usize,
    /// The longest random delay before a full re-read after an outage, a failover, a compaction
    /// or a restore (`[etcd] reread_jitter`), so a fleet does not read the whole prefix at the
    /// same instant; zero reads at once.
    pub reread_jitter: Duration,
    /// Discover the endpoints from DNS SRV instead (`[etcd] srv_domain`): `endpoints` is then
    /// empty until [`crate::etcd::srv::discover`] fills it.
    pub srv: Option<SrvSettings>,
    /// After a failover, stay at least this long on another member, then go back to the first
    /// endpoint (the preferred one, e.g. in the same rack) once it answers; `None` never goes
    /// back.
    pub prefer_first_after: Option<std::time::Duration>,
}

/// The default of [`EtcdSettings::prefer_first_after`].
pub const PREFER_FIRST_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the endpoints come from when DNS SRV discovery is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvSettings {
    /// The SRV record asked for: `_etcd-client._tcp.DOMAIN`, `_etcd-client-ssl._tcp.DOMAIN`
    /// with TLS, or `[etcd] srv_record` as given.
    pub record: String,
    /// Whether the endpoints are `https://` (a CA is configured).
    pub tls: bool,
    /// The DNS server to ask instead of the system's (`[etcd] srv_resolver`).
    pub resolver: Option<std::net::SocketAddr>,
}

impl SrvSettings {
    /// The record for `domain`: `_etcd-client-ssl._tcp.DOMAIN` with TLS, else
    /// `_etcd-client._tcp.DOMAIN` (etcd's own discovery names).
    pub fn record_for(domain: &str, tls: bool) -> String {
        let service = if tls {
            "_etcd-client-ssl"
        } else {
            "_etcd-client"
        };
        format!("{service}._tcp.{}", domain.trim_end_matches('.'))
    }
}

/// The default `[etcd] max_message_size`: 64 MiB. Above the largest request etcd accepts even
/// with `--max-request-bytes` raised as far as its docs advise (10 MiB), so any value etcd
/// stores can be read and watched; far below gRPC's 2 GiB, so a mistaken huge range costs at
/// most that much memory instead of a surprise.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The smallest `[etcd] max_message_size` accepted: etcd's own default request limit (1.5 MiB)
/// rounded up, below which ordinary values would fail.
pub const MIN_MAX_MESSAGE_SIZE: usize = 2 * 1024 * 1024;

/// The default `[etcd] reread_jitter`.
pub const DEFAULT_REREAD_JITTER: Duration = Duration::from_secs(1);

/// How full reads ask etcd for the watched keys (`[etcd] read`).
///
/// Either way every key of one read is at one revision. A serializable read may be older than
/// etcd's current state (a gRPC proxy's cached answer, a member that lags): the follower's
/// watch, which starts right after the read's revision, delivers every change since, so the
/// local copy catches up and no change is missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Transactions of range reads, answered at the cluster's current revision (every read
    /// reaches etcd's leader, even through a gRPC proxy).
    #[default]
    Linearizable,
    /// Serializable `Range` requests, the form etcd's gRPC proxy answers from its cache: the
    /// first fixes the revision, the later ones are pinned to it.
    Serializable,
}

/// A password. Its `Debug` is redacted and it has no `Display`: the only way to the text is
/// [`Password::expose`], called where the password is handed to the etcd client.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(text: String) -> Self {
        Password(text)
    }

    /// The password itself, for the etcd client and the keyring only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Password::new("hunter2".into());
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert!(!format!("{:?}", Some(&p)).contains("hunter2"));
    }
}
