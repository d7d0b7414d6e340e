//! The Tera engine behind [`super::Template`]: one `Tera` instance per template file, with
//! reconfd's functions registered before the template is compiled, autoescaping off (config
//! files are not HTML, whatever their name), and errors turned into text that keeps Tera's
//! full report (file, line, column and the offending source line).

use std::sync::Arc;

use tera::{Context, Tera};

use super::funcs::ViewScope;
use super::tera_funcs;
use crate::store::KvView;

/// A compiled Tera template and the instance that owns its functions.
#[derive(Debug)]
pub(crate) struct TeraTemplate {
    tera: Tera,
    name: String,
}

impl TeraTemplate {
    /// Compiles `source` under `name` (the file name); unknown functions or filters and syntax
    /// errors fail here, not at render time.
    pub(crate) fn compile(name: &str, source: &str) -> Result<Self, String> {
        let mut tera = Tera::default();
        tera.autoescape_on(Vec::<&str>::new());
        tera_funcs::register(&mut tera);
        tera.add_raw_template(name, source).map_err(|e| {
            let mut msg = report(&e);
            // The usual slip when porting confd templates: `getv("/k")` instead of `getv(key="/k")`.
            if msg.contains("expected identifier") {
                msg.push_str(
                    "\nhint: reconfd's functions take keyword arguments: \
                     getv(key=\"/k\"), not getv(\"/k\") (see docs/templates.md)",
                );
            }
            msg
        })?;
        Ok(Self {
            tera,
            name: name.to_owned(),
        })
    }

    /// Renders against `view`; the store functions see exactly this view.
    pub(crate) fn render(&self, view: Arc<KvView>) -> Result<String, String> {
        let _scope = ViewScope::enter(view);
        self.tera
            .render(&self.name, &Context::new())
            .map_err(|e| report(&e))
    }
}

/// Tera's message (for located errors, the full report with `--> name:line:col`) followed by
/// every underlying cause, so nothing is lost when the error becomes a string.
fn report(err: &tera::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    out
}
