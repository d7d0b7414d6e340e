//! The man pages and shell completions the packages ship, checked against the clap definition.
//!
//! `docs/man/reconfd.1`, `docs/man/reconfd-<subcommand>.1` and `packaging/completions/*` are
//! generated from `reconfd::cli::Cli` (clap_mangen, clap_complete) and committed, so packaging
//! needs no build step of its own. This test fails when a committed file differs from what the
//! CLI definition generates today; `REGENERATE=1 cargo test --test man` rewrites them.
//!
//! `docs/man/reconfd.toml.5` is written by hand: the test only checks that it covers every key
//! the configuration reference (docs/configuration.md) documents.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// Sections of reconfd(1) that the CLI definition cannot know about, inserted before VERSION.
const REFERENCE_SECTIONS: &str = r#".SH "EXIT STATUS"
The codes follow \fBsysexits.h\fR where one fits; \fBreconfd confd\fR keeps confd's own codes.
When several things fail, the highest-ranked code wins: 78, then 77, then 69, then 1.
.TP
\fB0\fR
Success. \fBcheck\fR: no problems (warnings allowed); \fBonce\fR: every resource is in sync or
was installed.
.TP
\fB1\fR
A resource failed (render, check, install or reload), \fBonce\fR held a resource by its
guard (\fBmin_keys\fR; \fB--force\fR installs it); \fBrender\fR: a data or template error.
.TP
\fB2\fR
Usage error.
.TP
\fB3\fR
\fBstatus\fR, \fBapprove\fR: no daemon answers on the control socket.
.TP
\fB69\fR
No etcd member could be reached (\fBEX_UNAVAILABLE\fR): connection refused, timed out, TLS
handshake failed (\fBonce\fR).
.TP
\fB77\fR
etcd refused the login or denied reading a watched key (\fBEX_NOPERM\fR) (\fBonce\fR); the
control socket refused this user (\fBstatus\fR, \fBapprove\fR).
.TP
\fB78\fR
Configuration error (\fBEX_CONFIG\fR): the config file or a resource is invalid, or a TLS
or password file is unusable.
.SH ENVIRONMENT
Each option of the subcommands also reads the \fBRECONFD_*\fR variable it names; the command line
wins over the environment, which wins over the config file.
.TP
\fBRECONFD_ETCD_PASSWORD\fR
The etcd password, the last of the password sources: used when a username is set and none of
\fBpassword_file\fR, \fBpassword_credential\fR and \fBpassword_keyring\fR is configured.
Never passed on to \fBcheck_cmd\fR, \fBreload_cmd\fR or templates.
.SH FILES
.TP
\fI/etc/reconfd/reconfd.toml\fR
The daemon configuration, see \fBreconfd.toml\fR(5).
.TP
\fI/etc/reconfd/conf.d/*.toml\fR
Template resources, one per file.
.TP
\fI/etc/reconfd/templates/\fR
Their templates.
.TP
\fI/usr/lib/systemd/system/reconfd.service\fR, \fIreconfd@.service\fR
The systemd units; \fBreconfd@\fR\fISITE\fR\fB.service\fR reads \fI/etc/reconfd/SITE.toml\fR.
.SH "SEE ALSO"
\fBreconfd.toml\fR(5), \fBreconfd\-run\fR(1), \fBreconfd\-once\fR(1), \fBreconfd\-check\fR(1),
\fBreconfd\-render\fR(1), \fBreconfd\-migrate\fR(1), \fBsystemctl\fR(1), \fBetcdctl\fR(1).
The documentation under \fI/usr/share/doc/reconfd/\fR.
"#;

/// The EXIT STATUS section of a subcommand's page, for those whose codes say more than
/// success or usage error (reconfd(1) has them all).
fn exit_status(subcommand: &str) -> Option<&'static str> {
    Some(match subcommand {
        "once" => {
            r#".SH "EXIT STATUS"
.TP
\fB0\fR
Every resource is in sync or was installed; with \fB\-\-noop\fR, every resource rendered and
passed its check.
.TP
\fB1\fR
A resource failed (invalid resource file, render, check, install or reload).
.TP
\fB69\fR
No etcd member could be reached (\fBEX_UNAVAILABLE\fR).
.TP
\fB77\fR
etcd refused the login, or denied reading a watched key (\fBEX_NOPERM\fR); the resources
that may be read were still reconciled.
.TP
\fB78\fR
Configuration error (\fBEX_CONFIG\fR), a TLS or password file unusable included.
"#
        }
        "run" => {
            r#".SH "EXIT STATUS"
.TP
\fB0\fR
Stopped by SIGTERM or SIGINT.
.TP
\fB69\fR
\fB[etcd] srv_domain\fR is set and its DNS SRV record gives no endpoint at start
(\fBEX_UNAVAILABLE\fR); the unit's \fBRestart=\fR asks again.
.TP
\fB78\fR
Configuration error at start (\fBEX_CONFIG\fR), a TLS or password file unusable included;
the shipped units do not restart on it. An unreachable etcd or a refused login is not an exit:
the daemon retries with backoff and says so in its log and \fBSTATUS=\fR.
"#
        }
        "check" => {
            r#".SH "EXIT STATUS"
.TP
\fB0\fR
No problems (warnings allowed).
.TP
\fB78\fR
Any problem found (\fBEX_CONFIG\fR). \fBcheck\fR does not contact etcd.
"#
        }
        "render" => {
            r#".SH "EXIT STATUS"
.TP
\fB0\fR
The template rendered.
.TP
\fB1\fR
A data file or template error, named with its file and line.
"#
        }
        _ => return None,
    })
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn command() -> clap::Command {
    // As clap_mangen::generate_to does: no `help` subcommand page, globals propagated.
    let mut cmd = reconfd::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn render(man: clap_mangen::Man) -> String {
    let mut out = Vec::new();
    man.render(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Every generated file: path relative to the repository, contents.
fn generated() -> Vec<(PathBuf, String)> {
    let cmd = command();
    let mut files = Vec::new();

    let mut main = render(clap_mangen::Man::new(cmd.clone()));
    let at = main.find(".SH VERSION").unwrap_or(main.len());
    main.insert_str(at, REFERENCE_SECTIONS);
    files.push((PathBuf::from("docs/man/reconfd.1"), main));

    let source = format!("reconfd {}", env!("CARGO_PKG_VERSION"));
    for sub in cmd.get_subcommands() {
        let mut page = render(clap_mangen::Man::new(sub.clone()).source(&source));
        if let Some(section) = exit_status(sub.get_name()) {
            let at = page.find(".SH VERSION").unwrap_or(page.len());
            page.insert_str(at, section);
        }
        let name = format!("docs/man/reconfd-{}.1", sub.get_name());
        files.push((PathBuf::from(name), page));
    }

    for (shell, file) in [
        (Shell::Bash, "reconfd.bash"),
        (Shell::Zsh, "_reconfd"),
        (Shell::Fish, "reconfd.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command(), "reconfd", &mut out);
        let path = Path::new("packaging/completions").join(file);
        files.push((path, String::from_utf8(out).unwrap()));
    }
    files
}

#[test]
fn committed_man_pages_and_completions_match_the_cli() {
    let regenerate = std::env::var_os("REGENERATE").is_some_and(|v| v == "1");
    let mut drifted = Vec::new();
    for (rel, want) in generated() {
        let path = root().join(&rel);
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(_) => drifted.push(format!("{} differs", rel.display())),
            Err(e) => drifted.push(format!("{}: {e}", rel.display())),
        }
    }
    assert!(
        drifted.is_empty(),
        "generated files are out of date with src/cli.rs:\n  {}\n\
         regenerate with: REGENERATE=1 cargo test --test man, and commit the result",
        drifted.join("\n  ")
    );
}

/// Every subcommand has its page in the packages' asset lists (a new subcommand needs one).
#[test]
fn every_generated_file_is_packaged() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    for (rel, _) in generated() {
        let quoted = format!("\"{}\"", rel.display());
        assert_eq!(
            manifest.matches(&quoted).count(),
            2,
            "{} must appear once in each asset list of Cargo.toml (deb and generate-rpm)",
            rel.display()
        );
    }
}

/// The hand-written reconfd.toml(5) names every key docs/configuration.md documents in the
/// `| key |` tables of "The config file" and "Resources".
#[test]
fn reconfd_toml_5_covers_every_documented_key() {
    let reference = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let page = std::fs::read_to_string(root().join("docs/man/reconfd.toml.5")).unwrap();
    let mut section = "";
    let mut key_table = false;
    let mut keys = Vec::new();
    for line in reference.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title;
        }
        // A table whose first column is headed "key", until the first line outside it.
        key_table = line.starts_with("| key |") || (key_table && line.starts_with('|'));
        if key_table
            && matches!(section, "The config file" | "Resources")
            && line.starts_with("| `")
        {
            let first_cell = line.split('|').nth(1).unwrap();
            // "`[etcd]` `endpoints`" is the key endpoints; "`debounce`, `max_wait`" are two.
            for key in first_cell.split('`').skip(1).step_by(2) {
                if !key.starts_with('[') {
                    keys.push(key.to_owned());
                }
            }
        }
    }
    assert!(
        keys.len() > 20,
        "found only {keys:?} in docs/configuration.md"
    );
    // In roff a key is written \fBkey\fR; underscores are literal.
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !page.contains(&format!("\\fB{k}\\fR")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/man/reconfd.toml.5 does not document {missing:?}"
    );
}
