//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod confd;
pub mod credentials;
pub mod migrate;
pub mod once;
pub mod render;
pub mod run;
pub mod status;
pub mod systemd_paths;

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

/// The runtime `once`, `run` and `confd` run on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}
