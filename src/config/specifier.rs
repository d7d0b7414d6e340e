//! systemd-style specifiers for the host's identity in `prefix` and `keys`, so one config
//! file handed to a whole fleet (by Ignition, say) gives each host its own subtree of etcd:
//! `prefix = "/hosts/%H"` reads `/hosts/web1/...` on web1 and `/hosts/web2/...` on web2.
//!
//! | specifier | meaning | from |
//! |---|---|---|
//! | `%H` | host name | `RECONFD_HOSTNAME`, else the kernel's host name (`gethostname`) |
//! | `%l` | short host name: `%H` up to its first dot | as `%H` |
//! | `%m` | machine ID, 32 lowercase hex digits | `RECONFD_MACHINE_ID`, else `/etc/machine-id` |
//! | `%%` | a literal `%` | |
//!
//! Any other `%` sequence, and a `%` at the end, is refused with the file (and line, where the
//! parser knows it) of the value. The values are expanded once, when the config and the
//! resources are loaded (again on SIGHUP); `reconfd check` prints what they became. The two
//! environment variables are the documented override, for containers whose UTS namespace or
//! `/etc` is not the host's (`--env RECONFD_HOSTNAME=%H` in a unit hands systemd's own value
//! in) and for tests. Only what a value names is looked up: a host without
//! `/etc/machine-id` can still use `%H`.
//!
//! Specifiers are reconfd's own: `reconfd confd` reads a confd tree as confd does, where `%`
//! means nothing, so this module leaves the confd dialect's values alone.
//!
//! It does not know what a prefix or a key is: callers hand it the strings.

use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::config::Dialect;
use crate::config::{Overrides, Settings};
use crate::diag::Diagnostic;

/// The environment variable that overrides the host name (`%H`, `%l`).
pub const HOSTNAME_ENV: &str = "RECONFD_HOSTNAME";
/// The environment variable that overrides the machine ID (`%m`).
pub const MACHINE_ID_ENV: &str = "RECONFD_MACHINE_ID";
/// Where the machine ID is read from unless [`MACHINE_ID_ENV`] is set.
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";

/// What is wrong with a value's specifiers, or with the identity they name.
#[derive(Debug, thiserror::Error)]
pub enum SpecifierError {
    /// `%` followed by a character that is no specifier.
    #[error("unknown specifier \"%{spec}\" in {value:?}; known: %H (host name), %l (short host name), %m (machine ID), %% (a literal %)")]
    Unknown {
        /// The character after `%`.
        spec: char,
        /// The whole value.
        value: String,
    },
    /// A `%` with nothing after it.
    #[error("{value:?} ends in a lone \"%\"; write \"%%\" for a literal %")]
    Trailing {
        /// The whole value.
        value: String,
    },
    /// The host name could not be read, or is unusable in a key.
    #[error("cannot expand %{spec} in {value:?}: host name {problem}")]
    HostName {
        /// `H` or `l`.
        spec: char,
        /// The whole value.
        value: String,
        /// What went wrong.
        problem: String,
    },
    /// The machine ID could not be read or is not 32 hex digits.
    #[error("cannot expand %m in {value:?}: machine ID from {from} {problem}")]
    MachineId {
        /// The whole value.
        value: String,
        /// The file or variable it came from.
        from: String,
        /// What went wrong.
        problem: String,
    },
}

/// Where `%H` and `%m` take their values from. [`System`] is the real host; tests and
/// callers with other knowledge implement their own.
pub trait Identity {
    /// The host name, or why there is none.
    fn host_name(&self) -> Result<String, String>;
    /// The machine ID as written (validated by the caller), and where it came from.
    fn machine_id(&self) -> (Result<String, String>, String);
}

/// The running host: the environment overrides first, then the kernel and `/etc/machine-id`
/// (or another file, for tests).
#[derive(Debug, Clone)]
pub struct System {
    /// The machine ID file, [`MACHINE_ID_FILE`] unless a test says otherwise.
    pub machine_id_file: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        Self {
            machine_id_file: PathBuf::from(MACHINE_ID_FILE),
        }
    }
}

impl Identity for System {
    fn host_name(&self) -> Result<String, String> {
        match std::env::var(HOSTNAME_ENV) {
            Ok(name) => Ok(name),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("in {HOSTNAME_ENV} is not UTF-8"))
            }
            Err(std::env::VarError::NotPresent) => kernel_host_name(),
        }
    }

    fn machine_id(&self) -> (Result<String, String>, String) {
        match std::env::var(MACHINE_ID_ENV) {
            Ok(id) => (Ok(id), MACHINE_ID_ENV.to_owned()),
            Err(e) => {
                let from = self.machine_id_file.display().to_string();
                if let std::env::VarError::NotUnicode(_) = e {
                    return (Err("is not UTF-8".into()), MACHINE_ID_ENV.to_owned());
                }
                let read = std::fs::read_to_string(&self.machine_id_file)
                    .map_err(|e| format!("cannot be read: {e}"));
                (read, from)
            }
        }
    }
}

/// `gethostname(2)`: the UTS namespace's name, which is the host's unless a container gave
/// itself another.
fn kernel_host_name() -> Result<String, String> {
    let name = nix::unistd::gethostname().map_err(|e| format!("cannot be read: {e}"))?;
    name.into_string().map_err(|_| "is not UTF-8".to_owned())
}

/// Expands the specifiers of `value` on the running host.
pub fn expand(value: &str) -> Result<String, SpecifierError> {
    expand_with(value, &System::default())
}

/// Expands the specifiers of `value` with `identity`'s host name and machine ID.
pub fn expand_with(value: &str, identity: &dyn Identity) -> Result<String, SpecifierError> {
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(spec @ ('H' | 'l')) => {
                let name = host_name(identity).map_err(|problem| SpecifierError::HostName {
                    spec,
                    value: value.to_owned(),
                    problem,
                })?;
                match spec {
                    'H' => out.push_str(&name),
                    _ => out.push_str(name.split('.').next().unwrap_or(&name)),
                }
            }
            Some('m') => out.push_str(&machine_id(identity, value)?),
            Some(spec) => {
                return Err(SpecifierError::Unknown {
                    spec,
                    value: value.to_owned(),
                })
            }
            None => {
                return Err(SpecifierError::Trailing {
                    value: value.to_owned(),
                })
            }
        }
    }
    Ok(out)
}

/// The host name, checked to be one path segment of an etcd key: a name with a `/` would
/// move the host into another host's subtree, `*` would be a pattern.
fn host_name(identity: &dyn Identity) -> Result<String, String> {
    let name = identity.host_name()?;
    let name = name.trim();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| *c == '/' || *c == '*' || *c == '%' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{name:?} holds {bad:?}, which has no place in one segment of a key"
        ));
    }
    Ok(name.to_owned())
}

/// The machine ID, checked to be what machine-id(5) says it is.
fn machine_id(identity: &dyn Identity, value: &str) -> Result<String, SpecifierError> {
    let (id, from) = identity.machine_id();
    let fail = |problem: String| SpecifierError::MachineId {
        value: value.to_owned(),
        from: from.clone(),
        problem,
    };
    let id = id.map_err(fail)?;
    let id = id.trim();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(format!(
            "is {id:?}, not 32 hex digits (machine-id(5); \"uninitialized\" before the first boot completes)"
        )));
    }
    Ok(id.to_ascii_lowercase())
}

/// Expands the global prefix of freshly assembled settings (reconfd's dialect only). An
/// error names the config file and the line of its `prefix`, or `--prefix` when that (or
/// `RECONFD_PREFIX`) gave the value.
pub fn expand_settings(mut s: Settings, o: &Overrides) -> Result<Settings, Vec<Diagnostic>> {
    if s.dialect == Dialect::Confd {
        return Ok(s);
    }
    match expand(&s.prefix) {
        Ok(prefix) => {
            s.prefix = prefix;
            Ok(s)
        }
        Err(e) => Err(vec![match (&o.prefix, &s.config_file) {
            (None, Some(file)) => prefix_diagnostic(file, &e),
            _ => Diagnostic::file(Path::new("--prefix"), e.to_string()),
        }]),
    }
}

/// A diagnostic for the config file's `prefix`, on its line when the file still parses.
fn prefix_diagnostic(file: &Path, e: &SpecifierError) -> Diagnostic {
    let message = format!("prefix: {e}");
    let Ok(text) = std::fs::read_to_string(file) else {
        return Diagnostic::file(file, message);
    };
    let at = toml::de::DeTable::parse(&text).ok().and_then(|doc| {
        doc.get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "prefix")
            .map(|(_, v)| v.span().start)
    });
    match at {
        Some(offset) => Diagnostic::at(file, &text, offset, message),
        None => Diagnostic::file(file, message),
    }
}

/// Expands one value of resource file `file` (whose content is `text`) at load time. In
/// reconfd's dialect a problem goes to `errs` with the value's line, and the value comes
/// back as written; `what` names the field (`key`, `prefix`). The confd dialect's values
/// come back as written.
pub fn expand_in_resource(
    settings: &Settings,
    file: &Path,
    text: &str,
    value: &Spanned<String>,
    what: &str,
    errs: &mut Vec<Diagnostic>,
) -> String {
    if settings.dialect == Dialect::Confd {
        return value.get_ref().clone();
    }
    expand(value.get_ref()).unwrap_or_else(|e| {
        errs.push(Diagnostic::at(
            file,
            text,
            value.span().start,
            format!("{what}: {e}"),
        ));
        value.get_ref().clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        host: Result<&'static str, &'static str>,
        id: Result<&'static str, &'static str>,
    }

    impl Identity for Fixed {
        fn host_name(&self) -> Result<String, String> {
            self.host.map(str::to_owned).map_err(str::to_owned)
        }
        fn machine_id(&self) -> (Result<String, String>, String) {
            (
                self.id.map(str::to_owned).map_err(str::to_owned),
                "test".into(),
            )
        }
    }

    const WEB1: Fixed = Fixed {
        host: Ok("web1.dc1.example.net"),
        id: Ok("0123456789ABCDEF0123456789abcdef\n"),
    };

    #[test]
    fn known_specifiers_expand() {
        let x = |v: &str| expand_with(v, &WEB1).unwrap();
        assert_eq!(x("/hosts/%H"), "/hosts/web1.dc1.example.net");
        assert_eq!(x("/hosts/%l/nginx"), "/hosts/web1/nginx");
        assert_eq!(x("/m/%m"), "/m/0123456789abcdef0123456789abcdef");
        assert_eq!(x("/50%%/%l%%"), "/50%/web1%");
        assert_eq!(x("/plain"), "/plain");
        assert_eq!(x(""), "");
    }

    #[test]
    fn unknown_and_trailing_are_refused() {
        let e = expand_with("/hosts/%Q", &WEB1).unwrap_err().to_string();
        assert!(
            e.contains("unknown specifier \"%Q\" in \"/hosts/%Q\""),
            "{e}"
        );
        assert!(e.contains("%H (host name)"), "{e}");
        let e = expand_with("/a%", &WEB1).unwrap_err().to_string();
        assert!(e.contains("lone \"%\""), "{e}");
        // %n is systemd's unit name: meaningless here, so refused rather than guessed.
        assert!(expand_with("/%n", &WEB1).is_err());
    }

    #[test]
    fn only_what_is_named_is_looked_up() {
        let nothing = Fixed {
            host: Err("cannot be read: boom"),
            id: Err("cannot be read: no such file"),
        };
        assert_eq!(expand_with("/a/%%", &nothing).unwrap(), "/a/%");
        let e = expand_with("/%H", &nothing).unwrap_err().to_string();
        assert!(e.contains("cannot expand %H") && e.contains("boom"), "{e}");
        let e = expand_with("/%m", &nothing).unwrap_err().to_string();
        assert!(
            e.contains("machine ID from test cannot be read: no such file"),
            "{e}"
        );
    }

    #[test]
    fn identities_that_do_not_fit_a_key_are_refused() {
        for host in ["", "a/b", "a*", "a b"] {
            let f = Fixed {
                host: Ok(host),
                id: Ok("x"),
            };
            assert!(expand_with("/%H", &f).is_err(), "{host:?}");
        }
        for id in ["uninitialized", "0123", "0123456789abcdef0123456789abcdeg"] {
            let f = Fixed {
                host: Ok("h"),
                id: Ok(id),
            };
            let e = expand_with("/%m", &f).unwrap_err().to_string();
            assert!(e.contains("not 32 hex digits"), "{id}: {e}");
        }
    }

    #[test]
    fn the_system_reads_its_machine_id_file() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("machine-id");
        std::fs::write(&file, "00112233445566778899aabbccddeeff\n").unwrap();
        let sys = System {
            machine_id_file: file,
        };
        // The variable is set by no test of this binary, so the file is read.
        if std::env::var_os(MACHINE_ID_ENV).is_none() {
            assert_eq!(
                expand_with("/%m", &sys).unwrap(),
                "/00112233445566778899aabbccddeeff"
            );
        }
        let missing = System {
            machine_id_file: d.path().join("absent"),
        };
        if std::env::var_os(MACHINE_ID_ENV).is_none() {
            let e = expand_with("/%m", &missing).unwrap_err().to_string();
            assert!(e.contains("absent cannot be read"), "{e}");
        }
        // The kernel always has a host name (perhaps "localhost").
        assert!(!kernel_host_name().unwrap().is_empty());
    }

    fn settings_from(text: &str) -> (tempfile::TempDir, Result<Settings, Vec<Diagnostic>>) {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("reconfd.toml");
        std::fs::write(&file, text).unwrap();
        let o = Overrides {
            config: Some(file),
            ..Default::default()
        };
        let s = Settings::assemble(&o);
        (d, s)
    }

    #[test]
    fn a_bad_global_prefix_names_the_file_and_line() {
        let (d, s) = settings_from("confdir = \"/x\"\n\nprefix = \"/hosts/%Z\"\n");
        let errs = s.unwrap_err();
        let e = errs[0].to_string();
        let file = d.path().join("reconfd.toml");
        assert!(
            e.starts_with(&format!(
                "{}:3: prefix: unknown specifier \"%Z\"",
                file.display()
            )),
            "{e}"
        );
        let (_d, s) = settings_from("prefix = \"/dc1/%%\"\n");
        assert_eq!(s.unwrap().prefix, "/dc1/%");
        let o = Overrides {
            config: Some("/dev/null".into()),
            prefix: Some("/x/%".into()),
            ..Default::default()
        };
        let e = Settings::assemble(&o).unwrap_err();
        assert!(e[0].to_string().starts_with("--prefix: "), "{e:?}");
    }

    #[test]
    fn the_confd_dialect_is_left_alone() {
        let o = Overrides {
            config: Some("/dev/null".into()),
            ..Default::default()
        };
        let mut s = Settings::assemble(&o).unwrap();
        s.prefix = "/a/%Q".into();
        s.dialect = Dialect::Confd;
        let s = expand_settings(s, &o).unwrap();
        assert_eq!(s.prefix, "/a/%Q");
    }
}
