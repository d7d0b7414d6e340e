//! Template engines: loading a resource's template and rendering it against a [`KvView`].
//!
//! Tera is the native engine; files ending in `.tmpl` are confd Go templates (not yet
//! supported: loading one is an error naming the file). The Tera side lives in `engine`
//! (compile and render), `functions` (confd's function set) and `dns` (SRV lookups);
//! docs/templates.md is the reference for template authors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::KvView;

mod dns;
mod engine;
mod functions;

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
    /// Go templates are not implemented yet.
    #[error("{path}: confd Go templates (.tmpl) are not supported yet")]
    GoNotSupported {
        /// The template file.
        path: PathBuf,
    },
    /// Parse or render error reported by the engine (carries line and column).
    ///
    /// `message` is the engine's whole report: for Tera, `error: ...` then
    /// `--> file:line:col` and the source line with a caret, then any causes.
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
    engine: engine::TeraTemplate,
}

impl Template {
    /// Reads and parses a template file; the engine follows the file name.
    ///
    /// A Tera template is compiled here, so syntax errors and unknown functions or filters
    /// are reported at load time, with the file name, line and column. The template's name
    /// inside Tera (shown in those reports) is the file name.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        if path.extension().is_some_and(|e| e == "tmpl") {
            return Err(TemplateError::GoNotSupported {
                path: path.to_owned(),
            });
        }
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned();
        let engine = engine::TeraTemplate::compile(&name, &source).map_err(|message| {
            TemplateError::Engine {
                path: path.to_owned(),
                message,
            }
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
        self.engine
            .render(view)
            .map_err(|message| TemplateError::Engine {
                path: self.path.clone(),
                message,
            })
    }
}

#[cfg(test)]
mod tests;
