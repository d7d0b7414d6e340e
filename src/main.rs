//! The `reconfd` binary: parses the command line, sets up logging and dispatches to the
//! library. All logic lives in the library so tests can call it directly.

use std::process::ExitCode;

use reconfd::cli::Command;
use reconfd::{cmd, exit, logging};

fn main() -> ExitCode {
    // confd's command line is Go flag syntax, which clap cannot read: `reconfd confd ...` and
    // a binary named `confd` go straight to its own parser.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some((prog, confd_args)) = reconfd::confd::confd_args(&args) {
        return ExitCode::from(cmd::confd::run(prog, confd_args));
    }
    let cli = reconfd::cli::parse();
    let global = cli.global();
    let overrides = global.overrides();
    // The level may come from the config file; errors in the file are reported by the
    // subcommand itself, so here a broken file just means the default level.
    let level = match &overrides.log_level {
        Some(l) => l.clone(),
        None => reconfd::config::Settings::assemble(&overrides)
            .map_or_else(|_| "info".into(), |s| s.log_level),
    };
    logging::init(&level, global.log_target, global.log_format);
    let code = match &cli.command {
        Command::Check {
            print_systemd_paths,
            ..
        } => cmd::check::run(&overrides, *print_systemd_paths),
        Command::Credentials { action, .. } => cmd::credentials::run(&overrides, *action),
        Command::Render { template, data, .. } => {
            cmd::render::run(template, data, overrides.prefix.as_deref())
        }
        Command::Migrate {
            from,
            to,
            dry_run,
            force,
        } => cmd::migrate::run(&reconfd::migrate::Options {
            from: from.clone(),
            to: to.clone(),
            dry_run: *dry_run,
            force: *force,
        }),
        Command::Once { force, .. } => {
            cmd::runtime().block_on(cmd::once::run(&overrides, global.noop, *force))
        }
        Command::Status { json, observe } => cmd::status::status(observe, *json),
        Command::Approve { resource, observe } => cmd::status::approve(observe, resource),
        Command::Run { interval, .. } => cmd::run::run(overrides, *interval, global.noop),
        // Only reached with reconfd options before `confd` (`reconfd confd ...` went to
        // confd's parser above): they cannot apply to confd's command line.
        Command::Confd { .. } => {
            eprintln!("reconfd's own options do not apply to `reconfd confd`; give only confd's flags, after `confd`");
            exit::USAGE
        }
    };
    ExitCode::from(code)
}
