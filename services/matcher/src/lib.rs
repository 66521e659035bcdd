//! Company matching for Revenue Proven: pairs LinkedIn companies with CRM accounts.
//!
//! - [`domain`]: the pure matching library (no I/O): web domains, names, the incremental index.
//! - [`cli`]: the batch command line (`matcher match --linkedin L.jsonl --crm C.jsonl`).
//! - The long-running service: events in and out [`handlers`]; projection [`store`]; gRPC
//!   [`api`]; settings [`config`]; [`start`] wires them on a platform service.

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod store;

use rp_platform::consumer::{ConsumerConfig, Ordering};
use rp_platform::grpc::{self, Services};
use rp_platform::runtime::Service;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::Config;

/// Starts the service's work on a connected platform service: applies the projection's
/// migrations, consumes records and step events (keeping the match projection, emitting
/// AccountsMatched), and serves `rp.api.v1.Matches`. Returns the address the gRPC server is
/// bound to. Everything stops when `svc.cancel` fires.
pub async fn start(svc: &mut Service, config: &Config) -> anyhow::Result<SocketAddr> {
    store::migrate(&svc.migration_pool).await?;
    svc.consume(
        ConsumerConfig::new("matcher", Ordering::PerWorkspace).event_types(handlers::EVENT_TYPES),
        Arc::new(handlers::Matcher::new(config.index_cache_records)),
    );
    let serving = grpc::serve(
        config.grpc_addr,
        svc.cancel.clone(),
        Services::new().service(api::MatchesApi::new(svc.pool.clone()).into_server()),
    )
    .await?;
    let addr = serving.local_addr();
    svc.spawn(async move { serving.wait().await.map_err(Into::into) });
    Ok(addr)
}
