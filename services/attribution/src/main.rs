//! `attribution` (or `attribution serve`) runs the service; `attribution rebuild` empties the
//! projection, replays it from the event log and exits. Wiring only.

use attribution::config::Config;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attribution: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    let config = Config::from_env()?;
    match command.as_deref() {
        None | Some("serve") => attribution::service::run(config).await,
        Some("rebuild") => {
            let r = attribution::service::run_rebuild(config).await?;
            println!(
                "rebuilt from {} events: {} completed syncs recomputed (log position {})",
                r.events, r.switches, r.last_position
            );
            Ok(())
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}: use `serve` (the default) or `rebuild`")
        }
    }
}
