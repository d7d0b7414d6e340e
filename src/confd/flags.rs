//! confd's command line: Go's `flag` syntax, parsed by hand (no crate parses it), and
//! confd's flag set, read into [`Flags`].
//!
//! The syntax, as Go's `flag` package reads it: `-flag` and `--flag` are the same; a value
//! is `-flag=value` or `-flag value` (the next argument, even one starting with `-`); a
//! boolean flag is `-flag` or `-flag=true|false` and never takes the next argument; parsing
//! stops at `--` (dropped) or at the first argument that is not a flag (`-` alone is not
//! one). Errors are worded as Go words them (`flag provided but not defined: -x`).
//!
//! Not here: what the flags mean together, confd.toml and precedence (see [`super`]).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::Password;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `-flag`, `-flag=true|false`.
    Bool,
    /// `-flag value`, `-flag=value`.
    Value,
}

/// One flag of confd's: its name, kind and what `-h` says about it. `rejected` flags are
/// confd's but mean nothing to reconfd; using one is an error that says why.
struct Def {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    rejected: Option<&'static str>,
}

const fn ok(name: &'static str, kind: Kind, help: &'static str) -> Def {
    Def {
        name,
        kind,
        help,
        rejected: None,
    }
}

const fn no(name: &'static str, why: &'static str) -> Def {
    Def {
        name,
        kind: Kind::Value,
        help: "",
        rejected: Some(why),
    }
}

const VAULT: &str = "only confd's vault backend uses it";

/// confd's flags (confd 0.16/0.17 `confd -h`, plus the removed `-secret-keyring`).
const DEFS: &[Def] = &[
    ok(
        "backend",
        Kind::Value,
        "backend to use: etcd or etcdv3, both read etcd's v3 API (default \"etcd\")",
    ),
    ok(
        "basic-auth",
        Kind::Bool,
        "accepted; -username turns authentication on by itself",
    ),
    ok(
        "client-ca-keys",
        Kind::Value,
        "CA bundle (PEM) that signs etcd's certificates (env CONFD_CLIENT_CAKEYS)",
    ),
    ok(
        "client-cert",
        Kind::Value,
        "client certificate, PEM (env CONFD_CLIENT_CERT)",
    ),
    ok(
        "client-key",
        Kind::Value,
        "client key, PEM (env CONFD_CLIENT_KEY)",
    ),
    ok(
        "client-insecure",
        Kind::Bool,
        "accepted and ignored, as confd ignores it for etcd",
    ),
    ok(
        "confdir",
        Kind::Value,
        "confd conf directory (default \"/etc/confd\")",
    ),
    ok(
        "config-file",
        Kind::Value,
        "the confd config file, skipped when missing (default \"/etc/confd/confd.toml\")",
    ),
    ok(
        "interval",
        Kind::Value,
        "seconds between reads of etcd without -watch (default 600)",
    ),
    ok(
        "keep-stage-file",
        Kind::Bool,
        "accepted; has no effect (reconfd stages only files that change)",
    ),
    ok(
        "log-level",
        Kind::Value,
        "panic, fatal, error, warn, info or debug",
    ),
    ok(
        "node",
        Kind::Value,
        "etcd member, host:port or URL; repeat for each (default 127.0.0.1:2379)",
    ),
    ok("noop", Kind::Bool, "only show pending changes"),
    ok("onetime", Kind::Bool, "run once and exit"),
    ok(
        "password",
        Kind::Value,
        "etcd password (visible to other users in ps: prefer confd.toml)",
    ),
    ok(
        "prefix",
        Kind::Value,
        "key path prefix, joined before each resource's prefix",
    ),
    ok(
        "scheme",
        Kind::Value,
        "accepted and ignored: confd uses it only with DNS SRV discovery",
    ),
    ok(
        "sync-only",
        Kind::Bool,
        "sync without check_cmd and reload_cmd",
    ),
    ok(
        "username",
        Kind::Value,
        "etcd username; turns authentication on",
    ),
    ok("version", Kind::Bool, "print version and exit"),
    ok(
        "watch",
        Kind::Bool,
        "watch etcd for changes instead of reading it every -interval",
    ),
    no("app-id", VAULT),
    no("auth-token", VAULT),
    no("auth-type", VAULT),
    no("file", "only confd's file backend uses it"),
    no("filter", "only confd's file backend uses it"),
    no("path", VAULT),
    no("role-id", VAULT),
    no("secret-id", VAULT),
    no(
        "secret-keyring",
        "confd's crypt functions (cget, cgetv, ...) are gone from confd and reconfd has none",
    ),
    no("separator", "only confd's redis backend uses it"),
    ok(
        "srv-domain",
        Kind::Value,
        "find the etcd members in DNS SRV record _BACKEND._tcp.DOMAIN (e.g. _etcd._tcp.DOMAIN), instead of -node",
    ),
    ok(
        "srv-record",
        Kind::Value,
        "the full SRV record to find the etcd members in, e.g. _etcd-client._tcp.example.com",
    ),
    no("table", "only confd's dynamodb backend uses it"),
    no("user-id", VAULT),
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// `-h`, `-help`, `--help`: print [`usage`].
    Help,
    /// Run with these flags (`-version` is one of them).
    Flags(Box<Flags>),
}

/// confd's flags as given. `None` (or empty) means "not on the command line", so confd.toml
/// or the default applies; a flag that is given wins over confd.toml.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    /// `-backend`
    pub backend: Option<String>,
    /// `-basic-auth`
    pub basic_auth: Option<bool>,
    /// `-client-ca-keys`
    pub client_ca_keys: Option<PathBuf>,
    /// `-client-cert`
    pub client_cert: Option<PathBuf>,
    /// `-client-key`
    pub client_key: Option<PathBuf>,
    /// `-client-insecure` (no effect, as in confd).
    pub client_insecure: Option<bool>,
    /// `-confdir`
    pub confdir: Option<PathBuf>,
    /// `-config-file`
    pub config_file: Option<PathBuf>,
    /// `-interval`, in seconds as given (checked when polling).
    pub interval: Option<i64>,
    /// `-keep-stage-file`
    pub keep_stage_file: Option<bool>,
    /// `-log-level`, confd's name for it.
    pub log_level: Option<String>,
    /// `-node`, each occurrence, as given.
    pub nodes: Vec<String>,
    /// `-noop`
    pub noop: Option<bool>,
    /// `-onetime`
    pub onetime: Option<bool>,
    /// `-password`; `Debug` is redacted.
    pub password: Option<Password>,
    /// `-prefix`
    pub prefix: Option<String>,
    /// `-scheme`: of the nodes found through DNS SRV (no effect without, as in confd).
    pub scheme: Option<String>,
    /// `-srv-domain`
    pub srv_domain: Option<String>,
    /// `-srv-record`
    pub srv_record: Option<String>,
    /// `-sync-only`
    pub sync_only: Option<bool>,
    /// `-username`
    pub username: Option<String>,
    /// `-version`
    pub version: bool,
    /// `-watch`
    pub watch: Option<bool>,
}

/// Why the command line could not be read; `Display` is Go's wording where Go has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag confd does not have.
    #[error("flag provided but not defined: -{0}")]
    Undefined(String),
    /// `---x`, `-=x`.
    #[error("bad flag syntax: {0}")]
    Syntax(String),
    /// A value flag at the end of the command line.
    #[error("flag needs an argument: -{0}")]
    NeedsArgument(String),
    /// `-noop=maybe`.
    #[error("invalid boolean value {value:?} for -{name}: parse error")]
    Bool {
        /// The flag.
        name: String,
        /// What was given.
        value: String,
    },
    /// A value that does not parse, e.g. `-interval x`.
    #[error("invalid value {value:?} for flag -{name}: {why}")]
    Value {
        /// The flag.
        name: String,
        /// What was given.
        value: String,
        /// Go's reason ("parse error", "value out of range").
        why: &'static str,
    },
    /// One of confd's flags that reconfd cannot honour.
    #[error("-{name} is not supported by reconfd: {why}")]
    Rejected {
        /// The flag.
        name: String,
        /// Why, and what to do instead.
        why: &'static str,
    },
    /// An argument after the flags; confd takes none.
    #[error("unexpected argument {0:?}: confd takes flags only")]
    Positional(String),
    /// Arguments are read as UTF-8.
    #[error("argument {0:?} is not valid UTF-8")]
    NotUnicode(OsString),
}

/// Parses confd's command line (the arguments after the program name).
pub fn parse(args: &[OsString]) -> Result<Parsed, FlagError> {
    let mut flags = Flags::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| FlagError::NotUnicode(arg.clone()))?;
        let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
            return Err(FlagError::Positional(arg.to_owned()));
        };
        let body = match body.strip_prefix('-') {
            Some("") => {
                // `--` ends the flags; anything after it is a positional argument.
                return match rest.next() {
                    Some(a) => Err(FlagError::Positional(a.to_string_lossy().into_owned())),
                    None => Ok(Parsed::Flags(Box::new(flags))),
                };
            }
            Some(b) => b,
            None => body,
        };
        if body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Syntax(arg.to_owned()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(def) = DEFS.iter().find(|d| d.name == name) else {
            if name == "h" || name == "help" {
                return Ok(Parsed::Help);
            }
            return Err(FlagError::Undefined(name.to_owned()));
        };
        if let Some(why) = def.rejected {
            return Err(FlagError::Rejected {
                name: name.to_owned(),
                why,
            });
        }
        let value = match (def.kind, inline) {
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Bool, Some(v)) | (Kind::Value, Some(v)) => v.to_owned(),
            (Kind::Value, None) => match rest.next() {
                Some(v) => v
                    .to_str()
                    .ok_or_else(|| FlagError::NotUnicode(v.clone()))?
                    .to_owned(),
                None => return Err(FlagError::NeedsArgument(name.to_owned())),
            },
        };
        set(&mut flags, name, def.kind, value)?;
    }
    Ok(Parsed::Flags(Box::new(flags)))
}

/// Stores one flag's value.
fn set(f: &mut Flags, name: &str, kind: Kind, value: String) -> Result<(), FlagError> {
    if kind == Kind::Bool {
        let b = parse_bool(&value).ok_or_else(|| FlagError::Bool {
            name: name.to_owned(),
            value: value.clone(),
        })?;
        let slot = match name {
            "basic-auth" => &mut f.basic_auth,
            "client-insecure" => &mut f.client_insecure,
            "keep-stage-file" => &mut f.keep_stage_file,
            "noop" => &mut f.noop,
            "onetime" => &mut f.onetime,
            "sync-only" => &mut f.sync_only,
            "watch" => &mut f.watch,
            "version" => {
                f.version = b;
                return Ok(());
            }
            _ => unreachable!("boolean flag -{name} has no slot"),
        };
        *slot = Some(b);
        return Ok(());
    }
    match name {
        "backend" => f.backend = Some(value),
        "client-ca-keys" => f.client_ca_keys = Some(value.into()),
        "client-cert" => f.client_cert = Some(value.into()),
        "client-key" => f.client_key = Some(value.into()),
        "confdir" => f.confdir = Some(value.into()),
        "config-file" => f.config_file = Some(value.into()),
        "interval" => {
            f.interval = Some(parse_int(&value).map_err(|why| FlagError::Value {
                name: name.to_owned(),
                value,
                why,
            })?)
        }
        "log-level" => f.log_level = Some(value),
        "node" => f.nodes.push(value),
        "password" => f.password = Some(Password::new(value)),
        "prefix" => f.prefix = Some(value),
        "scheme" => f.scheme = Some(value),
        "srv-domain" => f.srv_domain = Some(value),
        "srv-record" => f.srv_record = Some(value),
        "username" => f.username = Some(value),
        _ => unreachable!("flag -{name} has no slot"),
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, as `flag` reads an int: a sign, then decimal, or
/// `0x`/`0o`/`0b`/`0` prefixed hex, octal, binary, octal; `_` only between digits (or
/// right after a prefix), as in Go literals.
fn parse_int(s: &str) -> Result<i64, &'static str> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h.strip_prefix('_').unwrap_or(h))
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o.strip_prefix('_').unwrap_or(o))
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.strip_prefix('_').unwrap_or(b))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].strip_prefix('_').unwrap_or(&lower[1..]))
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return Err("parse error");
    }
    let body = body.replace('_', "");
    if !body.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error");
    }
    let magnitude = u64::from_str_radix(&body, radix).map_err(|_| "value out of range")?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
            .ok_or("value out of range")
    } else {
        i64::try_from(magnitude).map_err(|_| "value out of range")
    }
}

/// The `-h` text. `prog` is how the user called us (`confd` or `reconfd confd`).
pub fn usage(prog: &str) -> String {
    format!(
        "Usage of {prog}:\n\
         confd's command line, run by reconfd: flags as Go writes them (-flag, --flag, \
         -flag=value, -flag value).\n\
         Flags given here win over the same key in confd.toml (confd's documentation says so; \
         confd itself lets the file win).\n\n{}",
        flag_list("    \t")
    )
}

/// `reconfd help confd` and reconfd-confd(1): what the subcommand does and confd's flags.
pub fn about() -> String {
    format!(
        "Run with confd's command line, confd.toml and /etc/confd tree.\n\n\
         `reconfd confd -onetime -backend etcdv3 -node 127.0.0.1:2379`: everything after \
         `confd` is confd's flags in Go syntax (-flag, --flag, -flag=value, -flag value), read \
         as confd reads them, with confd.toml (-config-file) and a confd tree (-confdir). A \
         binary or symlink named `confd` behaves the same with all its arguments. A flag \
         given on the command line wins over the same key in confd.toml. reconfd's own \
         options (--config, --confdir, ...) do not apply to it.\n\n{}",
        flag_list("        ")
    )
}

/// The flags, one per entry; `indent` precedes each description (Go's `-h` uses a tab).
fn flag_list(indent: &str) -> String {
    let mut out = String::new();
    for d in DEFS.iter().filter(|d| d.rejected.is_none()) {
        let arg = if d.kind == Kind::Value { " value" } else { "" };
        out.push_str(&format!("  -{}{arg}\n{indent}{}\n", d.name, d.help));
    }
    out.push_str("\nconfd flags reconfd does not support (using one is an error):\n");
    for d in DEFS.iter().filter(|d| d.rejected.is_some()) {
        out.push_str(&format!("  -{}: {}\n", d.name, d.rejected.unwrap_or("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, FlagError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    fn flags(args: &[&str]) -> Flags {
        match parse_strs(args) {
            Ok(Parsed::Flags(f)) => *f,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse_strs(args) {
            Err(e) => e.to_string(),
            other => panic!("{args:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn one_or_two_dashes_equals_or_next_argument() {
        for args in [
            &["-confdir", "/c", "-prefix=/p"][..],
            &["--confdir", "/c", "--prefix=/p"],
            &["-confdir=/c", "--prefix", "/p"],
        ] {
            let f = flags(args);
            assert_eq!(f.confdir, Some("/c".into()), "{args:?}");
            assert_eq!(f.prefix.as_deref(), Some("/p"), "{args:?}");
        }
        // The next argument is the value even when it looks like a flag, as in Go.
        assert_eq!(
            flags(&["-prefix", "-onetime"]).prefix.as_deref(),
            Some("-onetime")
        );
        assert_eq!(flags(&["-prefix="]).prefix.as_deref(), Some(""));
        // `=` inside the value stays in it.
        assert_eq!(flags(&["-prefix=a=b"]).prefix.as_deref(), Some("a=b"));
    }

    #[test]
    fn booleans_never_take_the_next_argument() {
        let f = flags(&["-onetime", "-noop=false", "--watch=T", "-sync-only=0"]);
        assert_eq!(
            (f.onetime, f.noop, f.watch, f.sync_only),
            (Some(true), Some(false), Some(true), Some(false))
        );
        assert_eq!(
            err(&["-onetime", "false"]),
            "unexpected argument \"false\": confd takes flags only"
        );
        assert_eq!(
            err(&["-noop=maybe"]),
            "invalid boolean value \"maybe\" for -noop: parse error"
        );
        assert!(flags(&["-version"]).version);
    }

    #[test]
    fn double_dash_and_non_flags_stop_parsing() {
        assert_eq!(flags(&["-onetime", "--"]).onetime, Some(true));
        assert_eq!(
            err(&["-onetime", "--", "-noop"]),
            "unexpected argument \"-noop\": confd takes flags only"
        );
        assert_eq!(
            err(&["-onetime", "extra", "-noop"]),
            "unexpected argument \"extra\": confd takes flags only"
        );
        assert_eq!(
            err(&["-"]),
            "unexpected argument \"-\": confd takes flags only"
        );
    }

    #[test]
    fn errors_are_worded_as_go_words_them() {
        assert_eq!(err(&["-x"]), "flag provided but not defined: -x");
        assert_eq!(err(&["--nope=1"]), "flag provided but not defined: -nope");
        assert_eq!(err(&["-confdir"]), "flag needs an argument: -confdir");
        assert_eq!(err(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(err(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            err(&["-interval", "ten"]),
            "invalid value \"ten\" for flag -interval: parse error"
        );
        assert_eq!(
            err(&["-interval", "99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -interval: value out of range"
        );
    }

    #[test]
    fn help_in_any_spelling() {
        for h in ["-h", "-help", "--help", "--h"] {
            assert!(
                matches!(parse_strs(&["-onetime", h]), Ok(Parsed::Help)),
                "{h}"
            );
        }
        // Go stops at the first error: a bad flag before -h is reported.
        assert!(parse_strs(&["-x", "-h"]).is_err());
        let u = usage("confd");
        assert!(u.starts_with("Usage of confd:"), "{u}");
        assert!(
            u.contains("  -onetime\n") && u.contains("  -node value\n"),
            "{u}"
        );
        assert!(u.contains("-table: only confd's dynamodb backend"), "{u}");
    }

    #[test]
    fn node_repeats_and_other_flags_keep_the_last() {
        let f = flags(&[
            "-node",
            "a:1",
            "--node=http://b:2",
            "-node",
            "c:3",
            "-prefix",
            "/x",
            "-prefix",
            "/y",
        ]);
        assert_eq!(f.nodes, vec!["a:1", "http://b:2", "c:3"]);
        assert_eq!(f.prefix.as_deref(), Some("/y"));
    }

    #[test]
    fn other_backends_flags_are_rejected_with_the_reason() {
        assert_eq!(
            err(&["-table", "t"]),
            "-table is not supported by reconfd: only confd's dynamodb backend uses it"
        );
        assert!(err(&["-auth-type", "token"]).contains("vault"));
        assert!(err(&["-separator=:"]).contains("redis"));
        assert!(err(&["-file", "x.yaml"]).contains("file backend"));
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let f = flags(&["-username", "u", "-password", "hunter2"]);
        assert_eq!(f.password.as_ref().map(Password::expose), Some("hunter2"));
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    #[test]
    fn integers_as_go_reads_them() {
        for (s, v) in [
            ("600", 600),
            ("0x10", 16),
            ("010", 8),
            ("0o10", 8),
            ("0b11", 3),
            ("-5", -5),
            ("1_000", 1000),
            ("0x_1_0", 16),
        ] {
            assert_eq!(parse_int(s), Ok(v), "{s}");
        }
        for s in ["", "0x", "09", "_1", "1_", "1__0", " 1", "1.5"] {
            assert!(parse_int(s).is_err(), "{s:?}");
        }
    }
}
