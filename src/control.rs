//! The control socket: how `reconfd status` and `reconfd approve` reach the running daemon.
//!
//! A unix stream socket (default `/run/reconfd/control.sock`, `[control] socket` or
//! `--control-socket`), mode 0600, owned by the daemon's user. Each connection's peer is
//! checked with `SO_PEERCRED`: only root and the daemon's own uid are served; anyone else gets
//! one refusal line. The protocol is one JSON line each way:
//!
//! - request `{"command":"status"}` → `{"overview":{…}}` ([`Overview`]);
//! - request `{"command":"approve","resource":"NAME"}` → `{"approval":"accepted"|"not_held"|"unknown"}`;
//! - anything else → `{"error":"…"}`.
//!
//! The answers come from the supervisor ([`Command`]); they hold states, revisions, times and
//! one-line errors, never rendered contents or secrets.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::reconciler::Approval;

/// The longest request line read.
const MAX_REQUEST: u64 = 4096;
/// A request to the running supervisor (from the control socket).
#[derive(Debug)]
pub enum Command {
    /// The overview `reconfd status` prints.
    Status {
        /// Where the overview goes.
        reply: tokio::sync::oneshot::Sender<Overview>,
    },
    /// Accept a held render of this resource.
    Approve {
        /// The resource's name.
        resource: String,
        /// Where the outcome goes.
        reply: tokio::sync::oneshot::Sender<Approval>,
    },
}

/// How long a connection may take to send its request, and the supervisor to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The overview.
    Status,
    /// Install the held render of `resource`.
    Approve {
        /// The resource's name.
        resource: String,
    },
}

/// How the daemon and its resources stand: what `reconfd status` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Every resource finished its first reconcile.
    pub ready: bool,
    /// The etcd connection.
    pub etcd: EtcdView,
    /// One entry per resource, by name.
    pub resources: Vec<ResourceView>,
}

/// The etcd connection, as the supervisor last heard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdView {
    /// The endpoint followed (or last followed).
    pub member: Option<String>,
    /// Why etcd cannot be followed, while it cannot.
    pub error: Option<String>,
    /// Seconds since etcd last answered; `None` before it first did (or without keys).
    pub last_answer_age_seconds: Option<f64>,
}

/// One resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceView {
    /// The resource's name.
    pub name: String,
    /// "pending" (first reconcile not done), "in_sync", "deferred", "failing" or "held".
    pub state: String,
    /// The etcd revision last rendered successfully.
    pub revision: Option<i64>,
    /// Unix time the destination was last replaced by this daemon.
    pub last_install_unix: Option<u64>,
    /// What waits: "changes" (keys changed, the batcher has not reconciled yet), "reload
    /// deferred" (the reload limit), or what the state says is pending.
    pub pending: Option<String>,
    /// The last error, one line, while failing.
    pub last_error: Option<String>,
}

/// An answer line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Overview(Overview),
    Approval(Approval),
    Error(String),
}

/// The bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket at `path` with mode 0600. A leftover socket that nobody answers
/// on is replaced; one a running daemon answers on is an error (two daemons, one socket).
pub async fn bind(path: &Path) -> io::Result<Socket> {
    let named =
        |e: io::Error| io::Error::new(e.kind(), format!("control socket {}: {e}", path.display()));
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(named(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(named(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another reconfd answers on it; give each daemon its own (control.socket)",
            )));
        }
        std::fs::remove_file(path).map_err(named)?;
    }
    let listener = UnixListener::bind(path).map_err(named)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(named)?;
    info!("control socket at {}", path.display());
    Ok(Socket {
        listener,
        path: path.to_owned(),
    })
}

/// Serves `socket` forever, passing requests to the supervisor through `commands`.
pub async fn serve(socket: &Socket, commands: mpsc::Sender<Command>) {
    let own = nix::unistd::geteuid().as_raw();
    loop {
        let stream = match socket.listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let commands = commands.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, own, commands).await {
                debug!("control connection: {e}");
            }
        });
    }
}

/// Whether `uid` may use the socket: root and the daemon's user.
fn allowed(uid: u32, own: u32) -> bool {
    uid == 0 || uid == own
}

async fn connection(
    stream: UnixStream,
    own: u32,
    commands: mpsc::Sender<Command>,
) -> io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let reply = if allowed(uid, own) {
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(MAX_REQUEST));
        match tokio::time::timeout(TIMEOUT, reader.read_line(&mut line)).await {
            Ok(r) => {
                r?;
                answer(&line, commands).await
            }
            Err(_) => Reply::Error("no request within 10s".into()),
        }
    } else {
        warn!(uid, "control socket: refused a request from uid {uid} (only root and the daemon's user may ask)");
        Reply::Error(format!(
            "refused: uid {uid} may not use the control socket (only root and uid {own})"
        ))
    };
    let mut text = serde_json::to_string(&reply).map_err(io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// The supervisor's answer to one request line.
async fn answer(line: &str, commands: mpsc::Sender<Command>) -> Reply {
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return Reply::Error(format!("bad request: {e}")),
    };
    let asked = match request {
        Request::Status => {
            let (reply, rx) = oneshot::channel();
            ask(&commands, Command::Status { reply }, rx, Reply::Overview).await
        }
        Request::Approve { resource } => {
            let (reply, rx) = oneshot::channel();
            ask(
                &commands,
                Command::Approve { resource, reply },
                rx,
                Reply::Approval,
            )
            .await
        }
    };
    asked.unwrap_or_else(Reply::Error)
}

async fn ask<T>(
    commands: &mpsc::Sender<Command>,
    command: Command,
    rx: oneshot::Receiver<T>,
    wrap: fn(T) -> Reply,
) -> Result<Reply, String> {
    let gone = || "the daemon is stopping".to_owned();
    commands.send(command).await.map_err(|_| gone())?;
    match tokio::time::timeout(TIMEOUT, rx).await {
        Ok(Ok(v)) => Ok(wrap(v)),
        Ok(Err(_)) => Err(gone()),
        Err(_) => Err("the daemon did not answer within 10s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_daemons_user_are_allowed() {
        assert!(allowed(0, 1000));
        assert!(allowed(1000, 1000));
        assert!(!allowed(65534, 1000));
    }

    #[test]
    fn requests_are_one_tagged_json_object() {
        let r: Request =
            serde_json::from_str(r#"{"command":"approve","resource":"nginx"}"#).unwrap();
        assert_eq!(
            r,
            Request::Approve {
                resource: "nginx".into()
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"command":"status"}"#).unwrap(),
            Request::Status
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"dump"}"#).is_err());
        let reply = serde_json::to_string(&Reply::Approval(Approval::NotHeld)).unwrap();
        assert_eq!(reply, r#"{"approval":"not_held"}"#);
    }
}
