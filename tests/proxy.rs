//! reconfd behind etcd's gRPC proxy (`etcd grpc-proxy start`), the deployment for a fleet:
//! `run` renders and follows changes through it (plain, with etcd users and roles, with TLS
//! between reconfd and the proxy), the serializable read (`[etcd] read = "serializable"`)
//! still renders one revision, a stale answer from the proxy's cache is corrected by the
//! watch (and one older than etcd's compaction is read again), and a proxy restart loses no
//! change.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use util::{run, Daemon, Etcd, KeyKind, Pki, Proxy, Tree};

const WAIT: Duration = Duration::from_secs(20);

/// A tree with resource `app` watching `/services/apache`, rendering one `server` line per
/// backend into `out/app.conf`, and a config file `reconfd.toml` holding `config`.
fn tree(config: &str) -> (Tree, PathBuf) {
    let t = Tree::new();
    t.template(
        "app.tera",
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    );
    t.resource(
        "app",
        "[template]\nsrc = \"app.tera\"\ndest = \"@OUT@/app.conf\"\nkeys = [\"/services/apache\"]\ndebounce = \"0\"\n",
    );
    let cfg = t.root.path().join("reconfd.toml");
    std::fs::write(&cfg, config).unwrap();
    (t, cfg)
}

const SERIALIZABLE: &str = "[etcd]\nread = \"serializable\"\n";

/// `reconfd run --config CFG --confdir … --endpoint ENDPOINT EXTRA…`
fn daemon(t: &Tree, cfg: &Path, endpoint: &str, extra: &[&str]) -> Daemon {
    let mut c = t.reconfd(None, &["run"]);
    c.arg("--config")
        .arg(cfg)
        .args(["--endpoint", endpoint])
        .args(extra);
    Daemon::spawn(c)
}

/// `reconfd once --config CFG --confdir … --endpoint ENDPOINT`, which must succeed.
fn once(t: &Tree, cfg: &Path, endpoint: &str) {
    let mut c = t.reconfd(None, &["once"]);
    c.arg("--config").arg(cfg).args(["--endpoint", endpoint]);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_content(d: &Daemon, path: &Path, want: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if std::fs::read_to_string(path).ok().as_deref() == Some(want) {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{} never became {want:?} (is {:?}); daemon log:\n{}",
                path.display(),
                std::fs::read_to_string(path).ok(),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The revision of the daemon's `n`-th (1-based) full read, from its log line.
fn read_revision(d: &Daemon, n: usize) -> i64 {
    let log = d.log();
    let line = log
        .lines()
        .filter(|l| l.contains("read every watched key"))
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no full read #{n} in the log:\n{log}"));
    let rev = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("revision="))
        .unwrap_or_else(|| panic!("no revision in {line:?}"));
    rev.parse().unwrap()
}

#[test]
fn check_rejects_an_unknown_read_mode_with_file_and_line() {
    let (t, cfg) = tree("prefix = \"\"\n[etcd]\nread = \"eventual\"\n");
    let mut c = t.reconfd(None, &["check"]);
    c.arg("--config").arg(&cfg);
    let out = run(c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains(&format!("{}:3:", cfg.display())),
        "the error names the file and line: {err}"
    );
    assert!(
        err.contains("linearizable") && err.contains("serializable"),
        "the error names the accepted values: {err}"
    );
    // Both accepted values pass.
    for mode in ["linearizable", "serializable"] {
        std::fs::write(&cfg, format!("[etcd]\nread = \"{mode}\"\n")).unwrap();
        let mut c = t.reconfd(None, &["check"]);
        c.arg("--config").arg(&cfg);
        let out = run(c);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn run_renders_and_follows_changes_through_the_proxy() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(&etcd);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    for (mode, config) in [("linearizable", ""), ("serializable", SERIALIZABLE)] {
        let (t, cfg) = tree(config);
        let dest = t.out().join("app.conf");
        let d = daemon(&t, &cfg, &proxy.endpoint, &[]);
        d.wait_ready();
        wait_content(&d, &dest, "server 10.0.0.1:80;\n");
        // Written to etcd directly (as registrations usually are), and through the proxy.
        etcd.put("/services/apache/b", "10.0.0.2:80");
        wait_content(&d, &dest, "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n");
        etcd.delete("/services/apache/b");
        wait_content(&d, &dest, "server 10.0.0.1:80;\n");
        assert_eq!(
            d.log_count("read every watched key"),
            1,
            "{mode}: one full read, then only the watch; log:\n{}",
            d.log()
        );
    }
}

/// A transaction changing two keys at once, under two watched prefixes (so the serializable
/// read takes four `Range` requests), is never rendered half applied, through the proxy's
/// cache or straight from etcd, while a writer keeps committing such transactions.
#[test]
fn serializable_read_renders_one_revision() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(&etcd);
    etcd.put_all(&[("/a/n", "0"), ("/b/n", "0")]);
    let t = Tree::new();
    t.template(
        "pair.tera",
        "{{ getv(key=\"/a/n\") }} {{ getv(key=\"/b/n\") }}\n",
    );
    t.resource(
        "pair",
        "[template]\nsrc = \"pair.tera\"\ndest = \"@OUT@/pair\"\nkeys = [\"/a\", \"/b\"]\n",
    );
    let cfg = t.root.path().join("reconfd.toml");
    std::fs::write(&cfg, SERIALIZABLE).unwrap();

    /// Stops the writer however the reading ends (a failed assertion too), so the scope
    /// can join it.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                n += 1;
                let v = n.to_string();
                etcd.put_all(&[("/a/n", &v), ("/b/n", &v)]);
            }
            n
        });
        let guard = Stop(&stop);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..24 {
            let endpoint = if i % 3 == 2 {
                &etcd.endpoint
            } else {
                &proxy.endpoint
            };
            once(&t, &cfg, endpoint);
            let text = t.read("pair");
            let (a, b) = text.trim().split_once(' ').unwrap();
            assert_eq!(a, b, "a transaction was rendered half applied: {text:?}");
            seen.insert(a.to_owned());
            // The proxy answers the unpinned first read (of the key `/a` itself) from its
            // cache until a linearizable read of it through the proxy refreshes the entry:
            // do one now and then so reads land at different revisions.
            if i % 4 == 3 {
                let out = std::process::Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args(["--endpoints", proxy.endpoint.trim_start_matches("http://")])
                    .args(["get", "/a"])
                    .output()
                    .unwrap();
                assert!(out.status.success());
            }
        }
        drop(guard);
        let written = writer.join().unwrap();
        assert!(
            written > 5,
            "the writer committed only {written} transactions"
        );
        assert!(
            seen.len() > 2,
            "the reads all landed on few revisions ({seen:?}), so they proved little"
        );
    });
}

/// etcd with one backend, a proxy, and a serializable tree whose `reconfd once` (another
/// host's start) filled the proxy's cache; returns them and the cached revision.
fn cache_filled() -> (Etcd, Proxy, Tree, PathBuf, i64) {
    let etcd = Etcd::start();
    let proxy = Proxy::start(&etcd);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let (t, cfg) = tree(SERIALIZABLE);
    once(&t, &cfg, &proxy.endpoint);
    let cached = etcd.revision();
    (etcd, proxy, t, cfg, cached)
}

/// The proxy caches a serializable answer and does not see writes that go to etcd directly:
/// the daemon's read is then older than etcd, and the watch from the read's revision brings
/// what it missed.
#[test]
fn stale_cached_answer_is_corrected_by_the_watch() {
    let (etcd, proxy, t, cfg, cached) = cache_filled();
    let dest = t.out().join("app.conf");
    etcd.put("/services/apache/b", "10.0.0.2:80");
    etcd.put("/services/apache/a", "10.0.0.3:80");
    let now = etcd.revision();

    let d = daemon(&t, &cfg, &proxy.endpoint, &[]);
    wait_content(&d, &dest, "server 10.0.0.2:80;\nserver 10.0.0.3:80;\n");
    assert_eq!(
        read_revision(&d, 1),
        cached,
        "the daemon's read came from the proxy's cache (etcd is at {now})"
    );
    etcd.put("/services/apache/c", "10.0.0.4:80");
    wait_content(
        &d,
        &dest,
        "server 10.0.0.2:80;\nserver 10.0.0.3:80;\nserver 10.0.0.4:80;\n",
    );
}

/// A cached answer older than etcd's compaction could never be followed by a watch: the read
/// notices and reads at the current revision instead of looping on the same cached answer.
#[test]
fn cached_answer_older_than_compaction_is_read_again() {
    let (etcd, proxy, t, cfg, cached) = cache_filled();
    let dest = t.out().join("app.conf");
    etcd.put("/services/apache/a", "10.0.0.5:80");
    etcd.compact(etcd.revision());

    let d = daemon(&t, &cfg, &proxy.endpoint, &[]);
    wait_content(&d, &dest, "server 10.0.0.5:80;\n");
    d.wait_ready();
    assert!(
        read_revision(&d, 1) > cached,
        "the read was not taken again at the current revision; log:\n{}",
        d.log()
    );
    assert_eq!(
        d.log_count("older than etcd's compaction"),
        1,
        "{}",
        d.log()
    );
    // The proxy now caches the fresh answer: another start needs no second try.
    drop(d);
    std::fs::remove_file(&dest).unwrap();
    once(&t, &cfg, &proxy.endpoint);
    assert_eq!(t.read("app.conf"), "server 10.0.0.5:80;\n");
}

/// The proxy dies and comes back (a deploy, a crash): the daemon reconnects and resumes
/// its watch from its revision, so a change made while the proxy was down arrives too.
#[test]
fn proxy_restart_loses_no_change() {
    let etcd = Etcd::start();
    let mut proxy = Proxy::start(&etcd);
    etcd.put("/services/apache/a", "10.0.0.1:80");
    for config in ["", SERIALIZABLE] {
        let (t, cfg) = tree(config);
        let dest = t.out().join("app.conf");
        let d = daemon(&t, &cfg, &proxy.endpoint, &[]);
        d.wait_ready();
        wait_content(&d, &dest, "server 10.0.0.1:80;\n");
        proxy.stop();
        etcd.put("/services/apache/b", "10.0.0.2:80");
        proxy.start_again();
        wait_content(&d, &dest, "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n");
        etcd.put("/services/apache/c", "10.0.0.3:80");
        wait_content(
            &d,
            &dest,
            "server 10.0.0.1:80;\nserver 10.0.0.2:80;\nserver 10.0.0.3:80;\n",
        );
        // Back to one backend for the next round.
        etcd.delete("/services/apache/b");
        etcd.delete("/services/apache/c");
        wait_content(&d, &dest, "server 10.0.0.1:80;\n");
    }
}

/// etcd users and roles through the proxy: the proxy passes the client's token on, so the
/// read-only user logs in, reads and watches its prefix through it.
#[test]
fn auth_through_the_proxy() {
    const PASSWORD: &str = "Pw-proxy-5e1f-sekrit";
    let mut etcd = Etcd::start();
    etcd.put("/svc/services/apache/a", "10.0.0.1:80");
    etcd.enable_auth("root-proxy-77ab");
    etcd.add_reader("reconfd", PASSWORD, "reconfd-read", &["/svc"]);
    let proxy = Proxy::start(&etcd);
    for config in ["", SERIALIZABLE] {
        let (t, cfg) = tree(config);
        let pw = t.root.path().join("pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let dest = t.out().join("app.conf");
        let d = daemon(
            &t,
            &cfg,
            &proxy.endpoint,
            &[
                "--prefix",
                "/svc",
                "--username",
                "reconfd",
                "--password-file",
                &pw.display().to_string(),
            ],
        );
        d.wait_ready();
        wait_content(&d, &dest, "server 10.0.0.1:80;\n");
        etcd.put("/svc/services/apache/b", "10.0.0.2:80");
        wait_content(&d, &dest, "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n");
        etcd.delete("/svc/services/apache/b");
        wait_content(&d, &dest, "server 10.0.0.1:80;\n");
        assert!(!d.log().contains(PASSWORD), "{}", d.log());
    }
}

/// TLS between reconfd and the proxy, with client certificates (`--trusted-ca-file` makes
/// the proxy require them); the proxy talks plain HTTP to etcd here.
#[test]
fn tls_between_reconfd_and_the_proxy() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.issue(
        "ca",
        "proxy",
        KeyKind::RsaPkcs8,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
    );
    let (ccert, ckey) = pki.issue(
        "ca",
        "client",
        KeyKind::EcSec1,
        "extendedKeyUsage=clientAuth",
    );
    let s = |p: &Path| p.display().to_string();
    let etcd = Etcd::start();
    etcd.put("/services/apache/a", "10.0.0.1:80");
    let proxy = Proxy::start_with(
        &etcd,
        &[
            "--cert-file",
            &s(&cert),
            "--key-file",
            &s(&key),
            "--trusted-ca-file",
            &s(&ca),
        ],
    );
    assert!(proxy.endpoint.starts_with("https://"));
    let (t, cfg) = tree(SERIALIZABLE);
    let dest = t.out().join("app.conf");

    // Without a client certificate the proxy refuses the connection.
    let mut c = t.reconfd(None, &["once"]);
    c.arg("--config")
        .arg(&cfg)
        .args(["--endpoint", &proxy.endpoint, "--ca-file", &s(&ca)]);
    let out = run(c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("client certificate"), "{err}");

    let d = daemon(
        &t,
        &cfg,
        &proxy.endpoint,
        &[
            "--ca-file",
            &s(&ca),
            "--cert-file",
            &s(&ccert),
            "--key-file",
            &s(&ckey),
        ],
    );
    d.wait_ready();
    wait_content(&d, &dest, "server 10.0.0.1:80;\n");
    etcd.put("/services/apache/b", "10.0.0.2:80");
    wait_content(&d, &dest, "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n");
}
