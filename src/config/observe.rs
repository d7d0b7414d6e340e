//! `[metrics]` and `[control]`: where the daemon can be watched from. The metrics listener is
//! off unless an address is given; the control socket (for `reconfd status` and `reconfd
//! approve`) is always on, at [`DEFAULT_CONTROL_SOCKET`] unless moved.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::Diagnostic;

/// Where the control socket is when neither `[control] socket` nor `--control-socket` says.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/reconfd/control.sock";

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `"127.0.0.1:9612"` or an absolute unix socket path; absent: no listener.
    pub listen: Option<String>,
}

/// `[control]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// Path of the control socket.
    pub socket: Option<PathBuf>,
}

/// Where the metrics, `/healthz` and `/readyz` are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (loopback or an interface address; there is no authentication).
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(s)));
        }
        s.parse::<SocketAddr>().map(Listen::Tcp).map_err(|_| {
            format!("{s:?} is neither ADDRESS:PORT (e.g. \"127.0.0.1:9612\") nor an absolute unix socket path")
        })
    }
}

/// The validated `[metrics]` and `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserveSettings {
    /// The metrics listener, if any.
    pub metrics_listen: Option<Listen>,
    /// The control socket's path.
    pub control_socket: PathBuf,
}

impl Default for ObserveSettings {
    fn default() -> Self {
        ObserveSettings {
            metrics_listen: None,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
        }
    }
}

impl ObserveSettings {
    /// The file's tables with the command line's `--metrics-listen` and `--control-socket`
    /// (either may be `None`) applied; errors name `file` and the key.
    pub fn assemble(
        metrics: &RawMetrics,
        control: &RawControl,
        listen: Option<&str>,
        socket: Option<&Path>,
        file: &Path,
        errors: &mut Vec<Diagnostic>,
    ) -> Self {
        let metrics_listen = match listen.or(metrics.listen.as_deref()) {
            None | Some("") => None,
            Some(l) => match l.parse() {
                Ok(l) => Some(l),
                Err(e) => {
                    errors.push(Diagnostic::file(file, format!("metrics.listen: {e}")));
                    None
                }
            },
        };
        let control_socket = socket
            .map(Path::to_path_buf)
            .or(control.socket.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
        if !control_socket.is_absolute() {
            errors.push(Diagnostic::file(
                file,
                format!(
                    "control.socket {:?} must be an absolute path",
                    control_socket.display().to_string()
                ),
            ));
        }
        ObserveSettings {
            metrics_listen,
            control_socket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_an_address_or_an_absolute_path() {
        assert_eq!(
            "127.0.0.1:9612".parse::<Listen>().unwrap(),
            Listen::Tcp("127.0.0.1:9612".parse().unwrap())
        );
        assert_eq!(
            "/run/reconfd/metrics.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/run/reconfd/metrics.sock".into())
        );
        assert!("localhost".parse::<Listen>().is_err());
        assert!("9612".parse::<Listen>().is_err());
    }

    #[test]
    fn command_line_wins_and_errors_name_the_key() {
        let mut errors = Vec::new();
        let m = RawMetrics {
            listen: Some("127.0.0.1:1".into()),
        };
        let s = ObserveSettings::assemble(
            &m,
            &RawControl::default(),
            Some("127.0.0.1:2"),
            None,
            Path::new("/etc/reconfd/reconfd.toml"),
            &mut errors,
        );
        assert!(errors.is_empty());
        assert_eq!(s.metrics_listen.unwrap().to_string(), "127.0.0.1:2");
        assert_eq!(s.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
        let bad = RawMetrics {
            listen: Some("nonsense".into()),
        };
        let ctl = RawControl {
            socket: Some("rel.sock".into()),
        };
        ObserveSettings::assemble(&bad, &ctl, None, None, Path::new("/x.toml"), &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("/x.toml") && text[0].contains("metrics.listen"),
            "{text:?}"
        );
        assert!(text[1].contains("control.socket"), "{text:?}");
    }
}
