//! `attribution` (or `attribution serve`) runs the service; `attribution rebuild` empties the
//! projection, replays it from the event log and exits. Wiring only.

use attribution::api::AttributionApi;
use attribution::config::Config;
use attribution::handlers::{Attribution, CONSUMER, EVENT_TYPES};
use attribution::rebuild::{RebuildReport, rebuild};
use rp_platform::consumer::{ConsumerConfig, Ordering};
use rp_platform::runtime::Service;
use std::process::ExitCode;
use std::sync::Arc;

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
        None | Some("serve") => serve(config).await,
        Some("rebuild") => {
            let r = run_rebuild(config).await?;
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

/// Runs the service until SIGTERM/SIGINT.
async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics_addr = Config::metrics_addr()?;
    let mut svc = Service::start("attribution").await?;
    svc.serve_metrics(metrics_addr).await?;
    attribution::store::migrate(&svc.migration_pool).await?;
    let settings = Arc::new(config.settings);
    // Per-workspace order: a sync's records are in the projection before its AccountsMatched.
    svc.consume(
        ConsumerConfig::new(CONSUMER, Ordering::PerWorkspace).event_types(EVENT_TYPES),
        Arc::new(Attribution::new(settings.clone())),
    );
    let serving = rp_platform::grpc::serve(
        config.grpc_addr,
        svc.cancel.clone(),
        rp_platform::grpc::Services::new()
            .service(AttributionApi::new(svc.pool.clone(), settings).into_server()),
    )
    .await?;
    tracing::info!(grpc = %serving.local_addr(), "attribution serving");
    svc.spawn(async move { serving.wait().await.map_err(Into::into) });
    svc.wait().await
}

/// `attribution rebuild`: empties the projection, replays it from the log, and stops.
async fn run_rebuild(config: Config) -> anyhow::Result<RebuildReport> {
    let svc = Service::start("attribution").await?;
    attribution::store::migrate(&svc.migration_pool).await?;
    let report = rebuild(&svc.pool, &config.settings).await;
    svc.cancel.cancel();
    svc.wait().await?;
    Ok(report?)
}
