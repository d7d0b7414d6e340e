//! The daemon's settings, built in three stages (zincati's Fragments → Inputs → Settings):
//!
//! 1. [`raw::RawConfig`]: `reconfd.toml` as written, every field optional, unknown fields
//!    rejected with their line.
//! 2. [`Overrides`]: what the command line and the `RECONFD_*` environment say (clap merges
//!    those two; the command line wins).
//! 3. [`Settings`]: defaults < file < environment < command line, validated into domain types.
//!
//! Resources (`conf.d/*.toml`) are not this module's business: see [`crate::resource`].

pub mod dialect;
pub mod etcd;
pub mod log_level;
pub mod observe;
pub mod raw;
pub mod specifier;
pub mod value;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::Diagnostic;
pub use dialect::{Dialect, EngineKind};
pub use etcd::{
    EtcdSettings, Password, ReadMode, SrvSettings, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_REREAD_JITTER,
    MIN_MAX_MESSAGE_SIZE,
};
pub use observe::{Listen, ObserveSettings};
use raw::RawConfig;
pub use value::{Dur, Mode, NameOrId, RateLimit, ReloadLimit};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/reconfd/reconfd.toml";
/// The default confdir.
pub const DEFAULT_CONFDIR: &str = "/etc/reconfd";
/// The endpoint used when none is configured.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// Values from the command line and environment; `None`/empty means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config` / `RECONFD_CONFIG`: an explicit file must exist.
    pub config: Option<PathBuf>,
    /// `--confdir`
    pub confdir: Option<PathBuf>,
    /// `--endpoint` (repeatable); replaces the file's list when given.
    pub endpoints: Vec<String>,
    /// `--prefix`
    pub prefix: Option<String>,
    /// `--username`
    pub username: Option<String>,
    /// `--password-file`
    pub password_file: Option<PathBuf>,
    /// `--ca-file`
    pub ca_file: Option<PathBuf>,
    /// `--cert-file`
    pub cert_file: Option<PathBuf>,
    /// `--key-file`
    pub key_file: Option<PathBuf>,
    /// `--log-level`
    pub log_level: Option<String>,
    /// `--metrics-listen`
    pub metrics_listen: Option<String>,
    /// `--control-socket`
    pub control_socket: Option<PathBuf>,
}

/// Validated daemon settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Where `conf.d/` and `templates/` live.
    pub confdir: PathBuf,
    /// Global prefix, joined before each resource's prefix.
    pub prefix: String,
    /// How to reach etcd.
    pub etcd: EtcdSettings,
    /// Batching defaults, overridable per resource.
    pub batch: BatchSettings,
    /// Log level filter (`info` unless set).
    pub log_level: String,
    /// How resource files are found and read: reconfd's strict rules, or confd's under
    /// `reconfd confd`. It travels with the settings so `once`, the daemon and its SIGHUP
    /// reload all read conf.d the same way.
    pub dialect: Dialect,
    /// `[metrics]` and `[control]`: the metrics listener and the control socket.
    pub observe: ObserveSettings,
}

/// Per-resource batching: quiet period, maximum wait, reload rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Quiet period that restarts on each change; zero renders at once.
    pub debounce: Duration,
    /// Longest delay under continuous churn.
    pub max_wait: Duration,
    /// Reloads allowed per window; `None` means unlimited.
    pub reload_limit: Option<RateLimit>,
    /// Reconcile the first change after a quiet period at once, then debounce the rest.
    pub leading: bool,
    /// When a render that lost keys is held instead of installed (`min_keys`, `max_shrink`).
    pub guard: crate::guard::Guard,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(500),
            max_wait: Duration::from_secs(5),
            reload_limit: Some("10/min".parse().expect("valid literal")),
            leading: false,
            guard: crate::guard::Guard::default(),
        }
    }
}

impl BatchSettings {
    /// Applies the fields a raw table sets.
    pub fn merged(self, raw: &raw::RawBatch) -> Self {
        Self {
            debounce: raw.debounce.map_or(self.debounce, |d| d.0),
            max_wait: raw.max_wait.map_or(self.max_wait, |d| d.0),
            reload_limit: raw.reload_limit.map_or(self.reload_limit, |l| l.limit()),
            leading: raw.leading.unwrap_or(self.leading),
            guard: crate::guard::Guard {
                min_keys: raw.min_keys.unwrap_or(self.guard.min_keys),
                max_shrink: raw.max_shrink.unwrap_or(self.guard.max_shrink),
            },
        }
    }
}

impl Settings {
    /// Reads the config file (if any) and applies the overrides.
    ///
    /// An explicit `--config` that is missing is an error; a missing default file means
    /// defaults. Every problem found is returned, each naming the file and line.
    pub fn assemble(o: &Overrides) -> Result<Settings, Vec<Diagnostic>> {
        let (path, explicit) = match &o.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let (raw, config_file) = match std::fs::read_to_string(&path) {
            Ok(text) => (parse(&path, &text).map_err(|d| vec![d])?, Some(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (RawConfig::default(), None)
            }
            Err(e) => {
                return Err(vec![Diagnostic::file(
                    &path,
                    format!("cannot read config file: {e}"),
                )])
            }
        };
        Self::from_raw(raw, config_file, o)
            .and_then(|s| crate::config::specifier::expand_settings(s, o))
    }

    /// Validates `raw` (the config file `config_file` as read, or nothing) with the
    /// overrides applied. [`Settings::assemble`] without the reading; `reconfd confd`, which
    /// reads confd.toml instead, calls it with an empty `raw`.
    pub fn from_raw(
        raw: RawConfig,
        config_file: Option<PathBuf>,
        o: &Overrides,
    ) -> Result<Settings, Vec<Diagnostic>> {
        let file = config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("<command line>"));
        let mut errors = Vec::new();
        let etcd = etcd_settings(&raw, o, &file, &mut errors);

        let batch = BatchSettings::default().merged(&raw.batch);
        let log_level = o
            .log_level
            .clone()
            .or(raw.log_level.clone().map(String::from))
            .unwrap_or_else(|| "info".into());
        let observe = ObserveSettings::assemble(
            &raw.metrics,
            &raw.control,
            o.metrics_listen.as_deref(),
            o.control_socket.as_deref(),
            &file,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            config_file,
            confdir: o
                .confdir
                .clone()
                .or(raw.confdir)
                .unwrap_or_else(|| DEFAULT_CONFDIR.into()),
            prefix: o.prefix.clone().or(raw.prefix).unwrap_or_default(),
            etcd,
            batch,
            log_level,
            dialect: Dialect::Reconfd,
            observe,
        })
    }

    /// Whether TLS is in use (the endpoints say `https://`).
    pub fn uses_tls(&self) -> bool {
        self.etcd
            .endpoints
            .iter()
            .any(|e| e.starts_with("https://"))
    }
}

/// Whether `[etcd] srv_domain` (or `srv_record`) asks for DNS discovery; an error when
/// endpoints are configured too, since the two cannot both say where etcd is.
fn srv_wanted(raw: &RawConfig, o: &Overrides, file: &Path, errors: &mut Vec<Diagnostic>) -> bool {
    let e = &raw.etcd;
    let set = |v: &Option<String>| v.as_deref().is_some_and(|d| !d.trim().is_empty());
    let wanted = set(&e.srv_domain) || set(&e.srv_record);
    if wanted && o.endpoints.is_empty() && e.endpoints.is_some() {
        errors.push(Diagnostic::file(
            file,
            "etcd.endpoints and etcd.srv_domain are both set: give the members or the DNS domain that lists them, not both",
        ));
    }
    // --endpoint on the command line wins over discovery.
    wanted && o.endpoints.is_empty()
}

/// The discovery settings when `wanted`: the record (TLS picks `_etcd-client-ssl`) and the
/// resolver address, refused with the file when it is not `IP:PORT`.
fn srv_settings(
    raw: &RawConfig,
    wanted: bool,
    tls: bool,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<SrvSettings> {
    if !wanted {
        return None;
    }
    let e = &raw.etcd;
    let record = match e.srv_record.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(r) => r.trim_end_matches('.').to_owned(),
        None => SrvSettings::record_for(e.srv_domain.as_deref().unwrap_or_default(), tls),
    };
    let resolver = match e.srv_resolver.as_deref() {
        None | Some("") => None,
        Some(addr) => match addr.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(Diagnostic::file(
                    file,
                    format!("etcd.srv_resolver {addr:?} must be IP:PORT, e.g. \"127.0.0.1:53\""),
                ));
                None
            }
        },
    };
    Some(SrvSettings {
        record,
        tls,
        resolver,
    })
}

/// Parses the text of a config file.
pub fn parse(path: &Path, text: &str) -> Result<RawConfig, Diagnostic> {
    toml::from_str(text).map_err(|e| Diagnostic::from_toml(path, text, &e))
}

/// `host:port` becomes `http://host:port`, as etcd's own tools read it.
fn normalize_endpoint(e: &str) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_owned()
    } else {
        format!("http://{e}")
    }
}

/// The `[etcd]` table merged with the command line; problems go to `errors`.
fn etcd_settings(
    raw: &RawConfig,
    o: &Overrides,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) -> EtcdSettings {
    let (endpoints, srv_wanted) = endpoints(raw, o, file, errors);
    let (ca_file, client_cert) = tls_files(raw, o, file, errors);
    let (username, password_file, password_credential, password_keyring) =
        password_sources(raw, o, file, errors);
    let srv = srv_settings(raw, srv_wanted, ca_file.is_some(), file, errors);
    let server_name = raw.etcd.tls.server_name.clone().filter(|n| !n.is_empty());
    tls_matches_scheme(
        &endpoints,
        ca_file.is_some(),
        client_cert.is_some(),
        server_name.is_some(),
        file,
        errors,
    );
    EtcdSettings {
        endpoints,
        username,
        password: None,
        password_file,
        password_credential,
        password_keyring,
        ca_file,
        client_cert,
        server_name,
        read: raw.etcd.read.unwrap_or_default(),
        max_message_size: max_message_size(raw, file, errors),
        reread_jitter: raw
            .etcd
            .reread_jitter
            .map_or(DEFAULT_REREAD_JITTER, |d| d.0),
        srv,
        prefer_first_after: match raw.etcd.prefer_first_after {
            None => Some(etcd::PREFER_FIRST_AFTER),
            Some(d) if d.0.is_zero() => None,
            Some(d) => Some(d.0),
        },
    }
}

/// The endpoints (none yet when DNS SRV will find them), checked for one `http(s)://` scheme;
/// and whether SRV discovery is wanted.
fn endpoints(
    raw: &RawConfig,
    o: &Overrides,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<String>, bool) {
    let srv_wanted = srv_wanted(raw, o, file, errors);
    let endpoints = if !o.endpoints.is_empty() {
        o.endpoints.clone()
    } else if srv_wanted {
        // Filled by DNS discovery at start (etcd::srv).
        Vec::new()
    } else {
        raw.etcd
            .endpoints
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_ENDPOINT.to_owned()])
    };
    let endpoints: Vec<String> = endpoints.iter().map(|e| normalize_endpoint(e)).collect();
    if endpoints.is_empty() && !srv_wanted {
        errors.push(Diagnostic::file(file, "etcd.endpoints is empty"));
    }
    for e in &endpoints {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            errors.push(Diagnostic::file(
                file,
                format!("endpoint {e:?} must use http:// or https://"),
            ));
        }
    }
    if schemes(&endpoints).len() > 1 {
        errors.push(Diagnostic::file(
            file,
            "endpoints mix http:// and https://; use one scheme for all",
        ));
    }
    (endpoints, srv_wanted)
}

/// The schemes the endpoints use.
fn schemes(endpoints: &[String]) -> std::collections::BTreeSet<&str> {
    endpoints
        .iter()
        .map(|e| e.split("://").next().unwrap_or(""))
        .collect()
}

/// The CA file and the client certificate and key (both or neither).
#[allow(clippy::type_complexity)]
fn tls_files(
    raw: &RawConfig,
    o: &Overrides,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) -> (Option<PathBuf>, Option<(PathBuf, PathBuf)>) {
    let ca_file = o.ca_file.clone().or(raw.etcd.tls.ca_file.clone());
    let cert = o.cert_file.clone().or(raw.etcd.tls.cert_file.clone());
    let key = o.key_file.clone().or(raw.etcd.tls.key_file.clone());
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            errors.push(Diagnostic::file(
                file,
                "etcd.tls.cert_file is set without etcd.tls.key_file",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(Diagnostic::file(
                file,
                "etcd.tls.key_file is set without etcd.tls.cert_file",
            ));
            None
        }
    };
    (ca_file, client_cert)
}

/// The user and where the password comes from: file, systemd credential or keyring.
#[allow(clippy::type_complexity)]
fn password_sources(
    raw: &RawConfig,
    o: &Overrides,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) -> (Option<String>, Option<PathBuf>, Option<String>, bool) {
    let username = o
        .username
        .clone()
        .or(raw.etcd.username.clone())
        .filter(|u| !u.is_empty());
    let password_file = o.password_file.clone().or(raw.etcd.password_file.clone());
    let password_credential = raw.etcd.password_credential.clone();
    let password_keyring = raw.etcd.password_keyring.unwrap_or(false);
    if username.is_none() {
        for (set, name) in [
            (password_file.is_some(), "etcd.password_file"),
            (password_credential.is_some(), "etcd.password_credential"),
            (password_keyring, "etcd.password_keyring"),
        ] {
            if set {
                errors.push(Diagnostic::file(
                    file,
                    format!("{name} is set but etcd.username is not"),
                ));
            }
        }
    }
    if let Some(name) = &password_credential {
        // systemd credential names are file names in $CREDENTIALS_DIRECTORY.
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            errors.push(Diagnostic::file(
                file,
                format!(
                    "etcd.password_credential {name:?} is not a credential name (a file name, as in LoadCredential=NAME:PATH)"
                ),
            ));
        }
    }
    (
        username,
        password_file,
        password_credential,
        password_keyring,
    )
}

/// TLS settings need `https://` endpoints, and `https://` needs a CA. With mixed or invalid
/// schemes only that error is reported (by [`endpoints`]).
fn tls_matches_scheme(
    endpoints: &[String],
    ca_file: bool,
    client_cert: bool,
    server_name: bool,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) {
    let schemes = schemes(endpoints);
    let only = |scheme: &str| schemes.len() == 1 && schemes.contains(scheme);
    if only("http") {
        for (set, name) in [
            (ca_file, "etcd.tls.ca_file is"),
            (client_cert, "etcd.tls.cert_file and key_file are"),
            (server_name, "etcd.tls.server_name is"),
        ] {
            if set {
                errors.push(Diagnostic::file(
                    file,
                    format!(
                        "{name} set, but the endpoints use http://: TLS needs https:// endpoints"
                    ),
                ));
            }
        }
    } else if only("https") && !ca_file {
        // etcd-client's rustls setup loads no system roots: without a CA nothing verifies.
        errors.push(Diagnostic::file(
            file,
            "https:// endpoints need etcd.tls.ca_file (--ca-file): reconfd trusts only the CA named there, never the system's CA store",
        ));
    }
}

/// `[etcd] max_message_size`, at least [`MIN_MAX_MESSAGE_SIZE`].
fn max_message_size(raw: &RawConfig, file: &Path, errors: &mut Vec<Diagnostic>) -> usize {
    match raw.etcd.max_message_size {
        None => DEFAULT_MAX_MESSAGE_SIZE,
        Some(n) if n < MIN_MAX_MESSAGE_SIZE as u64 => {
            errors.push(Diagnostic::file(
                file,
                format!("etcd.max_message_size = {n} is below {MIN_MAX_MESSAGE_SIZE} bytes (2 MiB), which ordinary etcd responses exceed; the default is {DEFAULT_MAX_MESSAGE_SIZE} (64 MiB)"),
            ));
            DEFAULT_MAX_MESSAGE_SIZE
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("reconfd.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    /// `[batch]` sets the guard's defaults for every resource; a bad percentage names its line.
    #[test]
    fn batch_sets_the_guard_defaults() {
        let (_d, p) = write("[batch]\nmin_keys = 2\nmax_shrink = \"none\"\n");
        let s = Settings::assemble(&Overrides {
            config: Some(p),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.batch.guard,
            crate::guard::Guard {
                min_keys: 2,
                max_shrink: crate::guard::MaxShrink::Off
            }
        );
        let (_d, p) = write("[batch]\nmax_shrink = \"150%\"\n");
        let errs = Settings::assemble(&Overrides {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        let msg = errs[0].to_string();
        assert!(
            msg.contains("reconfd.toml:2") && msg.contains("\"150%\""),
            "{msg}"
        );
    }

    #[test]
    fn file_then_overrides() {
        let (_d, p) = write(
            "confdir = \"/x\"\nprefix = \"/dc1\"\n[etcd]\nendpoints = [\"127.0.0.1:1\"]\n[batch]\ndebounce = \"0\"\nleading = true\n",
        );
        let s = Settings::assemble(&Overrides {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.confdir, PathBuf::from("/x"));
        assert_eq!(s.prefix, "/dc1");
        assert_eq!(s.etcd.endpoints, vec!["http://127.0.0.1:1"]);
        assert_eq!(s.batch.debounce, Duration::ZERO);
        assert_eq!(s.batch.max_wait, Duration::from_secs(5));
        assert!(s.batch.leading);
        let s = Settings::assemble(&Overrides {
            config: Some(p),
            prefix: Some("/dc2".into()),
            endpoints: vec!["http://127.0.0.1:2".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.prefix, "/dc2");
        assert_eq!(s.etcd.endpoints, vec!["http://127.0.0.1:2"]);
    }

    #[test]
    fn etcd_message_size_and_reread_jitter() {
        let assemble = |text: &str| {
            let (_d, p) = write(text);
            Settings::assemble(&Overrides {
                config: Some(p),
                ..Default::default()
            })
        };
        let s = assemble("").unwrap();
        assert_eq!(s.etcd.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(s.etcd.reread_jitter, DEFAULT_REREAD_JITTER);
        let s = assemble("[etcd]\nmax_message_size = 134217728\nreread_jitter = \"0\"\n").unwrap();
        assert_eq!(s.etcd.max_message_size, 128 << 20);
        assert_eq!(s.etcd.reread_jitter, Duration::ZERO);
        let err = assemble("[etcd]\nmax_message_size = 1000\n").unwrap_err();
        assert!(
            err[0].to_string().contains("etcd.max_message_size = 1000"),
            "{err:?}"
        );
    }

    #[test]
    fn explicit_missing_config_is_an_error() {
        let err = Settings::assemble(&Overrides {
            config: Some("/nonexistent/r.toml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err[0].to_string().contains("/nonexistent/r.toml"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_field_and_bad_duration_name_the_line() {
        let (_d, p) = write("confdir = \"/x\"\n[batch]\ndebounce = \"5 parsecs\"\n");
        let err = Settings::assemble(&Overrides {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err[0].line, Some(3), "{}", err[0]);
        assert!(err[0].message.contains("5 parsecs"), "{}", err[0]);
        let (_d, p) = write("[etcd]\nendpoint = [\"x\"]\n");
        let err = Settings::assemble(&Overrides {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err[0].line, Some(2));
        assert!(
            err[0].message.contains("unknown field `endpoint`"),
            "{}",
            err[0]
        );
    }

    #[test]
    fn mixed_schemes_and_half_client_cert_are_errors() {
        let (_d, p) = write(
            "[etcd]\nendpoints = [\"http://a:1\", \"https://b:1\"]\n[etcd.tls]\ncert_file = \"/c.pem\"\n",
        );
        let err = Settings::assemble(&Overrides {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
    }

    #[test]
    fn tls_needs_https_and_https_needs_a_ca() {
        let (_d, p) = write(
            "[etcd]\nendpoints = [\"http://a:1\"]\n[etcd.tls]\nca_file = \"/ca.pem\"\nserver_name = \"etcd\"\n",
        );
        let err = Settings::assemble(&Overrides {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].message.contains("ca_file") && err[0].message.contains("https://"));
        assert!(err[1].message.contains("server_name"));
        let (_d, p) = write("[etcd]\nendpoints = [\"https://a:1\"]\n");
        let err = Settings::assemble(&Overrides {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err[0].message.contains("need etcd.tls.ca_file"), "{err:?}");
        let s = Settings::assemble(&Overrides {
            config: Some(p),
            ca_file: Some("/ca.pem".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(s.uses_tls());
    }

    #[test]
    fn password_sources_need_a_username_and_credential_names_are_file_names() {
        let (_d, p) = write("[etcd]\npassword_credential = \"../x\"\npassword_keyring = true\n");
        let err = Settings::assemble(&Overrides {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap_err();
        let text: Vec<String> = err.iter().map(|e| e.message.clone()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("password_credential is set but etcd.username is not"));
        assert!(text[1].contains("password_keyring is set"));
        assert!(text[2].contains("not a credential name"));
        let (_d, p) =
            write("[etcd]\nusername = \"reconfd\"\npassword_credential = \"etcd-password\"\n");
        let s = Settings::assemble(&Overrides {
            config: Some(p),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.etcd.password_credential.as_deref(), Some("etcd-password"));
    }
}
