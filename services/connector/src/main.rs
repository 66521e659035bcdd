//! `connector`: OAuth connections and provider pulls. Wiring only; see lib.rs and
//! docs/connector.md.

use std::sync::Arc;

use connector::config::ConnectorConfig;
use connector::pull::FromSchedules;
use connector::sync::api::SyncApi;
use connector::sync::schedule::SystemClock;
use connector::sync::{handlers as sync_handlers, scheduler};
use connector::{Connector, callback, handlers, store};
use rp_platform::grpc::{self, Services};
use rp_platform::runtime::Service;
use rp_platform::streams::{OpenStreams, StreamLimits};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics_addr = ConnectorConfig::metrics_addr()?;
    let config = ConnectorConfig::from_env()?;
    let mut svc = Service::start("connector").await?;
    store::migrate(&svc.migration_pool).await?;
    connector::metrics::init();
    svc.serve_metrics(metrics_addr).await?;
    let (grpc_addr, http_addr) = (config.grpc_addr, config.http_addr);

    // SyncFailed says when the next attempt is: the scheduler's next slot (sync/).
    let next_sync = Arc::new(FromSchedules {
        pool: svc.pool.clone(),
    });
    let connector = Connector::new(svc.pool.clone(), svc.store.clone(), config, next_sync)?;

    svc.consume(handlers::consumer_config(), connector.handler());
    let worker = connector.worker();
    let cancel = svc.cancel.clone();
    svc.spawn(async move { worker.run(cancel).await });

    // Orchestration: the sync-run and health projection, the daily scheduler, the Sync API.
    svc.consume(
        rp_platform::consumer::ConsumerConfig::new(
            "sync-orchestrator",
            rp_platform::consumer::Ordering::PerWorkspace,
        )
        .event_types(sync_handlers::EVENT_TYPES),
        Arc::new(sync_handlers::Orchestrator),
    );
    let clock = Arc::new(SystemClock);
    let scheduler = scheduler::Scheduler {
        pool: svc.pool.clone(),
        clock: clock.clone(),
        config: scheduler::SchedulerConfig::from_env()?,
    };
    let cancel = svc.cancel.clone();
    svc.spawn(async move { scheduler.run(cancel).await });
    // Live runs and their steps' age, for the stuck-run alert (docs/metrics.md).
    svc.spawn(connector::sync::metrics::watch_live_runs(
        svc.pool.clone(),
        svc.cancel.clone(),
    ));
    let services = Services::new().service(connector.grpc_service()).service(
        SyncApi::new(svc.pool.clone(), clock)
            .with_streams(OpenStreams::new(
                svc.pool.clone(),
                StreamLimits::from_env()?,
                svc.cancel.clone(),
            ))
            .into_server(),
    );

    let serving = grpc::serve(grpc_addr, svc.cancel.clone(), services).await?;
    svc.spawn(async move { serving.wait().await.map_err(Into::into) });
    let http = callback::serve(http_addr, connector.http_router(), svc.cancel.clone()).await?;
    svc.spawn(async move { http.task.await?.map_err(Into::into) });

    svc.wait().await
}
