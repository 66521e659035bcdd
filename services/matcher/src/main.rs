//! `matcher`: `matcher match ...` runs the batch command line; `matcher` or `matcher serve`
//! runs the service.

use std::process::ExitCode;

use clap::Parser;
use matcher::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Match(args)) => matcher::cli::run_match(&args),
        None | Some(Command::Serve) => serve(),
    }
}

fn serve() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("matcher: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(matcher::service::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("matcher: {e:#}");
            ExitCode::FAILURE
        }
    }
}
