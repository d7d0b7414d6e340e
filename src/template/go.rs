//! The Go-template engine behind [`super::Template`], for confd's `.tmpl` files: reconfd's
//! own implementation of Go's text/template ([`super::gotext`]) with confd's function map.
//! Parse errors (unknown functions, variables out of scope, a stray `{{end}}`) fail when the
//! template is loaded, so `reconfd check` reports them; execution errors are worded and
//! located as Go's.

use std::sync::Arc;

use super::funcs::ViewScope;
use super::gotext::{Compiled, Limits};
use crate::store::KvView;

/// A parsed Go template with confd's functions.
#[derive(Debug)]
pub(crate) struct GoTemplate {
    compiled: Compiled,
    limits: Limits,
}

impl GoTemplate {
    /// Parses `source` under `name` (the file name). Syntax errors and calls of functions
    /// that do not exist fail here, with Go's message and line.
    pub(crate) fn compile(name: &str, source: &str) -> Result<Self, String> {
        Ok(Self {
            compiled: Compiled::new(name, source)?,
            limits: Limits::default(),
        })
    }

    /// Renders with `.` = nil (as confd does); the store functions read `view`.
    pub(crate) fn render(&self, view: Arc<KvView>) -> Result<String, String> {
        let _scope = ViewScope::enter(view);
        self.compiled.execute(self.limits)
    }
}
