//! SIGHUP with a TLS or password file broken in place: the new configuration is refused and
//! the running one keeps following etcd. The refused reload still starts a new generation,
//! which connects again; it must do so with the files as they were last read, not fail on the
//! broken ones (which would leave the daemon "running" but cut off from etcd).

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use util::{Daemon, Etcd, KeyKind, Pki, ServerTls, Tree};

const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth";
const UPSTREAM: &str =
    "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}";
const REFUSED: &str = "the new configuration is invalid; keeping the running one";
const KEPT: &str = "connecting with the version read before";

fn tree() -> Tree {
    let t = Tree::new();
    t.template("app.tera", UPSTREAM);
    t.resource(
        "app",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\n",
    );
    t
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Breaks `file` in place, SIGHUPs the daemon, and checks that a change made afterwards
/// still reaches the destination through the generation the refused reload started.
fn break_reload_and_follow(d: &Daemon, t: &Tree, etcd: &Etcd, file: &Path, broken: &str) {
    std::fs::write(file, broken).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log(Duration::from_secs(20), REFUSED, 1);
    etcd.put("/services/apache/b", "10.0.0.2:80");
    util::wait_for(
        Duration::from_secs(30),
        "the change after the refused reload",
        || (t.read("app.conf") == "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n").then_some(()),
    );
    let log = d.log();
    assert!(log.contains(KEPT), "{log}");
    assert!(log.contains(&s(file)), "the warning names the file:\n{log}");
}

#[test]
fn sighup_with_a_broken_ca_file_keeps_following_etcd() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.issue("ca", "server", KeyKind::RsaPkcs8, SERVER_EXT);
    let etcd = Etcd::start_tls(&ServerTls {
        cert,
        key,
        client_ca: None,
    });
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let t = tree();
    let ca_copy = t.root.path().join("ca.pem");
    std::fs::copy(&ca, &ca_copy).unwrap();
    let d = Daemon::spawn(t.reconfd(
        None,
        &[
            "run",
            "--endpoint",
            &etcd.tls_endpoint(),
            "--ca-file",
            &s(&ca_copy),
        ],
    ));
    d.wait_ready();
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    break_reload_and_follow(
        &d,
        &t,
        &etcd,
        &ca_copy,
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
}

#[test]
fn sighup_with_an_emptied_password_file_keeps_following_etcd() {
    const PASSWORD: &str = "Pw-reload-5e1b";
    let mut etcd = Etcd::start();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    etcd.enable_auth("root-reload-77c2");
    etcd.add_reader("reconfd", PASSWORD, "reconfd-read", &["/services"]);
    let t = tree();
    let pw = t.root.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = t.daemon(
        &etcd,
        &["--username", "reconfd", "--password-file", &s(&pw)],
    );
    d.wait_ready();
    assert_eq!(t.read("app.conf"), "server 10.0.0.1:80;\n");
    break_reload_and_follow(&d, &t, &etcd, &pw, "");
    assert!(
        !d.log().contains(PASSWORD),
        "the password leaked:\n{}",
        d.log()
    );
}
