//! `reconfd confd` (or a binary named `confd`): parses confd's command line, sets up
//! logging and runs `once` (`-onetime`) or the daemon (`-watch`, or polling every
//! `-interval`). What the flags mean is [`crate::confd`]'s business.

use std::cell::Cell;
use std::ffi::OsString;

use tracing::{info, warn};

use crate::confd::flags::{self, Parsed};
use crate::confd::{self, Mode};
use crate::exit;
use crate::logging::{self, Format, Target};
use crate::reconciler::InstallMode;
use crate::supervisor::Source;

/// Runs confd's command line `args` (without the program name); `prog` is how the user
/// called us, for messages. Returns the exit code: 0, 1 when a resource failed (as confd
/// `-onetime`), 2 for a bad command line, 78 for a bad confd.toml or combination.
pub fn run(prog: &str, args: &[OsString]) -> u8 {
    let flags = match flags::parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", flags::usage(prog));
            return exit::SUCCESS;
        }
        Ok(Parsed::Flags(f)) => f,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("Run '{prog} -h' for the flags.");
            return exit::USAGE;
        }
    };
    if flags.version {
        println!(
            "reconfd {} (confd-compatible: confd's flags, confd.toml and templates; etcd v3 only)",
            env!("CARGO_PKG_VERSION")
        );
        return exit::SUCCESS;
    }
    let env = |k: &str| std::env::var(k).ok();
    let invocation = match confd::assemble(&flags, env) {
        Ok(i) => i,
        Err(failure) => {
            for e in &failure.errors {
                eprintln!("{e}");
            }
            return failure.code;
        }
    };
    logging::init(&invocation.settings.log_level, Target::Auto, Format::Text);
    for w in &invocation.warnings {
        warn!("{w}");
    }
    info!("{}", invocation.describe());
    if invocation.keep_stage_file {
        // confd keeps the staged file of a destination that was already in sync; reconfd
        // compares before staging, so in that case there is no staged file to keep.
        info!("-keep-stage-file has no effect: reconfd stages a file only when the destination changes, and that staged file becomes the destination");
    }
    let (noop, sync_only) = (invocation.noop, invocation.sync_only);
    let install = InstallMode { noop, sync_only };
    let source = match invocation.mode {
        Mode::Once => {
            let code =
                super::runtime().block_on(super::once::pass(&invocation.settings, install, false));
            return exit::as_confd(code);
        }
        Mode::Watch => Source::Watch,
        Mode::Poll(every) => Source::Poll(every),
    };
    // The first load is the one above; on SIGHUP confd.toml is read again (confd itself dies
    // of SIGHUP). The run mode, noop and sync-only stay as they were at start.
    let first = Cell::new(Some(invocation.settings));
    let mode = invocation.mode;
    let settings = move || {
        if let Some(s) = first.take() {
            return Ok(s);
        }
        let again = confd::assemble(&flags, env).map_err(|f| f.errors)?;
        for w in &again.warnings {
            warn!("{w}");
        }
        if (again.mode, again.noop, again.sync_only) != (mode, noop, sync_only) {
            warn!("onetime, watch, interval, noop and sync-only take effect on restart, not on SIGHUP");
        }
        Ok(again.settings)
    };
    super::runtime().block_on(super::run::daemon(settings, source, install))
}
