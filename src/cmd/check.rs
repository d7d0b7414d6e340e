//! `reconfd check`: validates the config, the TLS and password files, every resource and
//! every template without etcd, and prints every problem at once as `file:line: message`,
//! and what each resource watches.

use std::path::Path;

use crate::config::Overrides;
use crate::diag::Diagnostic;
use crate::reconciler;
use crate::resource::Resource;
use crate::{etcd, exit};

/// Runs the check; exit 0 when nothing is wrong, [`exit::CONFIG`] otherwise.
pub fn run(o: &Overrides) -> u8 {
    let settings = match super::settings(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (count, problems, warnings) = diagnose(&settings);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() && count == 0 {
        println!("{}", no_resources_hint(&settings.confdir));
        exit::SUCCESS
    } else if problems.is_empty() {
        println!("{count} resource(s) OK in {}", settings.confdir.display());
        exit::SUCCESS
    } else {
        eprintln!("{} problem(s) found", problems.len());
        exit::CONFIG
    }
}

/// Checks everything; returns the number of resource files, the problems and the warnings.
pub fn diagnose(settings: &crate::config::Settings) -> (usize, Vec<Diagnostic>, Vec<Diagnostic>) {
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
    for r in resources.chain(&loaded.without_template) {
        // What the keys became, specifiers (%H, %m, ...) expanded: docs/configuration.md.
        println!(
            "{}: prefix {}, watches {}",
            r.file.display(),
            r.prefix,
            r.watched().join(" ")
        );
        problems.extend(dest_dir_missing(r));
    }
    (files, problems, warnings)
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
