//! `reconfd credentials set|delete`: keeps the etcd password in the system keyring (Secret
//! Service, service `reconfd`, account = username) for `password_keyring = true`.
//!
//! The password is read from standard input, never from the command line, and is echoed
//! nowhere.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::fd::AsFd;

use crate::cli::CredentialsAction;
use crate::config::Overrides;
use crate::config::Password;
use crate::etcd::credentials::{self, KEYRING_SERVICE};
use crate::exit;

/// Runs the action; exit 0 on success.
pub fn run(o: &Overrides, action: CredentialsAction) -> u8 {
    let settings = match super::settings(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(user) = settings.etcd.username.clone() else {
        eprintln!("no etcd username: pass --username or set etcd.username in the config file");
        return exit::USAGE;
    };
    match action {
        CredentialsAction::Set => {
            let password = match read_password(&user) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("cannot read the password from standard input: {e}");
                    return exit::FAILED;
                }
            };
            if password.expose().is_empty() {
                eprintln!("the password is empty; nothing stored");
                return exit::FAILED;
            }
            match credentials::keyring_set(&user, &password) {
                Ok(()) => {
                    println!(
                        "stored the password of etcd user {user:?} in the system keyring (service {KEYRING_SERVICE:?})"
                    );
                    if !settings.etcd.password_keyring {
                        eprintln!(
                            "note: set password_keyring = true in [etcd] for reconfd to use it"
                        );
                    }
                    exit::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    exit::FAILED
                }
            }
        }
        CredentialsAction::Delete => match credentials::keyring_delete(&user) {
            Ok(true) => {
                println!("removed the password of etcd user {user:?} from the system keyring");
                exit::SUCCESS
            }
            Ok(false) => {
                eprintln!("no password of etcd user {user:?} is stored in the system keyring");
                exit::FAILED
            }
            Err(e) => {
                eprintln!("{e}");
                exit::FAILED
            }
        },
    }
}

/// One line from a terminal with echo off, or everything piped in; one trailing newline
/// dropped.
fn read_password(user: &str) -> std::io::Result<Password> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        eprint!("password of etcd user {user:?}: ");
        std::io::stderr().flush()?;
        let fd = stdin.as_fd();
        let saved = tcgetattr(fd)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(fd, SetArg::TCSANOW, &quiet)?;
        let read = stdin.lock().read_line(&mut text);
        tcsetattr(fd, SetArg::TCSANOW, &saved)?;
        read?;
    } else {
        stdin.lock().read_to_string(&mut text)?;
    }
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Password::new(text))
}
