//! What an operator meets in the first hour: log levels that cannot silence the daemon,
//! options that belong to their subcommand, the shipped unit's sandbox score, and an example
//! configuration that acts on nothing until the operator writes a resource.

mod util;

use std::path::{Path, PathBuf};

use util::{run, Tree};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A config file whose third line sets `log_level`.
fn config_with_level(t: &Tree, level: &str) -> PathBuf {
    let cfg = t.root.path().join("reconfd.toml");
    std::fs::write(
        &cfg,
        format!("# test\nprefix = \"\"\nlog_level = \"{level}\"\n"),
    )
    .unwrap();
    cfg
}

/// `EnvFilter` reads a bare word as a target name, so `warning` or `loud` used to turn every
/// line off while `check` passed. Each subcommand that reads the config refuses them with
/// exit 78 and the file's line; nothing needs etcd, since the config is read first.
#[test]
fn bad_log_level_in_the_config_file_is_refused_with_its_line() {
    let t = Tree::new();
    for level in ["loud", "", "off", "reconfd::etcd=debug"] {
        let cfg = config_with_level(&t, level);
        for sub in ["check", "once", "run"] {
            let mut c = t.reconfd(None, &[sub]);
            c.arg("--config").arg(&cfg);
            // Nothing listens there: were the config accepted, once/run would fail otherwise.
            c.args(["--endpoint", "http://127.0.0.1:9"]);
            let o = run(c);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(78), "{sub} with {level:?}: {err}");
            assert!(
                err.contains(&format!("{}:3:", cfg.display())) && err.contains("log level"),
                "{sub} with {level:?}: {err}"
            );
        }
    }
}

/// The same values given as `--log-level` or `RECONFD_LOG_LEVEL` are refused, naming the
/// option.
#[test]
fn bad_log_level_option_is_refused_naming_the_option() {
    let t = Tree::new();
    for level in ["loud", "", "warn,loud"] {
        for sub in ["check", "once", "run"] {
            let mut c = t.reconfd(None, &[sub, "--log-level", level]);
            c.args(["--endpoint", "http://127.0.0.1:9"]);
            let o = run(c);
            let err = text(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(78),
                "{sub} --log-level {level:?}: {err}"
            );
            assert!(err.contains("--log-level"), "{err}");
        }
    }
    let mut c = t.reconfd(None, &["check"]);
    c.env("RECONFD_LOG_LEVEL", "loud");
    let o = run(c);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--log-level"));
}

/// Levels in any of their spellings and real `EnvFilter` directives pass.
#[test]
fn levels_and_directives_are_accepted() {
    let t = Tree::new();
    for level in [
        "warning",
        "WARN",
        "error",
        "trace",
        "warn,reconfd::etcd=debug",
    ] {
        let cfg = config_with_level(&t, level);
        let mut c = t.reconfd(None, &["check"]);
        c.arg("--config").arg(&cfg);
        let o = run(c);
        assert_eq!(
            o.status.code(),
            Some(0),
            "log_level {level:?}: {}",
            text(&o.stderr)
        );
        let o = run(t.reconfd(None, &["check", "--log-level", level]));
        assert_eq!(
            o.status.code(),
            Some(0),
            "--log-level {level:?}: {}",
            text(&o.stderr)
        );
    }
}

/// An option a subcommand does not use is a usage error, not silently ignored.
#[test]
fn meaningless_options_are_usage_errors() {
    let t = Tree::new();
    let data = t.root.path().join("data.json");
    std::fs::write(&data, "{}").unwrap();
    let tpl = t.confdir().join("templates/x.tera");
    std::fs::write(&tpl, "x\n").unwrap();
    let render = |extra: &[&str]| {
        let mut c = util::reconfd();
        c.arg("render")
            .arg("--template")
            .arg(&tpl)
            .arg("--data")
            .arg(&data)
            .args(extra);
        run(c)
    };
    assert_eq!(render(&[]).status.code(), Some(0));
    assert_eq!(render(&["--prefix", "/p"]).status.code(), Some(0));
    for extra in [
        &["--noop"][..],
        &["--endpoint", "http://127.0.0.1:2379"],
        &["--confdir", "/etc/reconfd"],
        &["--log-level", "debug"],
    ] {
        let o = render(extra);
        assert_eq!(o.status.code(), Some(2), "render {extra:?}");
        assert!(text(&o.stderr).contains(extra[0]), "{}", text(&o.stderr));
    }
    for args in [
        &["check", "--noop"][..],
        &["migrate", "--from", "/a", "--to", "/b", "--endpoint", "x"],
        &["credentials", "set", "--noop"],
        &["credentials", "set", "--endpoint", "x"],
    ] {
        let mut c = util::reconfd();
        c.args(args);
        let o = run(c);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("unexpected argument"));
    }
    // Options before the subcommand belong to none.
    let mut c = util::reconfd();
    c.args(["--confdir", "/etc/reconfd", "check"]);
    assert_eq!(run(c).status.code(), Some(2));
}

/// Each subcommand's help shows what it takes and nothing else.
#[test]
fn help_shows_only_the_options_of_the_subcommand() {
    let help = |sub: &str| {
        let mut c = util::reconfd();
        c.args([sub, "--help"]);
        let o = run(c);
        assert!(o.status.success(), "{sub} --help");
        text(&o.stdout)
    };
    let check = help("check");
    assert!(check.contains("--ca-file") && check.contains("--log-level"));
    assert!(!check.contains("--noop"), "{check}");
    let once = help("once");
    assert!(once.contains("--noop") && once.contains("--endpoint"));
    let run_help = help("run");
    assert!(run_help.contains("--noop") && run_help.contains("--interval"));
    let render = help("render");
    for absent in [
        "--endpoint",
        "--noop",
        "--confdir",
        "--config",
        "--log-level",
    ] {
        assert!(!render.contains(absent), "render --help shows {absent}");
    }
    assert!(!help("migrate").contains("--endpoint"));
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Whether a prerequisite is missing: a failure under `CI=true`, a visible skip elsewhere.
fn missing(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing (CI=true): run .ci/install-deps");
    }
    eprintln!("SKIP: {what} is missing");
    true
}

/// The overall exposure `systemd-analyze security --offline=true` gives a unit file.
fn exposure(unit: &Path) -> f64 {
    let o = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .expect("systemd-analyze runs");
    let out = text(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level for {}: {out}{}",
                unit.display(),
                text(&o.stderr)
            )
        });
    let after = line.split(':').nth(1).expect("a value after ':'");
    after
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"))
}

/// The shipped units, as root and with the drop-in that runs as the reconfd user, score at
/// most 3.0 ("OK") in systemd's own exposure analysis. systemd-analyze reads the files
/// offline, so no running systemd is needed; the instance of the template unit is analysed
/// under a concrete name.
#[test]
fn shipped_units_score_at_most_3() {
    let have = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have && missing("systemd-analyze with --offline (systemd >= 252)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = read("systemd/reconfd.service");
    let mut units = vec![
        ("reconfd.service", unit.clone()),
        ("reconfd@site.service", read("systemd/reconfd@.service")),
    ];
    // A drop-in's lines come after the unit's, as systemd applies them.
    let dropin: String = read("systemd/run-as-reconfd.conf")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("[Service]"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (head, install) = unit.split_at(unit.find("[Install]").unwrap());
    units.push((
        "reconfd-as-user.service",
        format!("{head}{dropin}\n{install}"),
    ));
    for (name, text) in units {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let score = exposure(&path);
        assert!(score <= 3.0, "{name}: exposure {score} > 3.0");
        eprintln!("{name}: exposure {score}");
    }
}

/// The example resource ships as `conf.d/nginx.toml.example`: `check` on the example tree
/// loads nothing, says so and shows how to start; the packages list the file under that
/// name and no `conf.d/*.toml`.
#[test]
fn the_example_resource_is_not_loaded() {
    assert!(root()
        .join("etc/reconfd/conf.d/nginx.toml.example")
        .is_file());
    let toml: Vec<_> = std::fs::read_dir(root().join("etc/reconfd/conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    assert!(
        toml.is_empty(),
        "resources shipped in etc/reconfd/conf.d: {toml:?}"
    );
    let cargo = read("Cargo.toml");
    assert!(
        !cargo.contains("conf.d/nginx.toml\""),
        "Cargo.toml packages a resource"
    );
    assert_eq!(cargo.matches("conf.d/nginx.toml.example").count(), 5);

    let mut c = util::reconfd();
    c.arg("check")
        .arg("--confdir")
        .arg(root().join("etc/reconfd"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("no resources in "), "{out}");
    assert!(out.contains("nginx.toml.example"), "{out}");
}

/// The example, copied to a `.toml` name as the README says, is a valid resource.
#[test]
fn the_example_resource_checks_once_copied() {
    let t = Tree::new();
    std::fs::copy(
        root().join("etc/reconfd/conf.d/nginx.toml.example"),
        t.confdir().join("conf.d/nginx.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("etc/reconfd/templates/nginx.tera"),
        t.confdir().join("templates/nginx.tera"),
    )
    .unwrap();
    let res = t.confdir().join("conf.d/nginx.toml");
    let body = std::fs::read_to_string(&res).unwrap().replace(
        "dest = \"/etc/nginx/nginx.conf\"",
        &format!("dest = \"{}/nginx.conf\"", t.out().display()),
    );
    std::fs::write(&res, body).unwrap();
    let o = run(t.reconfd(None, &["check"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with("1 resource(s) OK")),
        "{}",
        text(&o.stdout)
    );
}

/// The maintainer address is written once, in `[package] authors`, which both packaging
/// tools read; neither metadata section repeats it.
#[test]
fn one_maintainer_address() {
    let cargo = read("Cargo.toml");
    let authors: Vec<_> = cargo.lines().filter(|l| l.starts_with("authors")).collect();
    assert_eq!(authors.len(), 1, "{authors:?}");
    assert!(
        authors[0].contains('<') && authors[0].contains('@'),
        "{}",
        authors[0]
    );
    for field in ["maintainer =", "packager ="] {
        assert!(
            !cargo.lines().any(|l| l.trim_start().starts_with(field)),
            "{field} in Cargo.toml"
        );
    }
}

/// The capabilities `CapabilityBoundingSet=` of the shipped unit grants, in setpriv's form
/// (`+chown,+fowner,...`).
fn unit_capabilities() -> String {
    let unit = read("systemd/reconfd.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds capabilities");
    line.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pids of the nginx master's children (its workers); a reload replaces them.
fn workers(master: &str) -> Vec<String> {
    let o = std::process::Command::new("ps")
        .args(["-o", "pid=", "--ppid", master])
        .output()
        .unwrap();
    let mut v: Vec<String> = text(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The example resource, as shipped apart from its destination and the nginx it reloads, works
/// within the unit's capability bound and its view of /proc: `nginx -t` on the rendered whole
/// nginx.conf (which binds port 80 and chowns nginx's temp directories), the install with an
/// owner other than root under `UMask=0077`, and `nginx -s reload` of a running root nginx.
/// systemd is not PID 1 on the test machines, so the sandbox is rebuilt from its parts: a
/// mount namespace with `/proc` mounted `hidepid=invisible,subset=pid` (ProtectProc=invisible,
/// ProcSubset=pid), `setpriv --bounding-set` with the unit's CapabilityBoundingSet and
/// `--no-new-privs`. Without CAP_CHOWN the same run fails, so the bound is real.
#[test]
fn the_example_works_within_the_units_capabilities() {
    if !nix::unistd::geteuid().is_root() && missing("root (to bound capabilities with setpriv)") {
        return;
    }
    for tool in ["/usr/sbin/nginx", "/usr/bin/setpriv", "/usr/bin/unshare"] {
        if !Path::new(tool).exists() && missing(tool) {
            return;
        }
    }
    let etcd = util::Etcd::start();
    etcd.put("/services/apache/10.0.0.6", "10.0.0.6:8888");

    // A running root nginx on a free loopback port, for the reload to signal.
    let ng = tempfile::tempdir().unwrap();
    let ngconf = ng.path().join("nginx.conf");
    std::fs::write(
        &ngconf,
        format!(
            "pid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 16; }}\nhttp {{ access_log off; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi; server {{ listen 127.0.0.1:{port}; }} }}\n",
            p = ng.path().display(),
            port = util::free_port()
        ),
    )
    .unwrap();
    let started = std::process::Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&ngconf)
        .arg("-p")
        .arg(ng.path())
        .status()
        .unwrap();
    assert!(started.success(), "nginx did not start");
    struct Stop(PathBuf, PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("/usr/sbin/nginx")
                .arg("-s")
                .arg("stop")
                .arg("-c")
                .arg(&self.0)
                .arg("-p")
                .arg(&self.1)
                .status();
        }
    }
    let _stop = Stop(ngconf.clone(), ng.path().to_owned());
    let pidfile = ng.path().join("nginx.pid");
    let master = util::wait_for(
        std::time::Duration::from_secs(10),
        "nginx's pid file",
        || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .map(|s| s.trim().to_owned())
        },
    );

    let t = Tree::new();
    std::fs::copy(
        root().join("etc/reconfd/templates/nginx.tera"),
        t.confdir().join("templates/nginx.tera"),
    )
    .unwrap();
    let example = read("etc/reconfd/conf.d/nginx.toml.example");
    let reload = format!(
        "reload_cmd = \"/usr/sbin/nginx -s reload -c {} -p {}\"",
        ngconf.display(),
        ng.path().display()
    );
    let resource: String = example
        .lines()
        .map(|l| {
            if l.starts_with("dest = ") {
                format!("dest = \"{}/nginx.conf\"", t.out().display())
            } else if l.starts_with("reload_cmd = ") {
                reload.clone()
            } else if l.starts_with("owner = ") {
                "owner = \"nobody\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert!(resource.contains("check_cmd = \"/usr/sbin/nginx -t"));
    std::fs::write(t.confdir().join("conf.d/nginx.toml"), resource).unwrap();

    let sandboxed = |caps: &str| {
        let mut c = std::process::Command::new("/usr/bin/unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount -t proc -o hidepid=invisible,subset=pid proc /proc && umask 077 && exec setpriv --bounding-set=\"$0\" --no-new-privs \"$@\"",
        ]);
        c.arg(format!("-all,{caps}"));
        c.arg(env!("CARGO_BIN_EXE_reconfd"));
        c.args(["once", "--log-target", "stderr", "--confdir"])
            .arg(t.confdir())
            .args(["--endpoint", &etcd.endpoint]);
        c.env("RECONFD_CONFIG", "/dev/null");
        run(c)
    };

    let caps = unit_capabilities();
    // Without CAP_CHOWN the install cannot give the file to nobody: the bound is in force.
    let without: Vec<&str> = caps.split(',').filter(|c| *c != "+chown").collect();
    let o = sandboxed(&without.join(","));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(!t.out().join("nginx.conf").exists());

    let before = workers(&master);
    let o = sandboxed(&caps);
    assert_eq!(o.status.code(), Some(0), "with {caps}: {}", text(&o.stderr));
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(t.out().join("nginx.conf")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o644, 65534));
    assert!(std::fs::read_to_string(t.out().join("nginx.conf"))
        .unwrap()
        .contains("server 10.0.0.6:8888;"));
    util::wait_for(
        std::time::Duration::from_secs(10),
        "nginx to replace its workers after the reload",
        || {
            let now = workers(&master);
            (!now.is_empty() && now.iter().all(|w| !before.contains(w))).then_some(())
        },
    );
}
