//! Template engines: loading a resource's template and rendering it against a [`KvView`].
//!
//! Tera is the native engine; files ending in `.tmpl` (or a resource with `engine = "go"`)
//! are confd Go templates, run by reconfd's own implementation of Go's text/template
//! (`gotext`). One function set serves both: `functions` is the one table of confd's
//! functions (names, parameters, Go types, docs), `funcs` implements them once (the store
//! functions are [`KvView`]'s), `tera_funcs` and `gotext::builtins` adapt them to each
//! engine's calling convention, `tera` and `go` compile and render, `dns` does SRV lookups.
//! docs/templates.md is the reference for template authors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::config::EngineKind;
use crate::store::KvView;

mod dns;
mod funcs;
pub(crate) mod functions;
mod go;
pub(crate) mod gotext;
mod tera;
mod tera_funcs;

/// Why a template could not be loaded or rendered. Messages name the template file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template file could not be read.
    #[error("{path}: cannot read template: {source}")]
    Read {
        /// The template file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Parse or render error reported by the engine (carries line and column).
    ///
    /// `message` is the engine's whole report: for Tera, `error: ...` then
    /// `--> file:line:col` and the source line with a caret, then any causes; for Go,
    /// `template: file:line:col: ...` as Go's text/template words it.
    #[error("{path}: {message}")]
    Engine {
        /// The template file.
        path: PathBuf,
        /// The engine's message.
        message: String,
    },
}

/// A loaded, parsed template.
#[derive(Debug)]
pub struct Template {
    path: PathBuf,
    engine: Engine,
}

#[derive(Debug)]
enum Engine {
    Tera(Box<tera::TeraTemplate>),
    Go(go::GoTemplate),
}

impl Template {
    /// Reads and parses a template file; the engine follows the file name.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        Self::load_as(path, EngineKind::for_path(path))
    }

    /// Reads and parses a template file written for `kind`.
    ///
    /// The template is compiled here, so syntax errors and unknown functions (or filters)
    /// are reported at load time, with the file name, line and column. The template's name
    /// inside the engine (shown in those reports) is the file name.
    pub fn load_as(path: &Path, kind: EngineKind) -> Result<Self, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_source(path, &source, kind)
    }

    /// Parses `source` as if read from `path` (whose file name names the template in errors).
    pub fn from_source(path: &Path, source: &str, kind: EngineKind) -> Result<Self, TemplateError> {
        let name = path
            .file_name()
            .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned();
        let engine = match kind {
            EngineKind::Tera => {
                tera::TeraTemplate::compile(&name, source).map(|t| Engine::Tera(Box::new(t)))
            }
            EngineKind::Go => go::GoTemplate::compile(&name, source).map(Engine::Go),
        }
        .map_err(|message| TemplateError::Engine {
            path: path.to_owned(),
            message,
        })?;
        Ok(Self {
            path: path.to_owned(),
            engine,
        })
    }

    /// The template file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renders the template against one view of etcd.
    ///
    /// The store functions (`getv`, `gets`, `ls`, ...) read exactly `view`. Renders of one
    /// template may run on several threads at once; each sees its own view.
    pub fn render(&self, view: Arc<KvView>) -> Result<String, TemplateError> {
        match &self.engine {
            Engine::Tera(t) => t.render(view),
            Engine::Go(t) => t.render(view),
        }
        .map_err(|message| TemplateError::Engine {
            path: self.path.clone(),
            message,
        })
    }
}

#[cfg(test)]
mod go_tests;
#[cfg(test)]
mod tests;
