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
        text(&o.stdout).starts_with("1 resource(s) OK"),
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
