//! confd.toml (`-config-file`), read as confd reads it: a flat table of confd's keys, whose
//! names mix `_` and `-` (`client_cakeys`, `log-level`, `sync-only`), matched
//! case-insensitively as Go's TOML decoder matches them. Besides the keys confd's structs
//! tag, the decoder also fills untagged fields by name, so `onetime` and `keepstagefile`
//! work in confd.toml too; they are accepted here.
//!
//! An unknown key is a warning naming file and line (confd ignores it silently); a key only
//! another backend uses is a warning saying so; a wrong type or a value reconfd cannot
//! honour is an error naming file and line. Precedence against the flags is [`super`]'s.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use toml::{Spanned, Value};

use super::Backend;
use crate::config::Password;
use crate::diag::Diagnostic;

/// What confd.toml sets; `None` where it says nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfdToml {
    /// `backend`
    pub backend: Option<Backend>,
    /// `nodes`
    pub nodes: Option<Vec<String>>,
    /// `srv_domain`
    pub srv_domain: Option<String>,
    /// `srv_record`
    pub srv_record: Option<String>,
    /// `scheme`, of the nodes found through DNS SRV.
    pub scheme: Option<String>,
    /// `prefix`
    pub prefix: Option<String>,
    /// `confdir`
    pub confdir: Option<PathBuf>,
    /// `client_cakeys`
    pub client_cakeys: Option<PathBuf>,
    /// `client_cert`
    pub client_cert: Option<PathBuf>,
    /// `client_key`
    pub client_key: Option<PathBuf>,
    /// `username`
    pub username: Option<String>,
    /// `password`; `Debug` is redacted.
    pub password: Option<Password>,
    /// `basic_auth`
    pub basic_auth: Option<bool>,
    /// `client_insecure` (no effect, as in confd).
    pub client_insecure: Option<bool>,
    /// `noop`
    pub noop: Option<bool>,
    /// `sync-only`
    pub sync_only: Option<bool>,
    /// `watch`
    pub watch: Option<bool>,
    /// `onetime` (confd's untagged `OneTime` field).
    pub onetime: Option<bool>,
    /// `keepstagefile` (confd's untagged `KeepStageFile` field).
    pub keep_stage_file: Option<bool>,
    /// `interval` and its line, checked when polling.
    pub interval: Option<(i64, usize)>,
    /// `log-level`, already mapped to reconfd's level.
    pub log_level: Option<&'static str>,
}

/// Reads `path`. A missing file is `Ok(None)`, as confd skips it silently (even one named
/// by `-config-file`). Returns the values and the warnings, or every error found.
pub fn read(path: &Path) -> Result<Option<(ConfdToml, Vec<Diagnostic>)>, Vec<Diagnostic>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(vec![Diagnostic::file(
                path,
                format!("cannot read confd config file: {e}"),
            )])
        }
    };
    let (config, mut warnings) = parse(path, &text)?;
    if config.password.is_some() {
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o044 != 0 {
                warnings.push(Diagnostic::file(
                    path,
                    format!(
                        "holds the etcd password but is readable by other users (mode {:04o}); run chmod 600 {}",
                        mode & 0o7777,
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(Some((config, warnings)))
}

/// What a key is to reconfd.
enum Key {
    Str(fn(&mut ConfdToml, String)),
    Bool(fn(&mut ConfdToml, bool)),
    Backend,
    Nodes,
    Interval,
    LogLevel,
    /// confd knows it, only another backend uses it: a warning with this reason.
    Ignored(&'static str),
}

const VAULT: &str = "only confd's vault backend uses it";

fn key(name: &str) -> Option<Key> {
    Some(match name {
        "backend" => Key::Backend,
        "nodes" => Key::Nodes,
        "interval" => Key::Interval,
        "log-level" => Key::LogLevel,
        "prefix" => Key::Str(|c, v| c.prefix = Some(v)),
        "confdir" => Key::Str(|c, v| c.confdir = Some(v.into())),
        "client_cakeys" => Key::Str(|c, v| c.client_cakeys = Some(v.into())),
        "client_cert" => Key::Str(|c, v| c.client_cert = Some(v.into())),
        "client_key" => Key::Str(|c, v| c.client_key = Some(v.into())),
        "username" => Key::Str(|c, v| c.username = Some(v)),
        "password" => Key::Str(|c, v| c.password = Some(Password::new(v))),
        "basic_auth" => Key::Bool(|c, v| c.basic_auth = Some(v)),
        "client_insecure" => Key::Bool(|c, v| c.client_insecure = Some(v)),
        "noop" => Key::Bool(|c, v| c.noop = Some(v)),
        "sync-only" => Key::Bool(|c, v| c.sync_only = Some(v)),
        "watch" => Key::Bool(|c, v| c.watch = Some(v)),
        "onetime" => Key::Bool(|c, v| c.onetime = Some(v)),
        "keepstagefile" => Key::Bool(|c, v| c.keep_stage_file = Some(v)),
        "auth_token" | "auth_type" | "app_id" | "user_id" | "role_id" | "secret_id" | "path" => {
            Key::Ignored(VAULT)
        }
        "table" => Key::Ignored("only confd's dynamodb backend uses it"),
        "separator" => Key::Ignored("only confd's redis backend uses it"),
        "file" | "filter" => Key::Ignored("only confd's file backend uses it"),
        "scheme" => Key::Str(|c, v| c.scheme = Some(v)),
        "srv_domain" => Key::Str(|c, v| c.srv_domain = Some(v)),
        "srv_record" => Key::Str(|c, v| c.srv_record = Some(v)),
        _ => return None,
    })
}

/// Parses the text of confd.toml.
pub fn parse(path: &Path, text: &str) -> Result<(ConfdToml, Vec<Diagnostic>), Vec<Diagnostic>> {
    let table: BTreeMap<Spanned<String>, Spanned<Value>> =
        toml::from_str(text).map_err(|e| vec![Diagnostic::from_toml(path, text, &e)])?;
    let mut c = ConfdToml::default();
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let name = k.get_ref().to_ascii_lowercase();
        let at = |message: String| Diagnostic::at(path, text, k.span().start, message);
        let line = crate::diag::line_of(text, k.span().start);
        let wrong = |what: &str| at(format!("{name} must be {what}"));
        let string = || v.get_ref().as_str().map(str::to_owned);
        match key(&name) {
            None => warnings.push(at(format!(
                "unknown key `{}` ignored (confd ignores it too)",
                k.get_ref()
            ))),
            Some(Key::Ignored(why)) => {
                warnings.push(at(format!("`{}` ignored: {why}", k.get_ref())))
            }
            Some(Key::Str(set)) => match string() {
                Some(s) => set(&mut c, s),
                None => errors.push(wrong("a string")),
            },
            Some(Key::Bool(set)) => match v.get_ref().as_bool() {
                Some(b) => set(&mut c, b),
                None => errors.push(wrong("true or false")),
            },
            Some(Key::Interval) => match v.get_ref().as_integer() {
                Some(i) => c.interval = Some((i, line)),
                None => errors.push(wrong("an integer (seconds)")),
            },
            Some(Key::Backend) => match string().map(|s| s.parse::<Backend>()) {
                Some(Ok(b)) => c.backend = Some(b),
                Some(Err(e)) => errors.push(at(e)),
                None => errors.push(wrong("a string")),
            },
            Some(Key::LogLevel) => match string().map(|s| super::log_level(&s)) {
                Some(Ok(l)) => c.log_level = Some(l),
                Some(Err(e)) => errors.push(at(e)),
                None => errors.push(wrong("a string")),
            },
            Some(Key::Nodes) => {
                let nodes: Option<Vec<String>> = v
                    .get_ref()
                    .as_array()
                    .and_then(|a| a.iter().map(|n| n.as_str().map(str::to_owned)).collect());
                match nodes {
                    Some(n) => c.nodes = Some(n),
                    None => errors.push(wrong("an array of strings")),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok((c, warnings))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (ConfdToml, Vec<String>) {
        let (c, w) = parse(Path::new("/etc/confd/confd.toml"), text).unwrap();
        (c, w.iter().map(ToString::to_string).collect())
    }

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("/c.toml"), text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn confd_keys_with_their_mixed_spelling() {
        let (c, w) = parsed(
            r#"backend = "etcdv3"
nodes = ["127.0.0.1:2379", "https://b:2379"]
prefix = "/dc1"
confdir = "/srv/confd"
client_cakeys = "/ca.pem"
client_cert = "/c.pem"
client_key = "/k.pem"
username = "u"
password = "hunter2"
basic_auth = true
noop = true
sync-only = true
watch = true
interval = 30
log-level = "warn"
onetime = true
keepstagefile = true
"#,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.backend, Some(Backend::Etcdv3));
        assert_eq!(
            c.nodes,
            Some(vec!["127.0.0.1:2379".into(), "https://b:2379".into()])
        );
        assert_eq!(c.prefix.as_deref(), Some("/dc1"));
        assert_eq!(c.confdir, Some("/srv/confd".into()));
        assert_eq!(c.client_cakeys, Some("/ca.pem".into()));
        assert_eq!(c.client_cert, Some("/c.pem".into()));
        assert_eq!(c.client_key, Some("/k.pem".into()));
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.password.as_ref().map(Password::expose), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            (
                c.basic_auth,
                c.noop,
                c.sync_only,
                c.watch,
                c.onetime,
                c.keep_stage_file
            ),
            (
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(true)
            )
        );
        assert_eq!(c.interval, Some((30, 14)));
        assert_eq!(c.log_level, Some("warn"));
    }

    #[test]
    fn keys_match_case_insensitively_as_in_go() {
        let (c, w) = parsed("Backend = \"etcd\"\nLOG-LEVEL = \"debug\"\nNoop = true\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.backend, Some(Backend::Etcd));
        assert_eq!(c.log_level, Some("debug"));
        assert_eq!(c.noop, Some(true));
    }

    #[test]
    fn unknown_and_other_backend_keys_warn_with_file_and_line() {
        let (_, w) = parsed("noop = false\nrelaod = 1\ntable = \"t\"\n[extra]\nx = 1\n");
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with("/etc/confd/confd.toml:2: unknown key `relaod` ignored"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("/etc/confd/confd.toml:3: `table` ignored: only confd's dynamodb"),
            "{w:?}"
        );
        assert!(
            w[2].starts_with("/etc/confd/confd.toml:4: unknown key `extra`"),
            "{w:?}"
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = errors("noop = true\ninterval = \"10\"\nbackend = \"consul\"\nlog-level = \"loud\"\nsrv_domain = 5\nnodes = \"a:1\"\n");
        assert_eq!(e.len(), 5, "{e:?}");
        assert_eq!(e[0], "/c.toml:2: interval must be an integer (seconds)");
        assert_eq!(
            e[1],
            "/c.toml:3: backend consul is not supported by reconfd (supported: etcd, etcdv3)"
        );
        assert_eq!(e[2], "/c.toml:4: not a valid level: \"loud\"");
        assert!(e[3].starts_with("/c.toml:5: srv_domain"), "{e:?}");
        assert_eq!(e[4], "/c.toml:6: nodes must be an array of strings");
        let e = errors("noop = true\nwatch = \n");
        assert!(e[0].starts_with("/c.toml:2:"), "{e:?}");
        // An empty srv_domain asks for nothing.
        let (c, _) = parse(Path::new("/c"), "srv_domain = \"\"\n").unwrap();
        assert_eq!(c.srv_domain.as_deref(), Some(""));
    }

    #[test]
    fn missing_file_is_skipped_and_a_readable_password_warns() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(&d.path().join("nope.toml")), Ok(None));
        let p = d.path().join("confd.toml");
        std::fs::write(&p, "username = \"u\"\npassword = \"hunter2\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, w) = read(&p).unwrap().unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0]
            .to_string()
            .contains("readable by other users (mode 0644)"));
        assert!(!w[0].to_string().contains("hunter2"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read(&p).unwrap().unwrap().1.is_empty());
    }
}
