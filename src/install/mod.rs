//! Installing a rendered file safely: compare with the live file, stage beside it, check,
//! rename over it, reload.
//!
//! So far this holds only the hook runner, [`command`].

pub mod command;

pub use command::{CommandError, CommandOutput, ShellCommand};
