//! The `reconfd` binary: parses the command line, sets up logging and dispatches to the
//! library. All logic lives in the library so tests can call it directly.

use std::process::ExitCode;

use clap::Parser;
use reconfd::cli::{Cli, Command};
use reconfd::{cmd, exit, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = cli.global.overrides();
    logging::init(overrides.log_level.as_deref().unwrap_or("info"));
    let code = match &cli.command {
        Command::Check => cmd::check::run(&overrides),
        Command::Render { template, data } => {
            cmd::render::run(template, data, overrides.prefix.as_deref())
        }
        Command::Once => runtime().block_on(cmd::once::run(&overrides, cli.global.noop)),
        Command::Run => {
            eprintln!("reconfd run is not implemented yet; use `reconfd once` on a timer for now");
            exit::USAGE
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
