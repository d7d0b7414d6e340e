//! `reconfd check`: validates the config, the TLS and password files, every resource and
//! every template without etcd, and prints every problem at once as `file:line: message`,
//! and what each resource watches; or, with `--print-systemd-paths`, the drop-in the unit's
//! sandbox needs for them ([`super::systemd_paths`]).

use std::path::{Path, PathBuf};

use crate::config::Overrides;
use crate::diag::Diagnostic;
use crate::reconciler;
use crate::resource::Resource;
use crate::{etcd, exit};

use super::systemd_paths;

/// Runs the check; exit 0 when nothing is wrong, [`exit::CONFIG`] otherwise. With
/// `print_systemd_paths`, stdout is only the systemd drop-in (so it can be redirected into a
/// file), problems still go to stderr.
pub fn run(o: &Overrides, print_systemd_paths: bool) -> u8 {
    let settings = match super::settings(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let checked = diagnose(&settings);
    for w in &checked.warnings {
        eprintln!("warning: {w}");
    }
    for p in &checked.problems {
        eprintln!("{p}");
    }
    let conf_d = settings.confdir.join("conf.d");
    if print_systemd_paths {
        let dirs = systemd_paths::writable_dirs(checked.dests.iter().map(PathBuf::as_path));
        let unit = systemd_paths::unit_for(settings.config_file.as_deref());
        print!("{}", systemd_paths::drop_in(&dirs, &conf_d, &unit));
    } else {
        for line in &checked.watches {
            println!("{line}");
        }
    }
    if checked.problems.is_empty() && checked.files == 0 {
        if !print_systemd_paths {
            println!("{}", no_resources_hint(&settings.confdir));
        }
        exit::SUCCESS
    } else if checked.problems.is_empty() {
        if !print_systemd_paths {
            println!(
                "{} resource(s) OK in {}",
                checked.files,
                settings.confdir.display()
            );
        }
        exit::SUCCESS
    } else {
        eprintln!("{} problem(s) found", checked.problems.len());
        exit::CONFIG
    }
}

/// What [`diagnose`] found.
pub struct Checked {
    /// How many resource files there are, good or bad.
    pub files: usize,
    /// Problems, each naming its file and line.
    pub problems: Vec<Diagnostic>,
    /// Things that deserve a look.
    pub warnings: Vec<Diagnostic>,
    /// One line per valid resource: its file, prefix and watched keys.
    pub watches: Vec<String>,
    /// The destination of every valid resource.
    pub dests: Vec<PathBuf>,
}

/// Checks everything; returns what it found, the resources' watched keys and destinations.
pub fn diagnose(settings: &crate::config::Settings) -> Checked {
    let loaded = reconciler::load(settings);
    let files = loaded.files();
    let mut problems = loaded.errors;
    let mut warnings = loaded.warnings;
    let config = settings
        .config_file
        .clone()
        .unwrap_or_else(|| "<command line>".into());
    for e in etcd::tls::file_problems(&settings.etcd) {
        problems.push(Diagnostic::file(&config, e.to_string()));
    }
    let (bad, odd) = etcd::credentials::source_problems(&settings.etcd);
    problems.extend(bad.into_iter().map(|m| Diagnostic::file(&config, m)));
    warnings.extend(odd.into_iter().map(|m| Diagnostic::file(&config, m)));
    let resources = loaded.prepared.iter().map(|p| &p.resource);
    let (mut watches, mut dests) = (Vec::new(), Vec::new());
    for r in resources.chain(&loaded.without_template) {
        // What the keys became, specifiers (%H, %m, ...) expanded: docs/configuration.md.
        watches.push(format!(
            "{}: prefix {}, watches {}",
            r.file.display(),
            r.prefix,
            r.watched().join(" ")
        ));
        dests.push(r.dest.clone());
        problems.extend(dest_dir_missing(r));
    }
    Checked {
        files,
        problems,
        warnings,
        watches,
        dests,
    }
}

/// A destination whose directory does not exist fails every install (it is never created).
fn dest_dir_missing(r: &Resource) -> Option<Diagnostic> {
    let dir = r.dest.parent().unwrap_or(Path::new("/"));
    (!dir.is_dir()).then(|| {
        Diagnostic::file(
            &r.file,
            format!("dest directory {} does not exist", dir.display()),
        )
    })
}

/// What `check` says when `<confdir>/conf.d` holds no resource: nothing will be managed, and
/// how to write the first one (the packages ship the example as `*.toml.example`, which is
/// not loaded).
fn no_resources_hint(confdir: &Path) -> String {
    let conf_d = confdir.join("conf.d");
    let d = conf_d.display();
    format!(
        "no resources in {d}: reconfd manages nothing until a resource is written there (only \
         *.toml files are read; e.g. cp {d}/nginx.toml.example {d}/nginx.toml, adapt it, then \
         reconfd check and reconfd once --noop)"
    )
}
