//! The long-running attribution service: consumes the projection's events, switches the
//! dashboard when a sync completes, serves `rp.api.v1.Attribution`.

use crate::api::AttributionApi;
use crate::config::Config;
use crate::handlers::{Attribution, CONSUMER, EVENT_TYPES};
use crate::rebuild::{RebuildReport, rebuild};
use rp_platform::consumer::{ConsumerConfig, Ordering};
use rp_platform::runtime::Service;
use std::sync::Arc;

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut svc = Service::start("attribution").await?;
    crate::store::migrate(&svc.pool).await?;
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
pub async fn run_rebuild(config: Config) -> anyhow::Result<RebuildReport> {
    let svc = Service::start("attribution").await?;
    crate::store::migrate(&svc.pool).await?;
    let report = rebuild(&svc.pool, &config.settings).await;
    svc.cancel.cancel();
    svc.wait().await?;
    Ok(report?)
}
