//! TLS against a real etcd: a private CA made with openssl, client certificates in every
//! key encoding, CA-only setups, and the failures an operator meets (wrong CA, missing or
//! swapped files, a certificate for another name), each with a message that says what to fix.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;

use util::{run, Etcd, KeyKind, Pki, ServerTls, Tree};

const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate.
struct Setup {
    pki: Pki,
    ca: PathBuf,
    client: (PathBuf, PathBuf),
    server: ServerTls,
}

fn setup(client_cert_auth: bool) -> Setup {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.issue("ca", "server", KeyKind::RsaPkcs8, SERVER_EXT);
    let client = pki.issue("ca", "client", KeyKind::RsaPkcs8, CLIENT_EXT);
    let server = ServerTls {
        cert,
        key,
        client_ca: client_cert_auth.then(|| ca.clone()),
    };
    Setup {
        pki,
        ca,
        client,
        server,
    }
}

fn tree() -> Tree {
    let t = Tree::new();
    t.template(
        "app.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "app",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\n",
    );
    t
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `reconfd SUB --confdir … --endpoint ENDPOINT ARGS…`
fn reconfd(t: &Tree, endpoint: &str, args: &[&str]) -> Output {
    let mut c = t.reconfd(None, args);
    c.args(["--endpoint", endpoint]);
    run(c)
}

#[test]
fn client_certificate_in_every_key_encoding() {
    let st = setup(true);
    let etcd = Etcd::start_tls(&st.server);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let t = tree();
    for (name, kind) in [
        ("pkcs8", KeyKind::RsaPkcs8),
        ("pkcs1", KeyKind::RsaPkcs1),
        ("sec1", KeyKind::EcSec1),
    ] {
        let (cert, key) = st.pki.issue("ca", name, kind, CLIENT_EXT);
        let _ = std::fs::remove_file(t.out().join("app.conf"));
        let o = reconfd(
            &t,
            &etcd.tls_endpoint(),
            &[
                "once",
                "--ca-file",
                &s(&st.ca),
                "--cert-file",
                &s(&cert),
                "--key-file",
                &s(&key),
            ],
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n", "{name}");
    }
    // The endpoint's host may be a name the certificate carries.
    let o = reconfd(
        &t,
        &etcd.tls_endpoint_as("localhost"),
        &[
            "once",
            "--ca-file",
            &s(&st.ca),
            "--cert-file",
            &s(&st.client.0),
            "--key-file",
            &s(&st.client.1),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn ca_only_against_a_server_without_client_certificates() {
    let st = setup(false);
    let etcd = Etcd::start_tls(&st.server);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let t = tree();
    let o = reconfd(&t, &etcd.tls_endpoint(), &["once", "--ca-file", &s(&st.ca)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
}

#[test]
fn missing_client_certificate_is_explained() {
    let st = setup(true);
    let etcd = Etcd::start_tls(&st.server);
    let t = tree();
    let o = reconfd(&t, &etcd.tls_endpoint(), &["once", "--ca-file", &s(&st.ca)]);
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    assert!(
        text(&o).contains("set etcd.tls.cert_file and key_file"),
        "{}",
        text(&o)
    );
}

#[test]
fn wrong_ca_fails_clearly() {
    let st = setup(true);
    let other = st.pki.ca("other");
    let etcd = Etcd::start_tls(&st.server);
    let t = tree();
    let o = reconfd(
        &t,
        &etcd.tls_endpoint(),
        &[
            "once",
            "--ca-file",
            &s(&other),
            "--cert-file",
            &s(&st.client.0),
            "--key-file",
            &s(&st.client.1),
        ],
    );
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("UnknownIssuer"), "{out}");
    assert!(
        out.contains(&format!(
            "cannot connect to {}: TLS handshake failed: invalid peer certificate: UnknownIssuer",
            etcd.tls_endpoint()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("not signed by a CA in {}", s(&other))),
        "{out}"
    );
    assert!(!t.out().join("app.conf").exists());
}

#[test]
fn hostname_mismatch_fails_and_server_name_fixes_it() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.issue(
        "ca",
        "server",
        KeyKind::EcSec1,
        "subjectAltName=DNS:etcd.test\nextendedKeyUsage=serverAuth",
    );
    let etcd = Etcd::start_tls(&ServerTls {
        cert,
        key,
        client_ca: None,
    });
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let t = tree();
    let o = reconfd(&t, &etcd.tls_endpoint(), &["once", "--ca-file", &s(&ca)]);
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("not valid for name"), "{out}");
    assert!(out.contains("server_name"), "{out}");

    let config = t.root.path().join("reconfd.toml");
    std::fs::write(
        &config,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\n[etcd.tls]\nca_file = \"{}\"\nserver_name = \"etcd.test\"\n",
            etcd.tls_endpoint(),
            s(&ca)
        ),
    )
    .unwrap();
    let o = run(t.reconfd(None, &["once", "--config", &s(&config)]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
}

/// Broken files are found before any connection, by `check` (which never contacts etcd:
/// the endpoint here has nothing listening) and by `once`, each named with what is wrong.
#[test]
fn wrong_files_are_named_with_what_is_wrong() {
    let st = setup(true);
    let t = tree();
    let endpoint = format!("https://127.0.0.1:{}", util::free_port());
    let (other_cert, _) = st.pki.issue("ca", "other", KeyKind::EcSec1, CLIENT_EXT);
    let garbage = st.pki.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = st.pki.path("missing-key.pem");
    let (ca, cert, key) = (s(&st.ca), s(&st.client.0), s(&st.client.1));
    let cases: Vec<([String; 3], String)> = vec![
        (
            [ca.clone(), cert.clone(), s(&missing)],
            format!("{}: cannot read the client key", s(&missing)),
        ),
        (
            [ca.clone(), key.clone(), cert.clone()],
            format!("no certificate in {key} (the client certificate): it holds a private key"),
        ),
        (
            [ca.clone(), cert.clone(), cert.clone()],
            format!("no private key in {cert} (the client key): it holds a certificate"),
        ),
        (
            [s(&garbage), cert.clone(), key.clone()],
            format!("{}: certificate #1 of the CA file cannot be used", s(&garbage)),
        ),
        (
            [key.clone(), cert.clone(), key.clone()],
            format!("no certificate in {key} (the CA file)"),
        ),
        (
            [ca.clone(), s(&other_cert), key.clone()],
            format!(
                "client key {key} cannot be used with certificate {}: the key does not belong to the certificate",
                s(&other_cert)
            ),
        ),
    ];
    for ([ca, cert, key], want) in cases {
        for sub in ["check", "once"] {
            let o = reconfd(
                &t,
                &endpoint,
                &[
                    sub,
                    "--ca-file",
                    &ca,
                    "--cert-file",
                    &cert,
                    "--key-file",
                    &key,
                ],
            );
            assert_eq!(o.status.code(), Some(78), "{sub}: {}", text(&o));
            assert!(
                text(&o).contains(&want),
                "{sub}: want {want:?} in:\n{}",
                text(&o)
            );
        }
    }
}

#[test]
fn tls_settings_that_cannot_work_are_config_errors() {
    let st = setup(false);
    let t = tree();
    // TLS files with http:// endpoints.
    let o = reconfd(
        &t,
        "http://127.0.0.1:1",
        &["check", "--ca-file", &s(&st.ca)],
    );
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        text(&o).contains("TLS needs https:// endpoints"),
        "{}",
        text(&o)
    );
    // https:// without a CA: nothing could verify the server.
    let o = reconfd(&t, "https://127.0.0.1:1", &["once"]);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(text(&o).contains("need etcd.tls.ca_file"), "{}", text(&o));
}

/// Username and password over TLS: auth is set up through the plain listener, reconfd logs
/// in over the TLS one with a client certificate.
#[test]
fn password_over_tls() {
    let st = setup(true);
    let mut etcd = Etcd::start_tls(&st.server);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    etcd.enable_auth("root-pw");
    etcd.add_reader("reconfd", "tls-Pw-5e1f", "reconfd-read", &["/services"]);
    let t = tree();
    let pw = t.root.path().join("pw");
    std::fs::write(&pw, "tls-Pw-5e1f\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = reconfd(
        &t,
        &etcd.tls_endpoint(),
        &[
            "once",
            "--ca-file",
            &s(&st.ca),
            "--cert-file",
            &s(&st.client.0),
            "--key-file",
            &s(&st.client.1),
            "--username",
            "reconfd",
            "--password-file",
            &s(&pw),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    assert!(!text(&o).contains("tls-Pw-5e1f"));
}
