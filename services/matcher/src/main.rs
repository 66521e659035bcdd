//! `matcher`: `matcher match ...` runs the batch command line; `matcher` or `matcher serve`
//! runs the service until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use matcher::cli::{Cli, Command};
use rp_platform::runtime::Service;

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
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("matcher: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = matcher::Config::from_env()?;
    let metrics_addr = matcher::Config::metrics_addr()?;
    let mut svc = Service::start("matcher").await?;
    svc.serve_metrics(metrics_addr).await?;
    let grpc = matcher::start(&mut svc, &config).await?;
    tracing::info!(%grpc, "matcher serving");
    svc.wait().await
}
