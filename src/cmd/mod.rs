//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod credentials;
pub mod migrate;
pub mod once;
pub mod render;

use crate::config::{Overrides, Settings};
use crate::exit;

/// Assembles settings or prints every config problem; `Err` holds the exit code.
pub fn settings(o: &Overrides) -> Result<Settings, u8> {
    Settings::assemble(o).map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        exit::CONFIG
    })
}
