//! `reconfd confd` (or a binary named `confd`): confd's command line and confd.toml, mapped
//! onto the same [`Settings`] reconfd's own command line builds, so an existing confd
//! invocation and `/etc/confd` tree run unchanged.
//!
//! - [`flags`] reads Go `flag` syntax and confd's flag set.
//! - [`config`] reads confd.toml.
//! - [`resource`] reads confd's template resources with confd's rules: the one reader behind
//!   `reconfd confd` (through [`crate::config::Dialect::Confd`]) and `reconfd migrate`.
//! - [`assemble`] (here) merges and checks flags, confd.toml, environment and defaults into
//!   an [`Invocation`]: the settings, the run mode and the warnings to log.
//!
//! # Precedence
//!
//! A flag given on the command line wins over the same key in confd.toml, which wins over
//! the environment (`CONFD_CLIENT_CERT`, `CONFD_CLIENT_KEY`, `CONFD_CLIENT_CAKEYS`, used only
//! when neither sets the value; `ETCDCTL_PEERS` for `-backend etcd` without nodes), which
//! wins over the defaults. confd's documentation promises exactly this, but confd itself
//! decodes confd.toml *over* the parsed flags, so there the file wins; we follow the
//! documentation, because a command line that cannot override a file is a trap.
//!
//! # Prefix
//!
//! `-prefix` (or `prefix` in confd.toml) is joined before each resource's own `prefix`
//! (`/dc1` + `/svc` = `/dc1/svc`), as reconfd's `--prefix` is. confd instead *replaces*
//! the resource's prefix with the global one when both are set. A tree that sets both
//! therefore reads other keys under reconfd; one that sets only one of them reads the same.
//!
//! Not here: running the result (see [`crate::cmd::confd`]).

pub mod config;
pub mod flags;
pub mod resource;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::config::raw::RawConfig;
use crate::config::Dialect;
use crate::config::{Overrides, Settings, SrvSettings};
use crate::exit;
use flags::Flags;

/// confd's default config file; a missing one is skipped.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/confd/confd.toml";
/// confd's default confdir.
pub const DEFAULT_CONFDIR: &str = "/etc/confd";
/// confd's default `-interval`, in seconds.
pub const DEFAULT_INTERVAL: i64 = 600;
/// The node used when none is given (confd's etcdv3 default; see [`Backend::Etcd`]).
pub const DEFAULT_NODE: &str = "127.0.0.1:2379";

/// The confd backends reconfd serves. Both read etcd's v3 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `etcd`, confd's default. confd up to 0.16 read etcd's v2 keyspace with it (default
    /// node `http://127.0.0.1:4001`); reconfd reads the v3 keyspace, as confd's `etcdv3`
    /// does, and its default node is `127.0.0.1:2379` (etcd v3's client port).
    Etcd,
    /// `etcdv3`.
    Etcdv3,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "etcd" => Ok(Backend::Etcd),
            "etcdv3" => Ok(Backend::Etcdv3),
            other => Err(format!(
                "backend {other} is not supported by reconfd (supported: etcd, etcdv3)"
            )),
        }
    }
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Etcd => "etcd",
            Backend::Etcdv3 => "etcdv3",
        }
    }
}

/// confd's (logrus's) level names mapped to reconfd's: `panic` and `fatal` become `error`,
/// reconfd never panics or dies on purpose at those levels.
pub fn log_level(confd: &str) -> Result<&'static str, String> {
    match confd.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => Ok("error"),
        "warn" | "warning" => Ok("warn"),
        "info" => Ok("info"),
        "debug" => Ok("debug"),
        "trace" => Ok("trace"),
        _ => Err(format!("not a valid level: {confd:?}")),
    }
}

/// How to run: confd's `-onetime`, `-watch`, or interval polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-onetime` (it wins over `-watch`, as in confd): `reconfd once`.
    Once,
    /// `-watch`: `reconfd run`, following etcd's watch.
    Watch,
    /// Neither: `reconfd run --interval`, reading etcd every interval.
    Poll(Duration),
}

/// Everything `reconfd confd` was told, checked.
#[derive(Debug)]
pub struct Invocation {
    /// The settings, as `reconfd run`/`once` would build them, with the confd dialect for
    /// resources and the password (if any) in memory.
    pub settings: Settings,
    /// How to run.
    pub mode: Mode,
    /// `-noop`
    pub noop: bool,
    /// `-sync-only`
    pub sync_only: bool,
    /// `-keep-stage-file` (no effect; see [`crate::cmd::confd`]).
    pub keep_stage_file: bool,
    /// The backend asked for.
    pub backend: Backend,
    /// Things to warn about once logging is up; never the password.
    pub warnings: Vec<String>,
}

/// Why `reconfd confd` cannot start: the messages and the exit code ([`exit::USAGE`] for the
/// command line, [`exit::CONFIG`] for confd.toml and the combination).
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// One line each, naming file and line where they come from confd.toml.
    pub errors: Vec<String>,
}

impl Failure {
    fn usage(message: String) -> Self {
        Failure {
            code: exit::USAGE,
            errors: vec![message],
        }
    }
}

/// The confd arguments of this process, when it was started as confd: through a file
/// named `confd` (`("confd", all arguments)`) or as `reconfd confd ...` (`("reconfd
/// confd", the arguments after confd)`). `None` for reconfd's own command line.
pub fn confd_args(args: &[OsString]) -> Option<(&'static str, &[OsString])> {
    let argv0 = args.first()?;
    if Path::new(argv0).file_name().is_some_and(|n| n == "confd") {
        return Some(("confd", &args[1..]));
    }
    match args.get(1) {
        Some(sub) if sub == "confd" => Some(("reconfd confd", &args[2..])),
        _ => None,
    }
}

/// The first non-empty of `values`.
fn first<T: AsRef<std::ffi::OsStr>>(values: impl IntoIterator<Item = Option<T>>) -> Option<T> {
    values
        .into_iter()
        .flatten()
        .find(|v| !v.as_ref().is_empty())
}

/// Merges the flags, confd.toml (read now), `env` and the defaults; see the module docs for
/// the precedence. Called again on SIGHUP, so an edited confd.toml takes effect.
pub fn assemble(
    flags: &Flags,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, Failure> {
    let config_path = flags
        .config_file
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG_FILE.into());
    let (file, config_file, mut warnings) = read_config(&config_path)?;
    let backend = backend_of(flags, &file, &mut warnings)?;
    let level = match &flags.log_level {
        Some(l) => log_level(l).map_err(Failure::usage)?,
        None => file.log_level.unwrap_or("info"),
    };
    let mode = mode_of(flags, &file, &config_path)?;

    let mut errors = Vec::new();
    let (ca, cert, key) = tls_files(flags, &file, &env, &mut errors);
    let tls = ca.is_some() || cert.is_some() || key.is_some();
    let endpoints = endpoints_of(flags, &file, backend, &env, tls, ca.is_some(), &mut errors);
    let (username, password) = credentials(flags, &file, &mut warnings);
    let mut srv = srv_settings(flags, &file, backend, ca.is_some(), &mut errors);
    srv_resolver(srv.as_mut(), &env, &mut errors);
    if srv.is_none() && (flags.scheme.is_some() || file.scheme.is_some()) {
        warnings.push("-scheme (scheme) has no effect without -srv-domain or -srv-record: confd uses it only for nodes found through DNS SRV records".into());
    }
    if !errors.is_empty() {
        if config_file.is_some() {
            errors = errors
                .iter()
                .map(|e| format!("{}: {e}", config_path.display()))
                .collect();
        }
        return Err(Failure {
            code: exit::CONFIG,
            errors,
        });
    }

    let overrides = Overrides {
        config: None,
        confdir: Some(
            first([flags.confdir.clone(), file.confdir.clone()])
                .unwrap_or_else(|| DEFAULT_CONFDIR.into()),
        ),
        endpoints,
        prefix: flags.prefix.clone().or(file.prefix.clone()),
        username: username.clone(),
        password_file: None,
        ca_file: ca,
        cert_file: cert,
        key_file: key,
        log_level: Some(level.to_owned()),
        // confd has no such flags: the default control socket, no metrics listener.
        metrics_listen: None,
        control_socket: None,
    };
    let mut settings =
        Settings::from_raw(RawConfig::default(), config_file, &overrides).map_err(|errors| {
            Failure {
                code: exit::CONFIG,
                errors: errors.iter().map(ToString::to_string).collect(),
            }
        })?;
    settings.etcd.password = password.filter(|_| username.is_some());
    if let Some(srv) = srv {
        // As confd: the SRV record's members replace -node; found at start (etcd::srv).
        settings.etcd.endpoints.clear();
        settings.etcd.srv = Some(srv);
    }
    settings.dialect = Dialect::Confd;
    let bool_of = |flag: Option<bool>, key: Option<bool>| flag.or(key).unwrap_or(false);
    Ok(Invocation {
        settings,
        mode,
        noop: bool_of(flags.noop, file.noop),
        sync_only: bool_of(flags.sync_only, file.sync_only),
        keep_stage_file: bool_of(flags.keep_stage_file, file.keep_stage_file),
        backend,
        warnings,
    })
}

/// confd.toml at `path`, with its warnings: empty (and no file named) when it does not
/// exist, as confd runs without one.
fn read_config(path: &Path) -> Result<(config::ConfdToml, Option<PathBuf>, Vec<String>), Failure> {
    match config::read(path) {
        Ok(Some((file, warnings))) => Ok((
            file,
            Some(path.to_owned()),
            warnings.iter().map(ToString::to_string).collect(),
        )),
        Ok(None) => Ok((config::ConfdToml::default(), None, Vec::new())),
        Err(errors) => Err(Failure {
            code: exit::CONFIG,
            errors: errors.iter().map(ToString::to_string).collect(),
        }),
    }
}

/// `-backend` (or `backend`), etcd by default; `etcd` warns that confd meant etcd's v2
/// keyspace by it, which reconfd does not read.
fn backend_of(
    flags: &Flags,
    file: &config::ConfdToml,
    warnings: &mut Vec<String>,
) -> Result<Backend, Failure> {
    let backend = match &flags.backend {
        Some(b) => b.parse().map_err(Failure::usage)?,
        None => file.backend.unwrap_or(Backend::Etcd),
    };
    if backend == Backend::Etcd {
        let how = if flags.backend.is_some() || file.backend.is_some() {
            "-backend etcd"
        } else {
            "the default backend, etcd,"
        };
        warnings.push(format!(
            "with {how} confd releases up to 0.16 read etcd's v2 keyspace; reconfd reads the v3 keyspace (as -backend etcdv3 does), so keys written through the v2 API (ETCDCTL_API=2) are not seen; say -backend etcdv3 to silence this"
        ));
    }
    Ok(backend)
}

/// reconfd's own `RECONFD_SRV_RESOLVER`: the DNS server to ask for the SRV record, as
/// `[etcd] srv_resolver` (confd has none).
fn srv_resolver(
    srv: Option<&mut SrvSettings>,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) {
    let (Some(srv), Some(addr)) = (srv, env("RECONFD_SRV_RESOLVER")) else {
        return;
    };
    match addr.parse() {
        Ok(a) => srv.resolver = Some(a),
        Err(_) => errors.push(format!(
            "RECONFD_SRV_RESOLVER {addr:?} must be IP:PORT, e.g. \"127.0.0.1:53\""
        )),
    }
}

/// `-onetime`, `-watch` or polling every `-interval` seconds (flags over confd.toml).
fn mode_of(flags: &Flags, file: &config::ConfdToml, config_path: &Path) -> Result<Mode, Failure> {
    let bool_of = |flag: Option<bool>, key: Option<bool>| flag.or(key).unwrap_or(false);
    let onetime = bool_of(flags.onetime, file.onetime);
    let watch = bool_of(flags.watch, file.watch);
    Ok(if onetime {
        Mode::Once
    } else if watch {
        Mode::Watch
    } else {
        let (secs, bad) = match (flags.interval, file.interval) {
            (Some(i), _) => (
                i,
                Failure::usage("-interval must be at least 1 second".into()),
            ),
            (None, Some((i, line))) => (
                i,
                Failure {
                    code: exit::CONFIG,
                    errors: vec![format!(
                        "{}:{line}: interval must be at least 1 second",
                        config_path.display()
                    )],
                },
            ),
            (None, None) => (DEFAULT_INTERVAL, Failure::usage(String::new())),
        };
        match u64::try_from(secs) {
            Ok(s) if s > 0 => Mode::Poll(Duration::from_secs(s)),
            _ => return Err(bad),
        }
    })
}

/// `-client-ca-keys`, `-client-cert`, `-client-key` (flags, confd.toml, environment); a
/// certificate without its key (or the reverse) is an error.
#[allow(clippy::type_complexity)]
fn tls_files(
    flags: &Flags,
    file: &config::ConfdToml,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
    let ca = first([
        flags.client_ca_keys.clone(),
        file.client_cakeys.clone(),
        env("CONFD_CLIENT_CAKEYS").map(PathBuf::from),
    ]);
    let cert = first([
        flags.client_cert.clone(),
        file.client_cert.clone(),
        env("CONFD_CLIENT_CERT").map(PathBuf::from),
    ]);
    let key = first([
        flags.client_key.clone(),
        file.client_key.clone(),
        env("CONFD_CLIENT_KEY").map(PathBuf::from),
    ]);
    match (&cert, &key) {
        (Some(_), None) => errors.push(
            "-client-cert (client_cert, CONFD_CLIENT_CERT) is set without -client-key (client_key, CONFD_CLIENT_KEY)"
                .to_owned(),
        ),
        (None, Some(_)) => errors.push(
            "-client-key (client_key, CONFD_CLIENT_KEY) is set without -client-cert (client_cert, CONFD_CLIENT_CERT)"
                .to_owned(),
        ),
        _ => {}
    }
    (ca, cert, key)
}

/// The endpoints from `-node` (or confd.toml's `nodes`, or `ETCDCTL_PEERS`), `https://` when
/// TLS files are given; an `https://` node needs the CA.
fn endpoints_of(
    flags: &Flags,
    file: &config::ConfdToml,
    backend: Backend,
    env: &impl Fn(&str) -> Option<String>,
    tls: bool,
    ca: bool,
    errors: &mut Vec<String>,
) -> Vec<String> {
    let nodes: Vec<String> = if !flags.nodes.is_empty() {
        flags.nodes.clone()
    } else if let Some(n) = file.nodes.clone().filter(|n| !n.is_empty()) {
        n
    } else if let (Backend::Etcd, Some(peers)) = (backend, env("ETCDCTL_PEERS")) {
        peers.split(',').map(str::to_owned).collect()
    } else {
        vec![DEFAULT_NODE.to_owned()]
    };
    let scheme = if tls { "https" } else { "http" };
    let mut endpoints = Vec::new();
    for node in nodes.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if node.contains("://") {
            if tls && node.starts_with("http://") {
                errors.push(format!(
                    "node {node} uses http://, but TLS files are given (-client-ca-keys, -client-cert, -client-key or their confd.toml keys); write https:// or just host:port"
                ));
            }
            endpoints.push(node.to_owned());
        } else {
            endpoints.push(format!("{scheme}://{node}"));
        }
    }
    if endpoints.iter().any(|e| e.starts_with("https://")) && !ca {
        errors.push(
            "https:// nodes need -client-ca-keys (client_cakeys in confd.toml, or CONFD_CLIENT_CAKEYS): reconfd trusts only the CA named there, never the system's CA store"
                .to_owned(),
        );
    }
    endpoints
}

/// The user and password (an empty password is none), with warnings about what confd
/// accepted but means nothing here (or leaks the password).
fn credentials(
    flags: &Flags,
    file: &config::ConfdToml,
    warnings: &mut Vec<String>,
) -> (Option<String>, Option<crate::config::Password>) {
    let bool_of = |flag: Option<bool>, key: Option<bool>| flag.or(key).unwrap_or(false);
    let username = first([flags.username.clone(), file.username.clone()]);
    let password = flags
        .password
        .clone()
        .or(file.password.clone())
        .filter(|p| !p.expose().is_empty());
    if flags
        .password
        .as_ref()
        .is_some_and(|p| !p.expose().is_empty())
    {
        warnings.push(
            "-password puts the etcd password on the command line, where other users of this host can read it (ps, /proc/PID/cmdline); put it in confd.toml (password = \"...\", chmod 600) instead, or move to `reconfd run` with --password-file or a systemd credential (LoadCredential=)"
                .to_owned(),
        );
    }
    if password.is_some() && username.is_none() {
        warnings.push("a password is given without -username (username); it is not used".into());
    }
    if bool_of(flags.basic_auth, file.basic_auth) && username.is_none() {
        warnings.push(
            "-basic-auth (basic_auth) is set without -username (username); it has no effect".into(),
        );
    }
    if bool_of(flags.client_insecure, file.client_insecure) {
        warnings.push("-client-insecure (client_insecure) has no effect: confd never passed it to its etcd client, and reconfd always verifies etcd's certificate".into());
    }
    (username, password)
}

/// confd's DNS SRV discovery: `-srv-record` as given, else `_BACKEND._tcp.DOMAIN` for
/// `-srv-domain` (confd's name: `_etcd._tcp.DOMAIN` or `_etcdv3._tcp.DOMAIN`), the members
/// reached with `-scheme` (default `http`; `https` needs the CA as any `https://` node does).
fn srv_settings(
    flags: &Flags,
    file: &config::ConfdToml,
    backend: Backend,
    have_ca: bool,
    errors: &mut Vec<String>,
) -> Option<SrvSettings> {
    let domain = first([flags.srv_domain.clone(), file.srv_domain.clone()]);
    let record = first([flags.srv_record.clone(), file.srv_record.clone()]);
    let record = match (record, domain) {
        (Some(r), _) => r.trim_end_matches('.').to_owned(),
        (None, Some(d)) => format!("_{}._tcp.{}", backend.name(), d.trim_end_matches('.')),
        (None, None) => return None,
    };
    let scheme =
        first([flags.scheme.clone(), file.scheme.clone()]).unwrap_or_else(|| "http".into());
    let tls = match scheme.as_str() {
        "http" => false,
        "https" => true,
        other => {
            errors.push(format!("-scheme (scheme) {other:?} must be http or https"));
            false
        }
    };
    if tls && !have_ca {
        errors.push("-scheme https needs -client-ca-keys (client_cakeys in confd.toml, or CONFD_CLIENT_CAKEYS): reconfd trusts only the CA named there, never the system's CA store".into());
    }
    Some(SrvSettings {
        record,
        tls,
        resolver: None,
    })
}

impl Invocation {
    /// One line for the log: what confd's flags amount to.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let mode = match self.mode {
            Mode::Once => "onetime".to_owned(),
            Mode::Watch => "watch".to_owned(),
            Mode::Poll(d) => format!("interval {}s", d.as_secs()),
        };
        let nodes = match &s.etcd.srv {
            Some(srv) => format!("from DNS SRV {}", srv.record),
            None => s.etcd.endpoints.join(", "),
        };
        format!(
            "confd mode: backend {}, nodes {nodes}, confdir {}, prefix {:?}, {mode}{}{}",
            self.backend.name(),
            s.confdir.display(),
            s.prefix,
            if self.noop { ", noop" } else { "" },
            if self.sync_only { ", sync-only" } else { "" },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Password;

    fn flags(args: &[&str]) -> Flags {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match flags::parse(&args).unwrap() {
            flags::Parsed::Flags(f) => *f,
            flags::Parsed::Help => panic!("help"),
        }
    }

    /// `args` plus `-config-file FILE` holding `toml`, with an empty environment.
    fn with_file(args: &[&str], toml: &str) -> (tempfile::TempDir, Result<Invocation, Failure>) {
        with_env(args, toml, &[])
    }

    fn with_env(
        args: &[&str],
        toml: &str,
        env: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<Invocation, Failure>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("confd.toml");
        std::fs::write(&p, toml).unwrap();
        let mut f = flags(args);
        f.config_file = Some(p);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = assemble(&f, |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        });
        (d, r)
    }

    #[test]
    fn defaults_are_confds() {
        let (_d, r) = with_file(&[], "");
        let i = r.unwrap();
        assert_eq!(i.settings.confdir, PathBuf::from("/etc/confd"));
        assert_eq!(i.settings.etcd.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(i.settings.prefix, "");
        assert_eq!(i.settings.log_level, "info");
        assert_eq!(i.settings.dialect, Dialect::Confd);
        assert_eq!(i.mode, Mode::Poll(Duration::from_secs(600)));
        assert_eq!(i.backend, Backend::Etcd);
        assert!(i.warnings[0].contains("v2 keyspace"), "{:?}", i.warnings);
        assert!(!i.noop && !i.sync_only && !i.keep_stage_file);
    }

    #[test]
    fn flags_win_over_the_file() {
        let toml = "backend = \"etcdv3\"\nnodes = [\"file:1\"]\nprefix = \"/file\"\nconfdir = \"/file\"\nlog-level = \"error\"\nnoop = true\nwatch = true\ninterval = 5\n";
        let (_d, r) = with_file(&[], toml);
        let i = r.unwrap();
        assert_eq!(i.settings.etcd.endpoints, vec!["http://file:1"]);
        assert_eq!(i.settings.prefix, "/file");
        assert_eq!(i.settings.confdir, PathBuf::from("/file"));
        assert_eq!(i.settings.log_level, "error");
        assert!(i.noop);
        assert_eq!(i.mode, Mode::Watch);
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
        let (_d, r) = with_file(
            &[
                "-node",
                "flag:1",
                "-prefix",
                "/flag",
                "-confdir",
                "/flag",
                "-log-level",
                "debug",
                "-noop=false",
                "-watch=false",
                "-interval",
                "7",
            ],
            toml,
        );
        let i = r.unwrap();
        assert_eq!(i.settings.etcd.endpoints, vec!["http://flag:1"]);
        assert_eq!(i.settings.prefix, "/flag");
        assert_eq!(i.settings.confdir, PathBuf::from("/flag"));
        assert_eq!(i.settings.log_level, "debug");
        assert!(!i.noop);
        assert_eq!(i.mode, Mode::Poll(Duration::from_secs(7)));
    }

    #[test]
    fn onetime_wins_over_watch() {
        let (_d, r) = with_file(&["-onetime", "-watch", "-backend", "etcdv3"], "");
        assert_eq!(r.unwrap().mode, Mode::Once);
        let (_d, r) = with_file(&["-watch", "-backend", "etcdv3"], "onetime = true\n");
        assert_eq!(r.unwrap().mode, Mode::Once);
    }

    #[test]
    fn nodes_get_a_scheme_and_tls_files_make_it_https() {
        let (_d, r) = with_file(
            &["-backend", "etcdv3", "-node", "a:1", "-node", "http://b:2"],
            "",
        );
        assert_eq!(
            r.unwrap().settings.etcd.endpoints,
            vec!["http://a:1", "http://b:2"]
        );
        let (_d, r) = with_env(
            &["-backend", "etcdv3", "-node", "a:1", "-node", "https://b:2"],
            "",
            &[
                ("CONFD_CLIENT_CAKEYS", "/env/ca.pem"),
                ("CONFD_CLIENT_CERT", "/env/c.pem"),
                ("CONFD_CLIENT_KEY", "/env/k.pem"),
            ],
        );
        let s = r.unwrap().settings;
        assert_eq!(s.etcd.endpoints, vec!["https://a:1", "https://b:2"]);
        assert_eq!(s.etcd.ca_file, Some("/env/ca.pem".into()));
        assert_eq!(
            s.etcd.client_cert,
            Some(("/env/c.pem".into(), "/env/k.pem".into()))
        );
        // The environment only fills what flags and file leave empty.
        let (_d, r) = with_env(
            &["-backend", "etcdv3", "-client-ca-keys", "/flag/ca.pem"],
            "client_cakeys = \"/file/ca.pem\"\n",
            &[("CONFD_CLIENT_CAKEYS", "/env/ca.pem")],
        );
        assert_eq!(
            r.unwrap().settings.etcd.ca_file,
            Some("/flag/ca.pem".into())
        );
        let (_d, r) = with_env(
            &["-backend", "etcdv3", "-client-ca-keys="],
            "client_cakeys = \"/file/ca.pem\"\n",
            &[("CONFD_CLIENT_CAKEYS", "/env/ca.pem")],
        );
        assert_eq!(
            r.unwrap().settings.etcd.ca_file,
            Some("/file/ca.pem".into())
        );
    }

    #[test]
    fn tls_mistakes_are_errors() {
        let (_d, r) = with_file(&["-backend", "etcdv3", "-client-cert", "/c.pem"], "");
        let f = r.unwrap_err();
        assert_eq!(f.code, exit::CONFIG);
        assert!(
            f.errors[0].contains("without -client-key"),
            "{:?}",
            f.errors
        );
        let (_d, r) = with_file(&["-backend", "etcdv3", "-node", "https://a:1"], "");
        assert!(r.unwrap_err().errors[0].contains("need -client-ca-keys"));
        let (_d, r) = with_file(
            &[
                "-backend",
                "etcdv3",
                "-node",
                "http://a:1",
                "-client-ca-keys",
                "/ca",
            ],
            "",
        );
        assert!(r.unwrap_err().errors[0].contains("uses http://"));
    }

    #[test]
    fn backend_and_level_errors_are_usage_errors_on_the_command_line() {
        let (_d, r) = with_file(&["-backend", "consul"], "");
        let f = r.unwrap_err();
        assert_eq!(f.code, exit::USAGE);
        assert_eq!(
            f.errors,
            vec!["backend consul is not supported by reconfd (supported: etcd, etcdv3)"]
        );
        let (_d, r) = with_file(&["-log-level", "loud"], "");
        assert_eq!(r.unwrap_err().errors, vec!["not a valid level: \"loud\""]);
        let (_d, r) = with_file(&["-interval", "0"], "");
        assert_eq!(r.unwrap_err().code, exit::USAGE);
        // -interval is not checked when it is not used.
        let (_d, r) = with_file(&["-interval", "0", "-onetime"], "");
        assert!(r.is_ok());
        let (_d, r) = with_file(&[], "backend = \"redis\"\n");
        let f = r.unwrap_err();
        assert_eq!(f.code, exit::CONFIG);
        assert!(
            f.errors[0].ends_with(
                "confd.toml:1: backend redis is not supported by reconfd (supported: etcd, etcdv3)"
            ),
            "{:?}",
            f.errors
        );
        let (_d, r) = with_file(&[], "interval = -1\n");
        let f = r.unwrap_err();
        assert_eq!(f.code, exit::CONFIG);
        assert!(f.errors[0].ends_with("confd.toml:1: interval must be at least 1 second"));
    }

    #[test]
    fn password_reaches_the_settings_and_no_message() {
        let (_d, r) = with_file(
            &[
                "-backend",
                "etcdv3",
                "-username",
                "u",
                "-password",
                "hunter2",
            ],
            "",
        );
        let i = r.unwrap();
        assert_eq!(
            i.settings.etcd.password.as_ref().map(Password::expose),
            Some("hunter2")
        );
        assert_eq!(i.settings.etcd.username.as_deref(), Some("u"));
        assert_eq!(i.warnings.len(), 1);
        assert!(i.warnings[0].contains("other users of this host"));
        assert!(!format!("{i:?}").contains("hunter2"));
        // From confd.toml: no command-line warning.
        let (_d, r) = with_file(
            &["-backend", "etcdv3"],
            "username = \"u\"\npassword = \"s3cret\"\n",
        );
        let i = r.unwrap();
        assert_eq!(
            i.settings.etcd.password.as_ref().map(Password::expose),
            Some("s3cret")
        );
        // The temp file is 0644 here: that warning, and no other.
        assert!(i.warnings.iter().all(|w| !w.contains("s3cret")));
        assert!(i
            .warnings
            .iter()
            .any(|w| w.contains("readable by other users")));
    }

    #[test]
    fn a_missing_config_file_is_skipped() {
        let mut f = flags(&["-backend", "etcdv3"]);
        f.config_file = Some("/nonexistent/confd.toml".into());
        let i = assemble(&f, |_| None).unwrap();
        assert_eq!(i.settings.config_file, None);
    }

    #[test]
    fn etcdctl_peers_serve_backend_etcd_only() {
        let (_d, r) = with_env(&[], "", &[("ETCDCTL_PEERS", "http://a:1,http://b:2")]);
        assert_eq!(
            r.unwrap().settings.etcd.endpoints,
            vec!["http://a:1", "http://b:2"]
        );
        let (_d, r) = with_env(
            &["-backend", "etcdv3"],
            "",
            &[("ETCDCTL_PEERS", "http://a:1")],
        );
        assert_eq!(
            r.unwrap().settings.etcd.endpoints,
            vec!["http://127.0.0.1:2379"]
        );
    }

    #[test]
    fn invoked_as_confd_or_as_a_subcommand() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let args = a(&["/usr/local/bin/confd", "-onetime"]);
        assert_eq!(confd_args(&args), Some(("confd", &args[1..])));
        let args = a(&["reconfd", "confd", "-onetime"]);
        assert_eq!(confd_args(&args), Some(("reconfd confd", &args[2..])));
        assert_eq!(confd_args(&a(&["reconfd", "once"])), None);
        assert_eq!(confd_args(&a(&["/usr/bin/confdx"])), None);
    }

    #[test]
    fn confd_levels_map_to_ours() {
        for (c, ours) in [
            ("panic", "error"),
            ("fatal", "error"),
            ("error", "error"),
            ("warn", "warn"),
            ("warning", "warn"),
            ("INFO", "info"),
            ("debug", "debug"),
        ] {
            assert_eq!(log_level(c), Ok(ours), "{c}");
        }
        assert!(log_level("").is_err());
    }
}
