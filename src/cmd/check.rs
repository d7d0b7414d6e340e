//! `reconfd check`: validates the config, the TLS and password files, every resource and
//! every template without etcd, and prints every problem at once as `file:line: message`,
//! and what each resource watches.

use std::path::Path;

use crate::config::Overrides;
use crate::diag::Diagnostic;
use crate::resource::{self, Resource};
use crate::template::Template;
use crate::{etcd, exit};

/// Runs the check; exit 0 when nothing is wrong, [`exit::CONFIG`] otherwise.
pub fn run(o: &Overrides) -> u8 {
    let settings = match super::settings(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (count, problems, warnings) = check(&settings);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() {
        println!("{count} resource(s) OK in {}", settings.confdir.display());
        exit::SUCCESS
    } else {
        eprintln!("{} problem(s) found", problems.len());
        exit::CONFIG
    }
}

/// Checks everything; returns the number of resource files, the problems and the warnings.
pub fn check(settings: &crate::config::Settings) -> (usize, Vec<Diagnostic>, Vec<Diagnostic>) {
    let loaded = resource::load_all(settings);
    let mut problems = loaded.errors;
    let mut warnings = loaded.warnings;
    let config = settings
        .config_file
        .clone()
        .unwrap_or_else(|| "<command line>".into());
    for e in etcd::tls::check(&settings.etcd) {
        problems.push(Diagnostic::file(&config, e.to_string()));
    }
    let (bad, odd) = etcd::credentials::check(&settings.etcd);
    problems.extend(bad.into_iter().map(|m| Diagnostic::file(&config, m)));
    warnings.extend(odd.into_iter().map(|m| Diagnostic::file(&config, m)));
    for r in &loaded.resources {
        check_resource(r, &mut problems, &mut warnings);
    }
    (
        loaded.resources.len() + loaded.failed.len(),
        problems,
        warnings,
    )
}

fn check_resource(r: &Resource, problems: &mut Vec<Diagnostic>, warnings: &mut Vec<Diagnostic>) {
    // What the keys became, specifiers (%H, %m, ...) expanded: docs/configuration.md.
    println!(
        "{}: prefix {}, watches {}",
        r.file.display(),
        r.prefix,
        r.watched().join(" ")
    );
    if let Err(e) = Template::load_as(&r.src, r.engine) {
        problems.push(Diagnostic::file(&r.file, e.to_string()));
    }
    let dir = r.dest.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        problems.push(Diagnostic::file(
            &r.file,
            format!("dest directory {} does not exist", dir.display()),
        ));
    }
    if r.batch.max_wait < r.batch.debounce {
        warnings.push(Diagnostic::file(
            &r.file,
            "max_wait is shorter than debounce; changes wait max_wait",
        ));
    }
    if r.reload_cmd.is_some() && r.check_cmd.is_none() {
        warnings.push(Diagnostic::file(
            &r.file,
            "reload_cmd without check_cmd: a bad render reaches the service",
        ));
    }
}
