//! `reconfd migrate`: the binary on small confd trees (report, files, dry run, no overwrite
//! without --force, exit codes, `reconfd check` on the result), and the Go-template corpus:
//! every case whose template translates must render, as Tera, exactly Go's output.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reconfd::migrate::translate::{translate, Outcome};
use util::run;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn reconfd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reconfd"));
    // No config file or environment of the host may leak in.
    c.env_remove("RECONFD_CONFIG")
        .env_remove("RECONFD_CONFDIR")
        .env_remove("RECONFD_PREFIX");
    c
}

fn migrate(from: &Path, to: &Path, extra: &[&str]) -> Output {
    let mut c = reconfd();
    c.arg("migrate").arg("--from").arg(from).arg("--to").arg(to);
    c.args(extra);
    run(c)
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const NGINX_TMPL: &str = r#"upstream web {
{{- range getvs "/services/web/*" }}
    server {{ . }};
{{- else }}
    server 127.0.0.1:65535 down;
{{- end }}
}
{{ range $i, $kv := gets "/services/web/*" }}# {{ $i }} {{ base $kv.Key }}
{{ end -}}
"#;

/// confd's json values have no exact Tera translation: this one stays Go.
const APP_TMPL: &str = "[app]\nname = {{ getv \"/app/name\" }}\n{{ with json (getv \"/app/opts\" \"{}\") }}port = {{ .port }}{{ end }}\n";

/// A confd tree in `root/confd` with destinations in `root/out`.
fn confd_tree(root: &Path) -> (PathBuf, PathBuf) {
    let from = root.join("confd");
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display();
    write(
        &from.join("conf.d/nginx.toml"),
        &format!(
            "# the web tier's proxy\n[template]\nsrc = \"nginx.tmpl\"\ndest = \"{o}/nginx.conf\"\nkeys = [\"/services/web\"]\nmode = \"0644\"\ncheck_cmd = \"test -s {{{{.src}}}}\"\nreload_cmd = \"true\"\n"
        ),
    );
    write(
        &from.join("conf.d/web/app.toml"),
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{o}/app.ini\"\nkeys = [\"/app\"]\nmode = \"420\"\nuid = -1\nfoo = \"bar\"\n"
        ),
    );
    // A nested file matching confd's `*toml` without a dot, a template outside `*.tmpl`.
    write(
        &from.join("conf.d/db/legacytoml"),
        &format!(
            "[template]\nSRC = \"sub/db.conf\"\nDest = \"{o}/db.conf\"\nkeys = [\"/db\"]\nmode = \"0x1a4\"\n"
        ),
    );
    write(&from.join("conf.d/README"), "not a resource\n");
    write(&from.join("confd.toml"), "backend = \"etcdv3\"\n");
    write(&from.join("templates/nginx.tmpl"), NGINX_TMPL);
    write(&from.join("templates/app.tmpl"), APP_TMPL);
    write(
        &from.join("templates/sub/db.conf"),
        "host = {{ getv \"/db/host\" \"localhost\" }}\n",
    );
    (from, out)
}

/// Renders `template` with `reconfd render` against `data` (JSON).
fn render(template: &Path, data: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data.json");
    std::fs::write(&data_path, data).unwrap();
    let mut c = reconfd();
    c.arg("render")
        .arg("--template")
        .arg(template)
        .arg("--data")
        .arg(&data_path);
    run(c)
}

#[test]
fn migrates_a_confd_tree_and_check_accepts_it() {
    let root = tempfile::tempdir().unwrap();
    let (from, _out) = confd_tree(root.path());
    let to = root.path().join("reconfd");

    // A dry run reports everything and writes nothing.
    let o = migrate(&from, &to, &["--dry-run"]);
    let report = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{report}{}", text(&o.stderr));
    assert!(!to.exists(), "dry run created {}", to.display());
    assert!(report.contains("would write"), "{report}");
    assert!(report.contains("dry run: nothing was written"), "{report}");

    let o = migrate(&from, &to, &[]);
    let report = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{report}{}", text(&o.stderr));
    assert_eq!(
        files(&to),
        vec![
            "conf.d/db-legacy.toml",
            "conf.d/nginx.toml",
            "conf.d/web-app.toml",
            "templates/app.tmpl",
            "templates/nginx.tera",
            "templates/sub/db.conf",
        ],
        "{report}"
    );
    // Per resource: what it did, and for a kept template the first construct and where.
    let nginx_line = report
        .lines()
        .find(|l| l.contains("conf.d/nginx.toml ->"))
        .unwrap();
    assert!(nginx_line.contains("translated to Tera"), "{report}");
    let app_line = report
        .lines()
        .find(|l| l.contains("conf.d/web/app.toml ->"))
        .unwrap();
    assert!(
        app_line.contains("kept as Go template")
            && app_line.contains("templates/app.tmpl:3:9: json"),
        "{report}"
    );
    assert!(report.contains("dropped `foo` (line 7)"), "{report}");
    assert!(
        report.contains("confd.toml (the daemon's settings) is not migrated"),
        "{report}"
    );
    assert!(
        report.contains(
            "3 resource(s): 2 translated to Tera, 1 kept as Go templates, 0 not migrated"
        ),
        "{report}"
    );

    // The resources say where they came from and use reconfd's forms.
    let nginx = read(&to.join("conf.d/nginx.toml"));
    assert!(
        nginx.starts_with(&format!(
            "# Migrated by `reconfd migrate` from the confd resource {}.",
            from.join("conf.d/nginx.toml").display()
        )),
        "{nginx}"
    );
    assert!(
        nginx.contains("# the web tier's proxy\n[template]\n"),
        "{nginx}"
    );
    assert!(nginx.contains("src = \"nginx.tera\"\n"), "{nginx}");
    assert!(nginx.contains("mode = \"0644\"\n"), "{nginx}");
    assert!(
        nginx.contains("check_cmd = \"test -s {{.src}}\"\n"),
        "{nginx}"
    );
    let app = read(&to.join("conf.d/web-app.toml"));
    assert!(app.contains("src = \"app.tmpl\"\n"), "{app}");
    assert!(app.contains("mode = \"0644\"\n"), "{app}");
    assert!(
        !app.contains("foo") || app.contains("# note: dropped `foo`"),
        "{app}"
    );
    assert!(!app.contains("uid"), "{app}");
    let db = read(&to.join("conf.d/db-legacy.toml"));
    assert!(db.contains("src = \"sub/db.conf\"\n"), "{db}");
    assert!(db.contains("mode = \"0644\"\n"), "{db}");
    assert!(!db.contains("engine"), "translated, so Tera: {db}");
    assert_eq!(read(&to.join("templates/app.tmpl")), APP_TMPL);

    // reconfd accepts the result as it is.
    let mut c = reconfd();
    c.args(["check", "--confdir"]).arg(&to);
    let o = run(c);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("3 resource(s) OK"));

    // The translation renders what the Go template renders.
    for data in [
        "{}",
        r#"{"/services/web/a": "10.0.0.2:80", "/services/web/b": "10.0.0.1:80"}"#,
    ] {
        let go = render(&from.join("templates/nginx.tmpl"), data);
        let tera = render(&to.join("templates/nginx.tera"), data);
        assert!(go.status.success(), "{}", text(&go.stderr));
        assert_eq!(
            text(&tera.stdout),
            text(&go.stdout),
            "{}",
            text(&tera.stderr)
        );
    }

    // Running it again changes nothing and succeeds.
    let o = migrate(&from, &to, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(!text(&o.stdout).contains("wrote"), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("unchanged:"),
        "{}",
        text(&o.stdout)
    );

    // A file edited since is not overwritten without --force, and the run says so.
    let edited = to.join("templates/nginx.tera");
    std::fs::write(&edited, "edited\n").unwrap();
    let o = migrate(&from, &to, &[]);
    let report = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "exists with other content, not overwritten (use --force): {}",
            edited.display()
        )),
        "{report}"
    );
    assert_eq!(read(&edited), "edited\n");
    let o = migrate(&from, &to, &["--dry-run", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("would overwrite"));
    assert_eq!(read(&edited), "edited\n");
    let o = migrate(&from, &to, &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains(&format!("overwrote: {}", edited.display())));
    assert_ne!(read(&edited), "edited\n");
}

#[test]
fn resources_that_cannot_be_migrated_fail_with_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let from = root.path().join("confd");
    let to = root.path().join("reconfd");
    write(
        &from.join("conf.d/a-good.toml"),
        "[template]\nsrc = \"ok.tmpl\"\ndest = \"/tmp/ok\"\nkeys = [\"/k\"]\n",
    );
    write(
        &from.join("conf.d/b-broken.toml"),
        "[template]\nsrc = \"ok.tmpl\"\nkeys = [\"/k\"\n",
    );
    write(
        &from.join("conf.d/c-mode.toml"),
        "[template]\nsrc = \"ok.tmpl\"\ndest = \"/tmp/m\"\nkeys = [\"/k\"]\nmode = \"rw-r--r--\"\n",
    );
    write(
        &from.join("conf.d/d-missing.toml"),
        "[template]\nsrc = \"nope.tmpl\"\ndest = \"/tmp/n\"\nkeys = [\"/k\"]\n",
    );
    write(
        &from.join("conf.d/e-unparsable.toml"),
        "[template]\nsrc = \"bad.tmpl\"\ndest = \"/tmp/b\"\nkeys = [\"/k\"]\n",
    );
    write(&from.join("templates/ok.tmpl"), "{{ getv \"/k\" }}\n");
    write(&from.join("templates/bad.tmpl"), "{{ if }}\n");
    let o = migrate(&from, &to, &[]);
    let report = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{report}");
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{report}"))
            .to_owned()
    };
    assert!(
        line("a-good.toml").contains("translated to Tera"),
        "{report}"
    );
    let broken = from.join("conf.d/b-broken.toml");
    assert!(
        line("b-broken.toml").contains(&format!("not migrated: {}:3:", broken.display())),
        "{report}"
    );
    assert!(
        line("c-mode.toml").contains("c-mode.toml:5: mode \"rw-r--r--\""),
        "{report}"
    );
    assert!(
        line("d-missing.toml").contains("nope.tmpl: does not exist"),
        "{report}"
    );
    assert!(
        line("e-unparsable.toml").contains("does not parse as a Go template"),
        "{report}"
    );
    assert!(report
        .contains("5 resource(s): 1 translated to Tera, 0 kept as Go templates, 4 not migrated"));
    // What could be migrated was written.
    assert_eq!(
        files(&to),
        vec!["conf.d/a-good.toml", "templates/ok.tera"],
        "{report}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let o = migrate(root.path(), &root.path().join("to"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no conf.d/"),
        "{}",
        text(&o.stderr)
    );
    std::fs::create_dir_all(root.path().join("conf.d")).unwrap();
    let o = migrate(root.path(), root.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("inside its conf.d/"),
        "{}",
        text(&o.stderr)
    );
    let o = migrate(root.path(), &root.path().join("conf.d/new"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let mut c = reconfd();
    c.args(["migrate", "--from", "x"]);
    assert_eq!(run(c).status.code(), Some(2));
}

// ---- the Go-template corpus ----

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

/// Renders `template` for a corpus case as tests/gotemplate.rs does (same environment).
fn render_case(dir: &Path, template: &Path) -> Output {
    let mut c = reconfd();
    c.arg("render")
        .arg("--template")
        .arg(template)
        .arg("--data")
        .arg(dir.join("data.json"))
        .env("RECONFD_CORPUS_VAR", "corpus-value")
        .env_remove("RECONFD_CORPUS_UNSET");
    if let Ok(p) = std::fs::read_to_string(dir.join("prefix")) {
        c.arg("--prefix").arg(p.trim());
    }
    run(c)
}

/// Every corpus case whose template translates renders, as Tera, exactly Go's committed
/// output (or fails where Go fails), and exactly what reconfd's Go engine renders. The
/// known differences (where reconfd's Go engine differs from Go) must not translate into
/// something that differs from Go either.
#[test]
fn corpus_translations_render_exactly_gos_output() {
    let cases = case_dirs("cases");
    assert!(cases.len() >= 50, "corpus has only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut translated = Vec::new();
    let tmp = tempfile::tempdir().unwrap();
    let known = case_dirs("known-differences");
    for dir in cases.iter().chain(&known) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let source = read(&dir.join("template.tmpl"));
        let tera = match translate(&source) {
            Outcome::Translated(t) => t,
            Outcome::Refused(_) => continue,
            Outcome::Invalid(e) => {
                if dir.join("expected").is_file() {
                    failures.push(format!("{name}: Go renders it, migrate says invalid: {e}"));
                }
                continue;
            }
        };
        translated.push(name.clone());
        let path = tmp.path().join(format!("{name}.tera"));
        std::fs::write(&path, &tera).unwrap();
        let out = render_case(dir, &path);
        match std::fs::read(dir.join("expected")) {
            Ok(want) if out.status.success() && out.stdout == want => {}
            Ok(want) => failures.push(format!(
                "{name}: Go's output differs\n--- tera:\n{tera}\n--- want:\n{}\n--- got:\n{}{}",
                text(&want),
                text(&out.stdout),
                text(&out.stderr)
            )),
            Err(_) if !out.status.success() => {}
            Err(_) => failures.push(format!(
                "{name}: Go fails, the translation renders:\n{}",
                text(&out.stdout)
            )),
        }
        if !known.contains(dir) {
            let go = render_case(dir, &dir.join("template.tmpl"));
            if go.status.success() != out.status.success()
                || (go.status.success() && go.stdout != out.stdout)
            {
                failures.push(format!("{name}: reconfd's Go engine renders otherwise"));
            }
        }
    }
    println!(
        "{} of {} corpus cases translate to Tera ({} known differences): {}",
        translated.len(),
        cases.len() + known.len(),
        known.len(),
        translated.join(" ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // A drop here means the translator lost ground; look before lowering it.
    assert!(
        translated.len() >= 50,
        "only {} cases translate",
        translated.len()
    );
}

#[test]
fn a_file_that_cannot_be_written_is_reported_and_fails_the_run() {
    let root = tempfile::tempdir().unwrap();
    let from = root.path().join("confd");
    let to = root.path().join("reconfd");
    write(
        &from.join("conf.d/a.toml"),
        "[template]\nsrc = \"a.tmpl\"\ndest = \"/tmp/a\"\nkeys = [\"/k\"]\n",
    );
    write(&from.join("templates/a.tmpl"), "{{ getv \"/k\" }}\n");
    // templates/ is a file: nothing can be written below it.
    write(&to.join("templates"), "in the way\n");
    let o = migrate(&from, &to, &[]);
    let report = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{report}");
    assert!(report.contains("  cannot write ("), "{report}");
    assert!(
        report.contains("1 not written (files in the way)"),
        "{report}"
    );
    // The resource is not written when its template could not be.
    assert!(!to.join("conf.d/a.toml").exists(), "{report}");
}

/// confd's resource reader is the one `reconfd confd` uses: `mode = "04755"` is 0755 (Go's
/// os.Chmod drops the octal set-id bits) and `uid = -1` is unset, here as there.
#[test]
fn confd_modes_and_unset_ids_migrate_as_confd_applies_them() {
    let d = tempfile::tempdir().unwrap();
    let (from, to) = (d.path().join("confd"), d.path().join("reconfd"));
    write(&from.join("templates/a.tmpl"), "x\n");
    write(
        &from.join("conf.d/a.toml"),
        "[template]\nsrc = \"a.tmpl\"\ndest = \"/tmp/a\"\nkeys = [\"/a\"]\nmode = \"04755\"\nuid = -1\n",
    );
    let o = migrate(&from, &to, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let a = read(&to.join("conf.d/a.toml"));
    assert!(a.contains("\nmode = \"0755\"\n"), "{a}");
    assert!(!a.contains("\nuid"), "{a}");
}
