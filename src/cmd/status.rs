//! `reconfd status` and `reconfd approve`: the control socket's client. Connects to the
//! running daemon ([`crate::control`]), sends one request line and prints the answer.
//!
//! Exit codes: [`NOT_RUNNING`] (3) when no daemon answers on the socket, `REFUSED` (77)
//! when the socket refuses this user; otherwise `status` exits 0 when every resource is in
//! sync (or only waiting for the reload limit), 1 when one is failing, held or not reconciled
//! yet; `approve` exits 0 when the approval was accepted, else 1.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::cli::ClientArgs;
use crate::config::{observe::DEFAULT_CONTROL_SOCKET, Overrides, Settings};
use crate::control::{Overview, Request, ResourceView};
use crate::exit;

/// No daemon answers on the control socket (as LSB's `status` action: "program is not
/// running").
pub const NOT_RUNNING: u8 = 3;

/// The control socket refused this user (`EX_NOPERM`).
pub const REFUSED: u8 = 77;

/// How long to wait for the daemon's answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// An answer line, as the client reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Overview(Overview),
    Approval(String),
    Error(String),
}

/// `reconfd status [--json]`.
pub fn status(args: &ClientArgs, json: bool) -> u8 {
    let overview = match ask(args, &Request::Status) {
        Ok(Reply::Overview(o)) => o,
        Ok(other) => return unexpected(&other),
        Err(code) => return code,
    };
    if json {
        match serde_json::to_string_pretty(&overview) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot write JSON: {e}");
                return exit::FAILED;
            }
        }
    } else {
        print!("{}", table(&overview, SystemTime::now()));
    }
    let all_fine = overview
        .resources
        .iter()
        .all(|r| matches!(r.state.as_str(), "in_sync" | "deferred"));
    if all_fine {
        exit::SUCCESS
    } else {
        exit::FAILED
    }
}

/// `reconfd approve NAME`.
pub fn approve(args: &ClientArgs, resource: &str) -> u8 {
    let request = Request::Approve {
        resource: resource.to_owned(),
    };
    match ask(args, &request) {
        Ok(Reply::Approval(a)) => {
            println!("{resource}: {a}");
            if a == "accepted" {
                exit::SUCCESS
            } else {
                exit::FAILED
            }
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

fn unexpected(reply: &Reply) -> u8 {
    match reply {
        Reply::Error(e) if e.starts_with("refused") => {
            eprintln!("reconfd: {e}");
            REFUSED
        }
        Reply::Error(e) => {
            eprintln!("reconfd: {e}");
            exit::FAILED
        }
        other => {
            eprintln!("reconfd: unexpected answer from the daemon: {other:?}");
            exit::FAILED
        }
    }
}

/// The socket to talk to: `--instance`, `--control-socket`, the config's control.socket,
/// the default.
pub fn socket_path(args: &ClientArgs) -> PathBuf {
    if let Some(name) = &args.instance {
        return PathBuf::from(format!("/run/reconfd-{name}/control.sock"));
    }
    if let Some(p) = &args.control_socket {
        return p.clone();
    }
    let overrides = Overrides {
        config: args.config.clone(),
        ..Overrides::default()
    };
    match Settings::assemble(&overrides) {
        Ok(s) => s.observe.control_socket,
        Err(errs) => {
            for e in errs {
                eprintln!("warning: {e}");
            }
            PathBuf::from(DEFAULT_CONTROL_SOCKET)
        }
    }
}

/// Sends `request`, reads the one answer line; `Err` is the exit code, said already.
fn ask(args: &ClientArgs, request: &Request) -> Result<Reply, u8> {
    let path = socket_path(args);
    let not_running = |why: &dyn std::fmt::Display| {
        eprintln!(
            "reconfd is not running: no daemon answers on {} ({why})",
            path.display()
        );
        NOT_RUNNING
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!(
                "reconfd: cannot use the control socket {}: {e} (only root and the daemon's user may)",
                path.display()
            );
            return Err(REFUSED);
        }
        Err(e) => return Err(not_running(&e)),
    };
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let mut line = serde_json::to_string(request).map_err(|_| exit::FAILED)?;
    line.push('\n');
    // A refusal is sent without reading the request, so the write may fail on a closed
    // connection that still holds the answer.
    let written = stream.write_all(line.as_bytes());
    let mut answer = String::new();
    let read = BufReader::new(&stream).read_line(&mut answer);
    if answer.trim().is_empty() {
        return Err(match (written, read) {
            (Err(e), _) => not_running(&e),
            (Ok(()), Err(e)) => {
                eprintln!("reconfd: no answer on {}: {e}", path.display());
                exit::FAILED
            }
            (Ok(()), Ok(_)) => not_running(&"it closed the connection"),
        });
    }
    serde_json::from_str(answer.trim()).map_err(|e| {
        eprintln!("reconfd: cannot read the daemon's answer: {e}");
        exit::FAILED
    })
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
fn age(then_unix: u64, now: SystemTime) -> String {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let s = now.saturating_sub(then_unix);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn row(r: &ResourceView, now: SystemTime) -> [String; 6] {
    [
        r.name.clone(),
        r.state.clone(),
        r.revision.map_or("-".into(), |v| v.to_string()),
        r.last_install_unix.map_or("-".into(), |t| age(t, now)),
        r.pending.clone().unwrap_or_else(|| "-".into()),
        r.last_error.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// The table `reconfd status` prints: one line about etcd, then one row per resource.
fn table(o: &Overview, now: SystemTime) -> String {
    let mut out = match (&o.etcd.member, &o.etcd.error) {
        (_, Some(e)) => format!("etcd: unreachable ({e})\n"),
        (Some(m), None) => format!(
            "etcd: {m}{}\n",
            o.etcd
                .last_answer_age_seconds
                .map(|a| format!(", last answer {a:.0}s ago"))
                .unwrap_or_default()
        ),
        (None, None) => "etcd: not reached yet\n".to_owned(),
    };
    let header = [
        "RESOURCE",
        "STATE",
        "REVISION",
        "LAST INSTALL",
        "PENDING",
        "LAST ERROR",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 6]> = std::iter::once(header)
        .chain(o.resources.iter().map(|r| row(r, now)))
        .collect();
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 5 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_unit() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(age(1_000_000 - 5, now), "5s ago");
        assert_eq!(age(1_000_000 - 300, now), "5m ago");
        assert_eq!(age(1_000_000 - 7200, now), "2h ago");
        assert_eq!(age(1_000_000 - 3 * 86400, now), "3d ago");
    }

    #[test]
    fn the_table_has_a_row_per_resource_with_placeholders() {
        let o = Overview {
            ready: true,
            etcd: Default::default(),
            resources: vec![
                ResourceView {
                    name: "app".into(),
                    state: "in_sync".into(),
                    revision: Some(42),
                    last_install_unix: Some(990),
                    ..Default::default()
                },
                ResourceView {
                    name: "broken".into(),
                    state: "failing".into(),
                    last_error: Some("check failed: exit 1".into()),
                    ..Default::default()
                },
            ],
        };
        let t = table(&o, UNIX_EPOCH + Duration::from_secs(1000));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "etcd: not reached yet");
        assert!(lines[1].starts_with("RESOURCE  STATE"), "{t}");
        assert!(
            lines[2].contains("app") && lines[2].contains("42") && lines[2].contains("10s ago"),
            "{t}"
        );
        assert!(
            lines[3].contains("failing") && lines[3].ends_with("check failed: exit 1"),
            "{t}"
        );
    }
}
