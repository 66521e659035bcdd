//! The long-running matcher service: consumes records and step events, keeps the match
//! projection, emits AccountsMatched, serves `rp.api.v1.Matches`.

use crate::api::MatchesApi;
use crate::handlers::{EVENT_TYPES, Matcher};
use rp_platform::config::{ConfigError, parse_or};
use rp_platform::consumer::{ConsumerConfig, Ordering};
use rp_platform::runtime::Service;
use std::net::SocketAddr;
use std::sync::Arc;

/// Runs the service until SIGTERM/SIGINT.
pub async fn run() -> anyhow::Result<()> {
    let addr: SocketAddr = parse_or(
        "MATCHER_GRPC_ADDR",
        SocketAddr::from(([127, 0, 0, 1], 50052)),
    )
    .map_err(|e: ConfigError| anyhow::anyhow!(e))?;
    let mut svc = Service::start("matcher").await?;
    crate::store::migrate(&svc.pool).await?;
    svc.consume(
        ConsumerConfig::new("matcher", Ordering::PerWorkspace).event_types(EVENT_TYPES),
        Arc::new(Matcher::default()),
    );
    let serving = rp_platform::grpc::serve(
        addr,
        svc.cancel.clone(),
        rp_platform::grpc::Services::new().service(MatchesApi::new(svc.pool.clone()).into_server()),
    )
    .await?;
    tracing::info!(grpc = %serving.local_addr(), "matcher serving");
    svc.spawn(async move { serving.wait().await.map_err(Into::into) });
    svc.wait().await
}
