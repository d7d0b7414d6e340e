//! Where the etcd password comes from, and keeping it out of sight.
//!
//! Sources, consulted in this order; the first one *configured* is used and the others are
//! ignored (`reconfd check` warns about that):
//!
//! 0. Under `reconfd confd` only: the password confd's `-password` flag or confd.toml gave,
//!    held in memory as a [`Password`] ([`EtcdSettings::password`]). It is handed to the etcd
//!    client like the others and never put into the environment, so commands never see it.
//! 1. `password_file` (`--password-file`): a file readable by its owner only. One trailing
//!    newline is not part of the password.
//! 2. `password_credential = "NAME"`: a systemd credential, `$CREDENTIALS_DIRECTORY/NAME`, as
//!    `LoadCredential=NAME:…` or `LoadCredentialEncrypted=NAME:…` provide it. Same newline rule.
//! 3. `password_keyring = true`: the system keyring (Secret Service over the session D-Bus),
//!    service `reconfd`, account = the username. `reconfd credentials set` stores it there.
//! 4. The environment variable `RECONFD_ETCD_PASSWORD` (same newline rule).
//!
//! reconfd's own options never take the password from the command line (where `ps` shows
//! it; `reconfd confd -password` does, for confd's sake, and warns), and it only ever
//! lives in a [`Password`], whose `Debug` prints `<redacted>` and which has no `Display`, so
//! it cannot reach a log line, an error message or a diff by accident. Errors here name the
//! user and the source, never the content.
//!
//! What this module does not do: talk to etcd (see [`super::connect`]).

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::{EtcdSettings, Password};

/// The keyring service name reconfd stores passwords under.
pub const KEYRING_SERVICE: &str = "reconfd";
/// The environment variable consulted last.
pub const PASSWORD_ENV: &str = "RECONFD_ETCD_PASSWORD";
/// The environment variable systemd sets to the service's credentials directory.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// One place a password can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// [`EtcdSettings::password`]: given to `reconfd confd` (`-password` or confd.toml).
    Given,
    /// `password_file`
    File(PathBuf),
    /// `password_credential`: the credential's name.
    Credential(String),
    /// `password_keyring = true`
    Keyring,
    /// `RECONFD_ETCD_PASSWORD`
    Env,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Given => f.write_str("the confd -password flag or confd.toml"),
            Source::File(p) => write!(f, "password file {}", p.display()),
            Source::Credential(name) => write!(f, "systemd credential {name:?}"),
            Source::Keyring => write!(f, "the system keyring (service {KEYRING_SERVICE:?})"),
            Source::Env => write!(f, "environment variable {PASSWORD_ENV}"),
        }
    }
}

/// Why the password could not be had. Never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The source failed; `why` says how.
    #[error("cannot get the password of etcd user {user:?} from {from}: {why}")]
    Source {
        /// The etcd user.
        user: String,
        /// Where the password was to come from.
        from: Source,
        /// What went wrong.
        why: String,
    },
    /// A password file others can read.
    #[error("{path}: password file of etcd user {user:?} is readable by {who} (mode {mode:04o}); refusing it: run chmod 600 {path} (or use a systemd credential)", path = path.display())]
    Exposed {
        /// The etcd user.
        user: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// "group" / "others" / "group and others".
        who: &'static str,
    },
    /// The keyring could not be reached or used.
    #[error("cannot use the system keyring for etcd user {user:?}: {why}")]
    Keyring {
        /// The etcd user.
        user: String,
        /// What went wrong, with advice.
        why: String,
    },
}

/// The sources that are configured, in the order they are consulted; the environment is
/// always last (and always "configured": it is the fallback).
pub fn sources(settings: &EtcdSettings) -> Vec<Source> {
    let mut out = Vec::new();
    if settings.password.is_some() {
        out.push(Source::Given);
    }
    if let Some(p) = &settings.password_file {
        out.push(Source::File(p.clone()));
    }
    if let Some(name) = &settings.password_credential {
        out.push(Source::Credential(name.clone()));
    }
    if settings.password_keyring {
        out.push(Source::Keyring);
    }
    out.push(Source::Env);
    out
}

/// The source that will be used: the first configured one.
pub fn source(settings: &EtcdSettings) -> Source {
    sources(settings).remove(0)
}

/// Reads the password of `user` from the source `settings` select.
///
/// The keyring talks D-Bus synchronously; call this from a blocking context (or accept a
/// short block: it happens once per connection).
pub fn password(settings: &EtcdSettings, user: &str) -> Result<Password, CredentialError> {
    let source = source(settings);
    let fail = |why: String| CredentialError::Source {
        user: user.to_owned(),
        from: source.clone(),
        why,
    };
    let text = match &source {
        Source::Given => match &settings.password {
            Some(p) => p.expose().to_owned(),
            None => String::new(),
        },
        Source::File(path) => read_secret_file(path, user, true)?,
        Source::Credential(name) => {
            let dir = std::env::var_os(CREDENTIALS_DIRECTORY).ok_or_else(|| {
                fail(format!(
                    "${CREDENTIALS_DIRECTORY} is not set: reconfd is not running under systemd with LoadCredential={name}:… (or LoadCredentialEncrypted=) in its unit"
                ))
            })?;
            // systemd makes the directory and file private to the service: no mode check.
            read_secret_file(&Path::new(&dir).join(name), user, false)?
        }
        Source::Keyring => keyring_get(user)?,
        Source::Env => match std::env::var(PASSWORD_ENV) {
            Ok(v) => strip_newline(v),
            Err(std::env::VarError::NotPresent) => {
                return Err(fail(
                    "it is not set, and no other source is configured: set etcd.password_file, etcd.password_credential or etcd.password_keyring".into(),
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(fail("it is not valid UTF-8".into()))
            }
        },
    };
    if text.is_empty() {
        return Err(fail("the password is empty".into()));
    }
    Ok(Password::new(text))
}

/// Problems `reconfd check` can find without using the password: an unreadable or exposed
/// password file, a missing credential, more than one source configured. Returns
/// `(problems, warnings)`.
pub fn source_problems(settings: &EtcdSettings) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    let Some(user) = &settings.username else {
        return (problems, warnings);
    };
    let configured = sources(settings);
    if configured.len() > 2 {
        let ignored: Vec<String> = configured[1..configured.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        warnings.push(format!(
            "several password sources are configured; {} is used, {} ignored",
            configured[0],
            ignored.join(" and ")
        ));
    }
    match &configured[0] {
        Source::File(path) => {
            if let Err(e) = read_secret_file(path, user, true) {
                problems.push(e.to_string());
            }
        }
        Source::Credential(name) => match std::env::var_os(CREDENTIALS_DIRECTORY) {
            Some(dir) => {
                if let Err(e) = read_secret_file(&Path::new(&dir).join(name), user, false) {
                    problems.push(e.to_string());
                }
            }
            None => warnings.push(format!(
                "etcd.password_credential = {name:?} is read from ${CREDENTIALS_DIRECTORY}, which only the systemd unit (LoadCredential={name}:…) sets; not checked here"
            )),
        },
        // The keyring and the environment belong to the process that will run; `check`
        // may run elsewhere (another user, no session), so they are not probed.
        Source::Given | Source::Keyring | Source::Env => {}
    }
    (problems, warnings)
}

/// Reads a password file: UTF-8, one trailing newline dropped (`\r\n` too), and with
/// `check_mode` refused when group or others may read it.
fn read_secret_file(path: &Path, user: &str, check_mode: bool) -> Result<String, CredentialError> {
    let source = if check_mode {
        Source::File(path.to_owned())
    } else {
        Source::Credential(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    };
    let fail = |why: String| CredentialError::Source {
        user: user.to_owned(),
        from: source.clone(),
        why,
    };
    let mut file =
        std::fs::File::open(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    if check_mode {
        let mode = file
            .metadata()
            .map_err(|e| fail(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
            (false, false) => None,
            (true, false) => Some("group"),
            (false, true) => Some("others"),
            (true, true) => Some("group and others"),
        };
        if let Some(who) = who {
            return Err(CredentialError::Exposed {
                user: user.to_owned(),
                path: path.to_owned(),
                mode: mode & 0o7777,
                who,
            });
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(format!(
            "{}: the password is not valid UTF-8",
            path.display()
        ))
    })?;
    let text = strip_newline(text);
    // Here as well as in `password`, so `reconfd check` refuses what `run` would refuse.
    if text.is_empty() {
        return Err(fail(format!("{}: the password is empty", path.display())));
    }
    Ok(text)
}

/// Drops one trailing newline (`\n` or `\r\n`): editors and `echo` add one.
fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// The keyring entry of `user`, or why there is none usable.
fn keyring_entry(user: &str) -> Result<keyring::Entry, CredentialError> {
    let fail = |why: String| CredentialError::Keyring {
        user: user.to_owned(),
        why,
    };
    if let Err(e) = keyring::Entry::store_status() {
        return Err(fail(format!(
            "no Secret Service is reachable ({e}); it needs a user session's D-Bus, which a system service does not have: use etcd.password_credential with LoadCredential= instead"
        )));
    }
    keyring::Entry::new(KEYRING_SERVICE, user).map_err(|e| fail(e.to_string()))
}

fn keyring_get(user: &str) -> Result<String, CredentialError> {
    keyring_entry(user)?.get_password().map_err(|e| match e {
        keyring::Error::NoEntry => CredentialError::Keyring {
            user: user.to_owned(),
            why: format!(
                "no password is stored for service {KEYRING_SERVICE:?}, account {user:?}: store one with `reconfd credentials set --username {user}`"
            ),
        },
        e => CredentialError::Keyring {
            user: user.to_owned(),
            why: e.to_string(),
        },
    })
}

/// Stores `password` for `user` in the system keyring.
pub fn keyring_set(user: &str, password: &Password) -> Result<(), CredentialError> {
    keyring_entry(user)?
        .set_password(password.expose())
        .map_err(|e| CredentialError::Keyring {
            user: user.to_owned(),
            why: e.to_string(),
        })
}

/// Removes the password of `user` from the system keyring; `Ok(false)` when none was stored.
pub fn keyring_delete(user: &str) -> Result<bool, CredentialError> {
    match keyring_entry(user)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(CredentialError::Keyring {
            user: user.to_owned(),
            why: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EtcdSettings {
        EtcdSettings {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            username: Some("reconfd".into()),
            password: None,
            password_file: None,
            password_credential: None,
            password_keyring: false,
            ca_file: None,
            client_cert: None,
            server_name: None,
            read: Default::default(),
            max_message_size: crate::config::DEFAULT_MAX_MESSAGE_SIZE,
            reread_jitter: std::time::Duration::ZERO,
            srv: None,
            prefer_first_after: None,
        }
    }

    fn secret(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn one_trailing_newline_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings();
        for (text, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret\n\n", "s3cret\n"),
            ("s3cret", "s3cret"),
            (" s3 cret ", " s3 cret "),
        ] {
            s.password_file = Some(secret(d.path(), "pw", text, 0o600));
            assert_eq!(password(&s, "reconfd").unwrap().expose(), want, "{text:?}");
        }
    }

    #[test]
    fn readable_by_others_is_refused_and_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings();
        for (mode, who) in [
            (0o644, "group and others"),
            (0o640, "group"),
            (0o604, "others"),
        ] {
            let p = secret(d.path(), "pw", "hunter2\n", mode);
            s.password_file = Some(p.clone());
            let e = password(&s, "reconfd").unwrap_err().to_string();
            assert!(e.contains(&p.display().to_string()), "{e}");
            assert!(e.contains(&format!("readable by {who}")), "{e}");
            assert!(e.contains("\"reconfd\""), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
            assert_eq!(source_problems(&s).0.len(), 1);
        }
        // Owner-only, even writable by group, is accepted: the rule is about reading.
        s.password_file = Some(secret(d.path(), "pw", "hunter2\n", 0o620));
        assert_eq!(password(&s, "reconfd").unwrap().expose(), "hunter2");
    }

    #[test]
    fn empty_and_missing_are_errors_naming_user_and_source() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings();
        s.password_file = Some(secret(d.path(), "pw", "\n", 0o600));
        let e = password(&s, "reconfd").unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("password file"), "{e}");
        // `check` refuses it too, naming the file: `run` would not start with it.
        let problems = source_problems(&s).0;
        assert!(
            problems.len() == 1 && problems[0].contains("empty") && problems[0].contains("pw"),
            "{problems:?}"
        );
        s.password_file = Some(d.path().join("nope"));
        let e = password(&s, "reconfd").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("\"reconfd\""), "{e}");
    }

    #[test]
    fn a_given_password_comes_first_and_is_never_shown() {
        let mut s = settings();
        s.password_file = Some("/p".into());
        s.password = Some(Password::new("hunter2".into()));
        assert_eq!(source(&s), Source::Given);
        assert_eq!(password(&s, "reconfd").unwrap().expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        s.password = Some(Password::new(String::new()));
        let e = password(&s, "reconfd").unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("-password"), "{e}");
    }

    #[test]
    fn first_configured_source_wins() {
        let mut s = settings();
        assert_eq!(source(&s), Source::Env);
        s.password_keyring = true;
        assert_eq!(source(&s), Source::Keyring);
        s.password_credential = Some("etcd".into());
        assert_eq!(source(&s), Source::Credential("etcd".into()));
        s.password_file = Some("/p".into());
        assert_eq!(source(&s), Source::File("/p".into()));
        let (_, warnings) = source_problems(&s);
        assert!(
            warnings[0].contains("password file /p is used")
                && warnings[0].contains("systemd credential")
                && warnings[0].contains("keyring"),
            "{warnings:?}"
        );
    }
}
