//! The binary's behaviour without etcd: `check`, `render`, usage and config errors, exit codes.

mod util;

use util::{run, Tree};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_reports_every_problem_with_file_and_line() {
    let t = Tree::new();
    t.template("ok.tera", "{{ getv(key=\"/a\") }}\n");
    t.template("bad.tera", "line one\n{% for x in %}\n");
    let ok = t.resource(
        "ok",
        "[template]\nsrc = \"ok.tera\"\ndest = \"@OUT@/ok.conf\"\nkeys = [\"/a\"]\n",
    );
    let typo = t.resource("typo", "[template]\nsrc = \"ok.tera\"\ndest = \"@OUT@/t.conf\"\nkeys = [\"/a\"]\nrelaod_cmd = \"x\"\n");
    let mode = t.resource("mode", "[template]\nsrc = \"ok.tera\"\ndest = \"@OUT@/m.conf\"\nkeys = [\"/a\"]\nmode = \"rw-r--r--\"\n");
    let bad = t.resource(
        "tmpl",
        "[template]\nsrc = \"bad.tera\"\ndest = \"@OUT@/b.conf\"\nkeys = [\"/a\"]\n",
    );
    let nodir = t.resource(
        "nodir",
        "[template]\nsrc = \"ok.tera\"\ndest = \"/nonexistent-dir/x.conf\"\nkeys = [\"/a\"]\n",
    );
    let missing = t.resource(
        "missing",
        "[template]\nsrc = \"absent.tera\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/a\"]\n",
    );
    let o = run(t.reconfd(None, &["check"]));
    assert_eq!(o.status.code(), Some(78), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("{}:5: unknown field `relaod_cmd`", typo.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:5:", mode.display())) && err.contains("rw-r--r--"),
        "{err}"
    );
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("bad.tera"),
        "{err}"
    );
    assert!(
        err.contains(&nodir.display().to_string()) && err.contains("/nonexistent-dir"),
        "{err}"
    );
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("absent.tera"),
        "{err}"
    );
    assert!(
        !err.contains(&ok.display().to_string()),
        "the good resource was reported: {err}"
    );
    assert!(err.contains("5 problem(s)"), "{err}");
}

#[test]
fn check_passes_on_a_good_tree() {
    let t = Tree::new();
    t.template(
        "ok.tera",
        "{% for s in getvs(pattern=\"/a/*\") %}{{ s }}{% endfor %}\n",
    );
    t.resource(
        "ok",
        "[template]\nsrc = \"ok.tera\"\ndest = \"@OUT@/ok.conf\"\nkeys = [\"/a\"]\n",
    );
    let o = run(t.reconfd(None, &["check"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn render_from_a_data_file() {
    let t = Tree::new();
    let tpl = t.confdir().join("templates/up.tera");
    std::fs::write(
        &tpl,
        "{% for s in getvs(pattern=\"/services/apache/*\") %}server {{ s }};\n{% endfor %}",
    )
    .unwrap();
    let data = t.root.path().join("data.json");
    std::fs::write(
        &data,
        r#"{"/services/apache/b": "10.0.0.2:80", "/services/apache/a": "10.0.0.1:80"}"#,
    )
    .unwrap();
    let mut c = util::reconfd();
    c.args(["render", "--template"])
        .arg(&tpl)
        .arg("--data")
        .arg(&data);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n"
    );
}

#[test]
fn render_names_the_missing_key() {
    let t = Tree::new();
    let tpl = t.confdir().join("templates/m.tera");
    std::fs::write(&tpl, "a\n{{ getv(key=\"/missing\") }}\n").unwrap();
    let data = t.root.path().join("data.yaml");
    std::fs::write(&data, "/present: x\n").unwrap();
    let mut c = util::reconfd();
    c.args(["render", "--template"])
        .arg(&tpl)
        .arg("--data")
        .arg(&data);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("/missing"), "{}", text(&o.stderr));
}

#[test]
fn usage_and_config_errors_have_their_exit_codes() {
    let o = run({
        let mut c = util::reconfd();
        c.arg("frobnicate");
        c
    });
    assert_eq!(o.status.code(), Some(2));
    let t = Tree::new();
    let cfg = t.root.path().join("reconfd.toml");
    std::fs::write(
        &cfg,
        "confdir = \"/x\"\n[etcd]\nendpoints = \"not-a-list\"\n",
    )
    .unwrap();
    let mut c = util::reconfd();
    c.arg("check").arg("--config").arg(&cfg);
    let o = run(c);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        text(&o.stderr).contains(&format!("{}:3:", cfg.display())),
        "{}",
        text(&o.stderr)
    );
    let mut c = util::reconfd();
    c.args(["check", "--config", "/nonexistent/reconfd.toml"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(78));
    assert!(text(&o.stderr).contains("/nonexistent/reconfd.toml"));
}

#[test]
fn every_subcommand_has_help() {
    for (sub, option) in [
        ("run", "--confdir"),
        ("once", "--confdir"),
        ("check", "--confdir"),
        ("render", "--template"),
    ] {
        let mut c = util::reconfd();
        c.args([sub, "--help"]);
        let o = run(c);
        assert!(o.status.success(), "{sub} --help");
        assert!(
            text(&o.stdout).contains(option),
            "{sub} --help lacks {option}"
        );
    }
}

#[test]
fn templates_cannot_read_the_etcd_password() {
    let t = Tree::new();
    let tpl = t.confdir().join("templates/pw.tera");
    std::fs::write(
        &tpl,
        "[{{ getenv(name=\"RECONFD_ETCD_PASSWORD\", default=\"none\") }}]\n",
    )
    .unwrap();
    let data = t.root.path().join("data.json");
    std::fs::write(&data, "{}").unwrap();
    let mut c = util::reconfd();
    c.env("RECONFD_ETCD_PASSWORD", "s3cret-pw");
    c.args(["render", "--template"])
        .arg(&tpl)
        .arg("--data")
        .arg(&data);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "[none]\n");
}

/// A glob in `keys` is refused with the prefix to give instead and where the glob belongs.
#[test]
fn a_glob_in_keys_says_keys_are_prefixes() {
    let t = Tree::new();
    t.template("a.tera", "x\n");
    let r = t.resource(
        "a",
        "[template]\nsrc = \"a.tera\"\ndest = \"@OUT@/a.conf\"\nkeys = [\"/services/apache/*\"]\n",
    );
    let o = run(t.reconfd(None, &["check"]));
    assert_eq!(o.status.code(), Some(78), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "{}:4: key \"/services/apache/*\" is not a valid etcd key path: keys are prefixes, \
             each watching every key under it (e.g. keys = [\"/services/apache\"]); put globs \
             in the template (getvs \"/services/apache/*\")",
            r.display()
        )),
        "{err}"
    );
}
