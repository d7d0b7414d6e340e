//! confd Go-template corpus. Each `tests/gotemplate/cases/NN-name/` holds `template.tmpl`,
//! `data.json` (full etcd key → value), optionally `prefix`, and what Go's text/template with
//! confd 0.17's functions produced for it (`tests/gotemplate/verify.sh` re-checks that with a
//! Go oracle): `expected` (exact bytes) or `expected-error` (Go's error, one line). Every case
//! is rendered with `reconfd render` and compared: output byte for byte, errors by Go's whole
//! message (reconfd only adds the full etcd key to a missing-key error). `known-differences/`
//! has the same layout plus a `why` file; those cases must still differ, so a fixed engine
//! shows up as a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// verify.sh sets the same variables for the oracle.
const ENV_SET: (&str, &str) = ("RECONFD_CORPUS_VAR", "corpus-value");
const ENV_UNSET: &[&str] = &["RECONFD_CORPUS_UNSET", "RECONFD_PREFIX"];

fn case_dirs(sub: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/gotemplate")
        .join(sub);
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("template.tmpl").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn render(dir: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconfd"));
    cmd.arg("render")
        .arg("--template")
        .arg(dir.join("template.tmpl"))
        .arg("--data")
        .arg(dir.join("data.json"))
        .env(ENV_SET.0, ENV_SET.1);
    for var in ENV_UNSET {
        cmd.env_remove(var);
    }
    if let Ok(p) = std::fs::read_to_string(dir.join("prefix")) {
        cmd.arg("--prefix").arg(p.trim());
    }
    cmd.output().expect("run reconfd render")
}

/// Whitespace made visible: `·` space, `→` tab, `␍` CR, `↵` LF.
fn visible(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace(' ', "·")
        .replace('\t', "→")
        .replace('\r', "␍")
        .replace('\n', "↵\n")
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}

/// reconfd's message with what it adds to Go's removed: a missing key's ` (etcd key "...")`,
/// which names the full key confd never shows.
fn without_additions(stderr: &str) -> String {
    let mut out = String::with_capacity(stderr.len());
    let mut rest = stderr;
    while let Some(i) = rest.find(" (etcd key \"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " (etcd key \"".len()..];
        rest = match after.find("\")") {
            Some(j) => &after[j + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// `Ok` when reconfd agrees with the committed Go result, else why not.
fn check(dir: &Path) -> Result<(), String> {
    let out = render(dir);
    if let Ok(want) = std::fs::read(dir.join("expected")) {
        if !out.status.success() {
            return Err(format!(
                "  expected success, got {}; stderr:\n{}",
                out.status,
                indent(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        if out.stdout != want {
            return Err(format!(
                "  expected:\n{}  got:\n{}",
                indent(&visible(&want)),
                indent(&visible(&out.stdout))
            ));
        }
        return Ok(());
    }
    let go = std::fs::read_to_string(dir.join("expected-error"))
        .expect("case has neither expected nor expected-error");
    let go = go.trim_end();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut wrong = Vec::new();
    if out.status.success() {
        wrong.push("exit status 0 (want an error)".to_string());
    }
    // Go's whole message, word for word, after the template's path.
    if !without_additions(&stderr).contains(&format!("template.tmpl: {go}")) {
        wrong.push("stderr does not hold Go's message".to_string());
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(format!(
        "  {}\n  Go:     {go}\n  stderr: {}\n  stdout:\n{}",
        wrong.join("; "),
        stderr.trim_end(),
        indent(&visible(&out.stdout))
    ))
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn gotemplate_corpus() {
    let cases = case_dirs("cases");
    assert!(cases.len() >= 50, "corpus has only {} cases", cases.len());
    let mut failures = Vec::new();
    for dir in &cases {
        if let Err(why) = check(dir) {
            failures.push(format!("{}:\n{why}", name(dir)));
        }
    }
    for dir in case_dirs("known-differences") {
        assert!(
            dir.join("why").is_file(),
            "{} has no `why` file",
            name(&dir)
        );
        if check(&dir).is_ok() {
            failures.push(format!(
                "known-differences/{}: now matches Go; move it to cases/",
                name(&dir)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} gotemplate cases differ from Go:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
