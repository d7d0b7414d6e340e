//! The `reconfd` binary: parses the command line, sets up logging and dispatches to the
//! library. All logic lives in the library so tests can call it directly.

use std::process::ExitCode;

use clap::Parser;
use reconfd::cli::{Cli, Command};
use reconfd::{cmd, daemon, exit, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = cli.global.overrides();
    // The level may come from the config file; errors in the file are reported by the
    // subcommand itself, so here a broken file just means the default level.
    let level = match &overrides.log_level {
        Some(l) => l.clone(),
        None => reconfd::config::Settings::assemble(&overrides)
            .map_or_else(|_| "info".into(), |s| s.log_level),
    };
    logging::init(&level, cli.global.log_target, cli.global.log_format);
    let code = match &cli.command {
        Command::Check => cmd::check::run(&overrides),
        Command::Credentials { action } => cmd::credentials::run(&overrides, *action),
        Command::Render { template, data } => {
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
        Command::Once => runtime().block_on(cmd::once::run(&overrides, cli.global.noop)),
        Command::Run { interval } => {
            let source = match interval {
                Some(0) => {
                    eprintln!("--interval must be at least 1 second");
                    return ExitCode::from(exit::USAGE);
                }
                Some(secs) => daemon::Source::Poll(std::time::Duration::from_secs(*secs)),
                None => daemon::Source::Watch,
            };
            runtime().block_on(daemon::run(overrides, source, cli.global.noop))
        }
    };
    ExitCode::from(code)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}
