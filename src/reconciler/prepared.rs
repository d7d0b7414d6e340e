//! The one loader: resource files → their templates → [`Prepared`] resources, with every
//! problem and warning found on the way. `run` (at start and on SIGHUP), `once`, `check` and
//! the golden test all load through [`load`], so they agree on what a conf.d tree means.
//!
//! It reads files and parses templates; it does not contact etcd, render or install.

use std::path::{Path, PathBuf};

use tracing::{error, warn};

use crate::config::Settings;
use crate::diag::Diagnostic;
use crate::install::{FileSpec, Hooks, ShellCommand};
use crate::resource::{self, Resource};
use crate::template::Template;

/// A resource with its parsed template, ready to reconcile.
#[derive(Debug)]
pub struct Prepared {
    /// The resource.
    pub resource: Resource,
    /// Its parsed template (in the engine the resource names).
    pub template: Template,
}

impl Prepared {
    /// How the install steps see this resource's destination.
    pub fn file_spec(&self) -> FileSpec {
        let r = &self.resource;
        FileSpec {
            dest: r.dest.clone(),
            uid: r.uid,
            gid: r.gid,
            mode: r.mode,
        }
    }

    /// The resource's commands and their timeouts; none at all when `sync_only` (confd's
    /// `-sync-only`: install files, leave the services alone).
    pub fn hooks(&self, sync_only: bool) -> Hooks {
        let r = &self.resource;
        let command =
            |line: &Option<String>| line.clone().filter(|_| !sync_only).map(ShellCommand::new);
        Hooks {
            check: command(&r.check_cmd),
            reload: command(&r.reload_cmd),
            check_timeout: r.check_timeout,
            reload_timeout: r.reload_timeout,
            rollback: r.rollback,
        }
    }
}

/// What [`load`] found in `<confdir>/conf.d`.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Resources whose file and template both loaded, in file-name order.
    pub prepared: Vec<Prepared>,
    /// Resource files that failed (their own or their template's fault), each named once in
    /// `errors`. `run` keeps a previous version of these; `once` counts them as failed.
    pub failed: Vec<PathBuf>,
    /// The resources among `failed` that were valid but whose template failed, so `check`
    /// can look at the rest of them too.
    pub without_template: Vec<Resource>,
    /// Problems, each naming its file (and line where known).
    pub errors: Vec<Diagnostic>,
    /// Things that parse but deserve a look: keys the confd dialect ignores, settings that
    /// make little sense together.
    pub warnings: Vec<Diagnostic>,
}

impl Loaded {
    /// How many resource files were found, good or bad.
    pub fn files(&self) -> usize {
        self.prepared.len() + self.failed.len()
    }

    /// Logs every warning and error (for `run` and `once`; `check` prints its own way).
    pub fn log(&self) {
        for w in &self.warnings {
            warn!("{w}");
        }
        for e in &self.errors {
            error!("{e}");
        }
    }
}

/// Loads every resource of `settings.confdir` and its template.
pub fn load(settings: &Settings) -> Loaded {
    let found = resource::load_all(settings);
    let mut loaded = Loaded {
        prepared: Vec::with_capacity(found.resources.len()),
        failed: found.failed,
        without_template: Vec::new(),
        errors: found.errors,
        warnings: found.warnings,
    };
    for r in found.resources {
        loaded.warnings.extend(semantic_warnings(&r));
        match Template::load_as(&r.src, r.engine) {
            Ok(template) => loaded.prepared.push(Prepared {
                resource: r,
                template,
            }),
            Err(e) => {
                loaded.errors.push(Diagnostic::file(&r.file, e.to_string()));
                loaded.failed.push(r.file.clone());
                loaded.without_template.push(r);
            }
        }
    }
    loaded.failed.sort();
    loaded
}

/// Settings of a valid resource that make little sense together.
fn semantic_warnings(r: &Resource) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    let file: &Path = &r.file;
    if r.batch.max_wait < r.batch.debounce {
        warnings.push(Diagnostic::file(
            file,
            "max_wait is shorter than debounce; changes wait max_wait",
        ));
    }
    if r.reload_cmd.is_some() && r.check_cmd.is_none() {
        warnings.push(Diagnostic::file(
            file,
            "reload_cmd without check_cmd: a bad render reaches the service",
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use crate::template::EngineKind;

    fn settings(confdir: &Path) -> Settings {
        Settings::assemble(&Overrides {
            config: Some(PathBuf::from("/dev/null")),
            confdir: Some(confdir.to_owned()),
            ..Default::default()
        })
        .unwrap()
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn templates_load_in_the_resources_engine_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        write(&c.join("templates/go.conf"), "{{getv \"/a\"}}\n");
        write(&c.join("templates/bad.tera"), "{% if %}\n");
        write(
            &c.join("conf.d/a.toml"),
            "[template]\nsrc = \"go.conf\"\nengine = \"go\"\ndest = \"/tmp/a\"\nkeys = [\"/a\"]\n",
        );
        write(
            &c.join("conf.d/b.toml"),
            "[template]\nsrc = \"bad.tera\"\ndest = \"/tmp/b\"\nkeys = [\"/a\"]\n",
        );
        write(&c.join("conf.d/c.toml"), "[template]\nsrc = 1\n");
        let loaded = load(&settings(c));
        assert_eq!(loaded.prepared.len(), 1);
        assert_eq!(loaded.prepared[0].resource.engine, EngineKind::Go);
        assert_eq!(
            loaded.failed,
            [c.join("conf.d/b.toml"), c.join("conf.d/c.toml")]
        );
        assert_eq!(loaded.files(), 3);
        assert!(
            loaded
                .errors
                .iter()
                .any(|e| e.file == c.join("conf.d/b.toml")),
            "{:?}",
            loaded.errors
        );
    }

    #[test]
    fn semantic_warnings_name_the_resource_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        write(&c.join("templates/t.tera"), "x\n");
        write(
            &c.join("conf.d/odd.toml"),
            "[template]\nsrc = \"t.tera\"\ndest = \"/tmp/odd\"\nkeys = [\"/a\"]\n\
             debounce = \"2s\"\nmax_wait = \"1s\"\nreload_cmd = \"true\"\n",
        );
        let loaded = load(&settings(c));
        let text: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        let file = c.join("conf.d/odd.toml").display().to_string();
        assert_eq!(
            text,
            [
                format!("{file}: max_wait is shorter than debounce; changes wait max_wait"),
                format!("{file}: reload_cmd without check_cmd: a bad render reaches the service"),
            ]
        );
    }

    #[test]
    fn sync_only_hooks_have_no_commands() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        write(&c.join("templates/t.tera"), "x\n");
        write(
            &c.join("conf.d/r.toml"),
            "[template]\nsrc = \"t.tera\"\ndest = \"/tmp/r\"\nkeys = [\"/a\"]\n\
             check_cmd = \"true\"\nreload_cmd = \"true\"\n",
        );
        let loaded = load(&settings(c));
        let p = &loaded.prepared[0];
        assert!(p.hooks(false).check.is_some() && p.hooks(false).reload.is_some());
        assert_eq!((p.hooks(true).check, p.hooks(true).reload), (None, None));
    }
}
