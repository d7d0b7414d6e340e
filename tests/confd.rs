//! `reconfd confd`: confd's command line, confd.toml and a confd tree, against a real etcd.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nix::sys::signal::Signal;
use util::{run, wait_for, Daemon, Etcd, Tree};

/// A confd resource with confd's fields only, in a subdirectory of conf.d (confd walks it).
fn confd_resource(t: &Tree, rel: &str, src: &str, dest: &str, extra: &str) -> PathBuf {
    let p = t.confdir().join("conf.d").join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let text = format!(
        "[template]\nsrc = \"{src}\"\ndest = \"{}\"\nkeys = [\"/app\"]\nmode = \"0644\"\n{extra}",
        t.out().join(dest).display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// The Go-template resource (confd's `.tmpl`) and the Tera one, both reading /app/port.
fn app_tree() -> Tree {
    let t = Tree::new();
    t.template("app.tmpl", "port = {{getv \"/app/port\"}}\n");
    t.template("app.conf", "port = {{ getv(key=\"/app/port\") }}\n");
    confd_resource(&t, "sub/app.toml", "app.tmpl", "app-go.conf", "");
    confd_resource(&t, "tera.toml", "app.conf", "app-tera.conf", "");
    t
}

/// `host:port` of etcd's plain listener, as confd users write `-node`.
fn node(etcd: &Etcd) -> String {
    etcd.endpoint.trim_start_matches("http://").to_owned()
}

/// `reconfd confd -config-file <none> -confdir <tree> ARGS`, with no confd environment of
/// the host leaking in (a later `-config-file` or `-confdir` in ARGS wins, as in Go).
fn confd(t: &Tree, args: &[&str]) -> Command {
    let mut c = util::reconfd();
    for v in [
        "CONFD_CLIENT_CERT",
        "CONFD_CLIENT_KEY",
        "CONFD_CLIENT_CAKEYS",
        "ETCDCTL_PEERS",
    ] {
        c.env_remove(v);
    }
    c.arg("confd")
        .arg("-config-file")
        .arg(t.root.path().join("no-confd.toml"))
        .arg("-confdir")
        .arg(t.confdir())
        .args(args);
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn onetime_renders_a_confd_tree_with_go_and_tera_templates() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "8080");
    let t = app_tree();
    let o = run(confd(
        &t,
        &["-onetime", "-backend", "etcdv3", "-node", &node(&etcd)],
    ));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app-go.conf"), "port = 8080\n");
    assert_eq!(t.read("app-tera.conf"), "port = 8080\n");
    assert_eq!(t.out_files(), vec!["app-go.conf", "app-tera.conf"]);
    // etcdv3 asked for explicitly: no warning about confd's v2 `etcd` backend.
    assert!(!err.contains("v2 keyspace"), "{err}");
}

#[test]
fn double_dash_flags_and_backend_etcd_warns_about_v2() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "9090");
    let t = app_tree();
    let node = format!("--node={}", node(&etcd));
    let o = run(confd(&t, &["--onetime", "--backend", "etcd", &node]));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app-go.conf"), "port = 9090\n");
    assert!(err.contains("v2 keyspace"), "{err}");
}

#[test]
fn onetime_noop_leaves_dest_untouched() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "8080");
    let t = app_tree();
    std::fs::write(t.out().join("app-go.conf"), "old\n").unwrap();
    let o = run(confd(
        &t,
        &[
            "-onetime",
            "-noop",
            "-backend=etcdv3",
            "-node",
            &node(&etcd),
        ],
    ));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app-go.conf"), "old\n");
    assert_eq!(t.out_files(), vec!["app-go.conf"]);
    assert!(out.contains("-old\n+port = 8080\n"), "{out}");
}

#[test]
fn sync_only_writes_and_runs_no_command() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "8080");
    let t = Tree::new();
    t.template("app.tmpl", "port = {{getv \"/app/port\"}}\n");
    let (checked, reloaded) = (
        t.root.path().join("checked"),
        t.root.path().join("reloaded"),
    );
    confd_resource(
        &t,
        "app.toml",
        "app.tmpl",
        "app.conf",
        &format!(
            "check_cmd = \"touch {}\"\nreload_cmd = \"touch {}\"\n",
            checked.display(),
            reloaded.display()
        ),
    );
    let args = ["-onetime", "-backend", "etcdv3", "-node", &node(&etcd)];
    let mut sync_only = args.to_vec();
    sync_only.push("-sync-only");
    let o = run(confd(&t, &sync_only));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(t.read("app.conf"), "port = 8080\n");
    assert!(!checked.exists(), "check_cmd ran under -sync-only");
    assert!(!reloaded.exists(), "reload_cmd ran under -sync-only");
    // Without it, the same change runs both.
    etcd.put("/app/port", "8081");
    let o = run(confd(&t, &args));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(t.read("app.conf"), "port = 8081\n");
    assert!(checked.exists() && reloaded.exists());
}

#[test]
fn a_binary_named_confd_takes_confds_command_line() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "7070");
    let t = app_tree();
    let bin = tempfile::tempdir().unwrap();
    let confd_bin = bin.path().join("confd");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_reconfd"), &confd_bin).unwrap();
    let mut c = Command::new(&confd_bin);
    c.env("RECONFD_CONFIG", "/dev/null")
        .env_remove("CONFD_CLIENT_CAKEYS")
        .arg("-config-file")
        .arg(t.root.path().join("no-confd.toml"))
        .arg("-confdir")
        .arg(t.confdir())
        .args(["-onetime", "-backend", "etcdv3", "-node", &node(&etcd)]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(t.read("app-go.conf"), "port = 7070\n");

    let mut c = Command::new(&confd_bin);
    c.arg("-h");
    let o = run(c);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(out.starts_with("Usage of confd:"), "{out}");
}

#[test]
fn version_help_and_usage_errors() {
    let t = Tree::new();
    for v in ["--version", "-version"] {
        let o = run(confd(&t, &[v]));
        let (out, _) = text(&o);
        assert_eq!(o.status.code(), Some(0));
        assert!(
            out.starts_with(&format!("reconfd {}", env!("CARGO_PKG_VERSION")))
                && out.contains("confd-compatible"),
            "{out}"
        );
    }
    let o = run(confd(&t, &["--help"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.starts_with("Usage of reconfd confd:"));

    let o = run(confd(&t, &["-onetime", "-backend", "consul"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("backend consul is not supported by reconfd (supported: etcd, etcdv3)"),
        "{}",
        text(&o).1
    );
    let o = run(confd(&t, &["-onetime", "-x"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("flag provided but not defined: -x"));
    let o = run(confd(&t, &["-onetime", "-table", "t"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("-table is not supported by reconfd"));
}

#[test]
fn password_reaches_the_login_but_no_log_and_no_command() {
    let mut etcd = Etcd::start();
    etcd.put("/app/port", "8080");
    etcd.enable_auth("root-pw-1");
    etcd.add_reader("reader", "s3cr3t-pw", "app-reader", &["/app"]);
    let t = Tree::new();
    t.template("app.tmpl", "port = {{getv \"/app/port\"}}\n");
    let env_file = t.root.path().join("reload-env");
    confd_resource(
        &t,
        "app.toml",
        "app.tmpl",
        "app.conf",
        &format!("reload_cmd = \"env > {}\"\n", env_file.display()),
    );
    let o = run(confd(
        &t,
        &[
            "-onetime",
            "-backend",
            "etcdv3",
            "-node",
            &node(&etcd),
            "-basic-auth",
            "-username",
            "reader",
            "-password",
            "s3cr3t-pw",
        ],
    ));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app.conf"), "port = 8080\n");
    assert!(err.contains("other users of this host"), "{err}");
    assert!(
        !err.contains("s3cr3t-pw") && !out.contains("s3cr3t-pw"),
        "{err}"
    );
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        !env.contains("s3cr3t-pw"),
        "the reload command saw the password"
    );

    // From confd.toml (owner-only): no command-line warning, same login.
    let cfg = t.root.path().join("confd.toml");
    std::fs::write(&cfg, "username = \"reader\"\npassword = \"s3cr3t-pw\"\n").unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    etcd.put("/app/port", "8081");
    let cfg = cfg.display().to_string();
    let o = run(confd(
        &t,
        &[
            "-onetime",
            "-backend",
            "etcdv3",
            "-node",
            &node(&etcd),
            "-config-file",
            &cfg,
        ],
    ));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app.conf"), "port = 8081\n");
    assert!(!err.contains("other users"), "{err}");
}

#[test]
fn confd_toml_in_the_confdir_with_flags_winning() {
    let etcd = Etcd::start();
    etcd.put("/dc1/app/port", "1111");
    etcd.put("/wrong/app/port", "2222");
    let t = app_tree();
    let cfg = t.confdir().join("confd.toml");
    std::fs::write(
        &cfg,
        format!(
            "backend = \"etcdv3\"\nnodes = [\"{}\"]\nconfdir = \"{}\"\nprefix = \"/wrong\"\nonetime = true\nlog-level = \"info\"\nbogus = 1\n",
            node(&etcd),
            t.confdir().display()
        ),
    )
    .unwrap();
    let mut c = util::reconfd();
    c.arg("confd")
        .arg(format!("-config-file={}", cfg.display()))
        .args(["-prefix", "/dc1"]);
    let o = run(c);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app-go.conf"), "port = 1111\n");
    assert!(
        err.contains(&format!("{}:7: unknown key `bogus`", cfg.display())),
        "{err}"
    );
}

#[test]
fn watch_follows_changes_and_stops_on_sigterm() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "1");
    let t = app_tree();
    let mut d = Daemon::spawn(confd(
        &t,
        &["-watch", "-backend", "etcdv3", "-node", &node(&etcd)],
    ));
    d.wait_ready();
    assert_eq!(t.read("app-go.conf"), "port = 1\n");
    etcd.put("/app/port", "2");
    wait_for(Duration::from_secs(10), "the change to be rendered", || {
        (read(&t.out().join("app-go.conf")) == "port = 2\n").then_some(())
    });
    d.signal(Signal::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        d.log()
    );
}

#[test]
fn without_watch_it_polls_every_interval() {
    let etcd = Etcd::start();
    etcd.put("/app/port", "1");
    let t = app_tree();
    let mut d = Daemon::spawn(confd(
        &t,
        &[
            "-interval",
            "1",
            "-backend",
            "etcdv3",
            "-node",
            &node(&etcd),
        ],
    ));
    d.wait_ready();
    etcd.put("/app/port", "2");
    wait_for(
        Duration::from_secs(15),
        "the poll to pick up the change",
        || (read(&t.out().join("app-tera.conf")) == "port = 2\n").then_some(()),
    );
    d.signal(Signal::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        d.log()
    );
}

/// confd's resource reader is the one `reconfd migrate` uses: `mode = "04755"` installs
/// 0755 (Go's os.Chmod drops the octal set-id bits), with a warning naming file and line;
/// `uid = -1` leaves the owner alone.
#[test]
fn confd_mode_and_uid_mean_what_confd_applies() {
    use std::os::unix::fs::PermissionsExt;
    let etcd = Etcd::start();
    etcd.put("/app/port", "8080");
    let t = Tree::new();
    t.template("app.tmpl", "port = {{getv \"/app/port\"}}\n");
    let p = t.confdir().join("conf.d/app.toml");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nmode = \"04755\"\nuid = -1\n",
            t.out().join("app.conf").display()
        ),
    )
    .unwrap();
    let o = run(confd(
        &t,
        &["-onetime", "-backend", "etcdv3", "-node", &node(&etcd)],
    ));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(t.read("app.conf"), "port = 8080\n");
    let mode = std::fs::metadata(t.out().join("app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "{mode:o}");
    assert!(
        err.contains(&format!(
            "{}:5: mode \"04755\" applied as 0755",
            p.display()
        )),
        "{err}"
    );
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
