//! TLS to etcd: loading and validating the PEM files before any connection, so a wrong file
//! is reported by name and reason ("no private key in …") instead of as a handshake failure
//! later.
//!
//! - `ca_file`: a PEM bundle of the CA certificates that sign the servers' certificates. It is
//!   required with `https://` endpoints: etcd-client's rustls setup loads no system roots, so
//!   without it nothing would verify (config validation enforces this). Every certificate in
//!   it must parse; an unusable CA is an error, never a silent fallback.
//! - `cert_file` + `key_file`: the client certificate (chain) and its key, for servers started
//!   with `--client-cert-auth`. Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC); the key must
//!   belong to the certificate. Without them the connection is server-authenticated only.
//! - `server_name`: the name the servers' certificates are checked against instead of the
//!   endpoints' host (an IP endpoint whose certificate names only DNS names, say).
//!
//! The files are read again at every connection, so replaced certificates are picked up by
//! the next reconnect. What this module does not do: decide *whether* TLS is used (the
//! endpoints' scheme does, see [`crate::config`]) or connect.

use std::path::{Path, PathBuf};

use etcd_client::{Certificate, Identity, TlsOptions};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pemfile::Item;

use crate::config::EtcdSettings;

/// A TLS file that cannot be used, or a bad server name. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{path}: cannot read the {what}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What it is for.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM, or a PEM section is damaged.
    #[error("{path}: the {what} is not valid PEM: {source}", path = path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it is for.
        what: &'static str,
        /// The parser's error.
        source: std::io::Error,
    },
    /// No `CERTIFICATE` section.
    #[error("no certificate in {path} (the {what}){hint}", path = path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What it is for.
        what: &'static str,
        /// What the file holds instead, when that helps.
        hint: String,
    },
    /// No private key section.
    #[error("no private key in {path} (the client key){hint}", path = path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the file holds instead, when that helps.
        hint: String,
    },
    /// A CA certificate that does not parse as X.509.
    #[error("{path}: certificate #{index} of the CA file cannot be used: {reason}", path = path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        /// rustls' reason.
        reason: String,
    },
    /// The key cannot be loaded or does not belong to the certificate.
    #[error("client key {key} cannot be used with certificate {cert}: {reason}", key = key.display(), cert = cert.display())]
    BadKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// `server_name` is not a DNS name or an IP address.
    #[error("etcd.tls.server_name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
}

const CA: &str = "CA file";
const CERT: &str = "client certificate";
const KEY: &str = "client key";

/// The TLS options for `settings`, with every file loaded and validated; `None` when the
/// endpoints are not `https://`.
pub fn options(settings: &EtcdSettings) -> Result<Option<TlsOptions>, TlsError> {
    if !uses_tls(settings) {
        return Ok(None);
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = &settings.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(load_ca(ca)?));
    }
    if let Some((cert, key)) = &settings.client_cert {
        let (cert_pem, key_pem) = load_identity(cert, key)?;
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    if let Some(name) = &settings.server_name {
        check_server_name(name)?;
        tls = tls.domain_name(name.clone());
    }
    Ok(Some(tls))
}

/// Every problem with the TLS files, for `reconfd check` (no connection is made).
pub fn file_problems(settings: &EtcdSettings) -> Vec<TlsError> {
    let mut problems = Vec::new();
    if !uses_tls(settings) {
        return problems;
    }
    if let Some(ca) = &settings.ca_file {
        problems.extend(load_ca(ca).err());
    }
    if let Some((cert, key)) = &settings.client_cert {
        problems.extend(load_identity(cert, key).err());
    }
    if let Some(name) = &settings.server_name {
        problems.extend(check_server_name(name).err());
    }
    problems
}

fn uses_tls(settings: &EtcdSettings) -> bool {
    settings.endpoints.iter().any(|e| e.starts_with("https://"))
        || settings.srv.as_ref().is_some_and(|s| s.tls)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        what,
        source,
    })
}

/// What a PEM file holds: its certificates and its first private key.
#[derive(Default)]
struct Pem {
    certs: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
}

fn parse(path: &Path, what: &'static str, bytes: &[u8]) -> Result<Pem, TlsError> {
    let mut pem = Pem::default();
    for item in rustls_pemfile::read_all(&mut &bytes[..]) {
        let item = item.map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            what,
            source,
        })?;
        match item {
            Item::X509Certificate(c) => pem.certs.push(c),
            Item::Pkcs1Key(k) if pem.key.is_none() => pem.key = Some(k.into()),
            Item::Pkcs8Key(k) if pem.key.is_none() => pem.key = Some(k.into()),
            Item::Sec1Key(k) if pem.key.is_none() => pem.key = Some(k.into()),
            _ => {}
        }
    }
    Ok(pem)
}

/// Why a file without the wanted section might be that way.
fn hint(bytes: &[u8], pem: &Pem, want_key: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    if want_key && text.contains("ENCRYPTED PRIVATE KEY") {
        return ": it holds an encrypted key, which reconfd cannot use; decrypt it with `openssl pkey -in KEY -out KEY.plain`".into();
    }
    if !want_key && pem.key.is_some() {
        return ": it holds a private key; are cert_file and key_file swapped?".into();
    }
    if want_key && !pem.certs.is_empty() {
        return ": it holds a certificate; are cert_file and key_file swapped?".into();
    }
    if !text.contains("-----BEGIN") {
        return ": it is not a PEM file (no -----BEGIN line); convert DER with `openssl x509 -inform der`".into();
    }
    String::new()
}

/// Reads the CA bundle; every certificate must parse as X.509.
fn load_ca(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read(path, CA)?;
    let pem = parse(path, CA, &bytes)?;
    if pem.certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            what: CA,
            hint: hint(&bytes, &pem, false),
        });
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in pem.certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            path: path.to_owned(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(bytes)
}

/// Reads the client certificate and key and checks that the key loads and belongs to the
/// certificate.
fn load_identity(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let cert_bytes = read(cert, CERT)?;
    let cert_pem = parse(cert, CERT, &cert_bytes)?;
    if cert_pem.certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
            what: CERT,
            hint: hint(&cert_bytes, &cert_pem, false),
        });
    }
    let key_bytes = read(key, KEY)?;
    let key_pem = parse(key, KEY, &key_bytes)?;
    let Some(private) = key_pem.key.as_ref().map(|k| k.clone_key()) else {
        return Err(TlsError::NoKey {
            path: key.to_owned(),
            hint: hint(&key_bytes, &key_pem, true),
        });
    };
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(cert_pem.certs, private, &provider).map_err(|e| {
        TlsError::BadKey {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "the key does not belong to the certificate".into()
                }
                e => e.to_string(),
            },
        }
    })?;
    Ok((cert_bytes, key_bytes))
}

fn check_server_name(name: &str) -> Result<(), TlsError> {
    ServerName::try_from(name)
        .map(|_| ())
        .map_err(|_| TlsError::ServerName(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> EtcdSettings {
        EtcdSettings {
            endpoints: vec!["https://127.0.0.1:2379".into()],
            username: None,
            password: None,
            password_file: None,
            password_credential: None,
            password_keyring: false,
            ca_file: Some(dir.join("ca.pem")),
            client_cert: Some((dir.join("client.pem"), dir.join("client-key.pem"))),
            server_name: None,
            read: Default::default(),
            max_message_size: crate::config::DEFAULT_MAX_MESSAGE_SIZE,
            reread_jitter: std::time::Duration::ZERO,
            srv: None,
            prefer_first_after: None,
        }
    }

    #[test]
    fn files_are_named_with_what_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path());
        let problems: Vec<String> = file_problems(&s).iter().map(|e| e.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("ca.pem") && problems[0].contains("cannot read the CA file"));
        assert!(problems[1].contains("client.pem"));

        std::fs::write(d.path().join("ca.pem"), "hello\n").unwrap();
        std::fs::write(
            d.path().join("client.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let problems: Vec<String> = file_problems(&s).iter().map(|e| e.to_string()).collect();
        assert!(
            problems[0].starts_with("no certificate in ") && problems[0].contains("not a PEM file"),
            "{problems:?}"
        );
        assert!(problems[1].contains("swapped"), "{problems:?}");

        // A PEM wrapper around garbage is not a CA.
        std::fs::write(
            d.path().join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let problems: Vec<String> = file_problems(&s).iter().map(|e| e.to_string()).collect();
        assert!(problems[0].contains("certificate #1"), "{problems:?}");
    }

    #[test]
    fn plain_http_needs_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings(d.path());
        s.endpoints = vec!["http://127.0.0.1:2379".into()];
        assert!(file_problems(&s).is_empty());
        assert!(options(&s).unwrap().is_none());
    }

    #[test]
    fn server_name_must_be_a_name() {
        assert!(check_server_name("etcd.example").is_ok());
        assert!(check_server_name("10.0.0.1").is_ok());
        assert!(check_server_name("not a name").is_err());
    }
}
