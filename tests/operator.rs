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

/// Helper kept for the tests below that read repository files.
#[allow(dead_code)]
fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[allow(dead_code)]
fn exists(rel: &str) -> bool {
    Path::new(&root().join(rel)).exists()
}
