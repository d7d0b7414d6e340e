//! Turns the etcd client's errors into words a person can act on.
//!
//! etcd-client wraps tonic, which wraps hyper, which wraps the socket's `io::Error` or
//! rustls' error; their `Display` shows either nothing useful ("transport error") or the whole
//! `Debug` structure. [`connection_failure`] walks the error's source chain to the part that
//! says why a connection failed; [`describe`] gives one line for any client error.

use std::error::Error as StdError;
use std::io;

/// Why a connection to an etcd member could not be made, in a person's words (`connection
/// refused`, `timed out`, `TLS handshake failed: …`, `cannot resolve the host: …`); `None`
/// when `e` is not a connection failure (etcd answered, with an error).
pub fn connection_failure(e: &etcd_client::Error) -> Option<String> {
    let top: &(dyn StdError + 'static) = match e {
        etcd_client::Error::GRpcStatus(s) if is_request_timeout(s) => {
            return Some("timed out waiting for an answer".to_owned());
        }
        etcd_client::Error::GRpcStatus(s) => s,
        etcd_client::Error::TransportError(t) => t,
        etcd_client::Error::IoError(io) => io,
        _ => return None,
    };
    let mut reason = None;
    let mut current = Some(top);
    while let Some(err) = current {
        if let Some(r) = reason_of(err) {
            // The innermost error that says something is the most precise.
            reason = Some(r);
        }
        current = err.source();
    }
    reason
}

/// tonic reports its own request timeout as `Cancelled` with `TimeoutExpired`'s text and no
/// source: the member never answered (hung, overloaded, cut off), etcd said nothing.
fn is_request_timeout(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Cancelled && s.message() == tonic::TimeoutExpired(()).to_string()
}

/// One line for any client error: the connection failure, else etcd's status message and
/// code, else the client's own text.
pub fn describe(e: &etcd_client::Error) -> String {
    if let Some(r) = connection_failure(e) {
        return r;
    }
    match e {
        etcd_client::Error::GRpcStatus(s) if s.message().is_empty() => {
            format!("etcd answered {:?}", s.code())
        }
        etcd_client::Error::GRpcStatus(s) => {
            format!("etcd answered {:?}: {}", s.code(), s.message())
        }
        other => other.to_string(),
    }
}

/// What one link of a source chain says about a failed connection, if anything.
fn reason_of(err: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(format!("TLS handshake failed: {tls}"));
    }
    if let Some(io) = err.downcast_ref::<io::Error>() {
        if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(format!("TLS handshake failed: {tls}"));
        }
        return Some(io_reason(io));
    }
    let text = err.to_string();
    if text.contains("timed out") || text.contains("deadline has elapsed") {
        return Some("timed out".to_owned());
    }
    if text.contains("tls handshake eof") {
        return Some("TLS handshake failed: the server closed the connection".to_owned());
    }
    if text.contains("connection closed") {
        return Some("the server closed the connection".to_owned());
    }
    None
}

fn io_reason(io: &io::Error) -> String {
    match io.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            "the server closed the connection".to_owned()
        }
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            "no route to the host".to_owned()
        }
        io::ErrorKind::AddrNotAvailable => "the address is not available".to_owned(),
        _ => {
            let text = io.to_string();
            if text.contains("failed to lookup address") || text.contains("Name or service") {
                format!("cannot resolve the host: {}", lowercase_first(&text))
            } else {
                lowercase_first(&text)
            }
        }
    }
}

/// `Connection refused (os error 111)` reads better mid-sentence as `connection refused…`.
fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_in_a_status_says_why() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused");
        let mut status = tonic::Status::unavailable("tcp connect error");
        status.set_source(std::sync::Arc::new(io));
        let e = etcd_client::Error::GRpcStatus(status);
        assert_eq!(
            connection_failure(&e).as_deref(),
            Some("connection refused")
        );
        assert_eq!(describe(&e), "connection refused");
    }

    #[test]
    fn a_rustls_error_is_a_failed_handshake() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, tls);
        let e = etcd_client::Error::IoError(io);
        let r = connection_failure(&e).unwrap();
        assert!(r.starts_with("TLS handshake failed: "), "{r}");
        assert!(r.contains("UnknownIssuer"), "{r}");
    }

    #[test]
    fn the_clients_own_timeout_is_not_an_answer_from_etcd() {
        // What tonic makes of an expired `with_timeout` (seen in CI as "etcd answered
        // Cancelled: Timeout expired" for a SIGSTOPped member).
        let e = etcd_client::Error::GRpcStatus(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(describe(&e), "timed out waiting for an answer");
        // A cancel with another message is etcd's (or the stream's) own.
        let e = etcd_client::Error::GRpcStatus(tonic::Status::cancelled("watch closed"));
        assert_eq!(connection_failure(&e), None);
    }

    #[test]
    fn an_answer_from_etcd_is_not_a_connection_failure() {
        let e = etcd_client::Error::GRpcStatus(tonic::Status::permission_denied(
            "etcdserver: permission denied",
        ));
        assert_eq!(connection_failure(&e), None);
        assert_eq!(
            describe(&e),
            "etcd answered PermissionDenied: etcdserver: permission denied"
        );
    }
}
