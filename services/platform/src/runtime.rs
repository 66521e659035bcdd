//! What every service binary does at startup and shutdown, so `main.rs` stays wiring only:
//! read config, start telemetry, connect to PostgreSQL and NATS, apply migrations, make sure
//! the stream exists, run the relay, serve the metrics, and turn SIGTERM/SIGINT into a
//! cancellation.

use crate::bus::{self, BusConfig};
use crate::config::PlatformConfig;
use crate::eventlog::EventStore;
use crate::relay::Relay;
use async_nats::jetstream;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A started service: its connections, and the tasks it runs until shutdown.
pub struct Service {
    pub name: &'static str,
    pub config: PlatformConfig,
    pub pool: PgPool,
    /// Where migrations run: the owner's pool when `RP_MIGRATE_DATABASE_URL` is set (services
    /// then connect as a role that cannot change history: `rp migrate --service-role`,
    /// docs/security.md), else [`Service::pool`]. A service applies its own migrations with it.
    pub migration_pool: PgPool,
    pub store: EventStore,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub cancel: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
    _telemetry: Option<crate::telemetry::TelemetryGuard>,
}

impl Service {
    /// Starts a service from the environment (`DATABASE_URL`, `NATS_URL`, `RP_BUS_*`, ...).
    pub async fn start(name: &'static str) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let telemetry = crate::telemetry::init(name)?;
        let config = PlatformConfig::from_env()?;
        let mut svc = Self::connect(name, config).await?;
        svc._telemetry = Some(telemetry);
        let cancel = svc.cancel.clone();
        svc.tasks.spawn(async move {
            tokio::select! {
                _ = shutdown_signal() => {
                    tracing::info!("shutdown requested: finishing in-flight work");
                    cancel.cancel();
                }
                _ = cancel.cancelled() => {}
            }
            Ok(())
        });
        Ok(svc)
    }

    /// Connects with an explicit configuration (tests use this), applies migrations, ensures
    /// the stream and starts the relay.
    pub async fn connect(name: &'static str, config: PlatformConfig) -> anyhow::Result<Self> {
        crate::db::ensure_database(&config.database_url).await?;
        let pool = crate::db::connect_with(&config.database_url, 16, config.db_limits).await?;
        let migration_pool = match &config.migrate_database_url {
            Some(url) => crate::db::connect_with(url, 2, config.db_limits).await?,
            None => pool.clone(),
        };
        crate::db::migrate(&migration_pool).await?;
        let nats = bus::connect(&config.nats_url, name).await?;
        let js = jetstream::new(nats.clone());
        bus::ensure_stream(&js, &config.bus).await?;
        let store = EventStore::new(pool.clone());
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let relay = Relay::new(store.clone(), js.clone(), config.bus.clone());
        let relay_cancel = cancel.clone();
        tasks.spawn(async move { relay.run(relay_cancel).await.map_err(Into::into) });
        // Processed marks and dead letters past their retention (docs/bus.md, "Retention").
        tasks.spawn(crate::consumer::housekeeping(
            pool.clone(),
            config.retention,
            std::time::Duration::from_secs(3600),
            cancel.clone(),
        ));
        tracing::info!(service = name, stream = %config.bus.stream, "started");
        Ok(Self {
            name,
            config,
            pool,
            migration_pool,
            store,
            nats,
            js,
            cancel,
            tasks,
            _telemetry: None,
        })
    }

    pub fn bus(&self) -> &BusConfig {
        &self.config.bus
    }

    /// Runs a consumer until shutdown, with the retry schedule `RP_CONSUMER_*` sets, if any.
    pub fn consume<H: crate::consumer::Handler>(
        &mut self,
        mut cfg: crate::consumer::ConsumerConfig,
        handler: std::sync::Arc<H>,
    ) {
        self.config.consumer_retry.apply(&mut cfg);
        let (js, bus, pool, cancel) = (
            self.js.clone(),
            self.config.bus.clone(),
            self.pool.clone(),
            self.cancel.clone(),
        );
        self.tasks.spawn(async move {
            crate::consumer::run(js, bus, pool, cfg, handler, cancel)
                .await
                .map_err(Into::into)
        });
    }

    /// Serves the process' metrics on `addr` (`GET /metrics`) until shutdown; returns the address
    /// it is bound to. `addr` comes from the service's `<SERVICE>_METRICS_ADDR`.
    pub async fn serve_metrics(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::SocketAddr, crate::metrics::MetricsError> {
        let server = crate::metrics::serve(addr, self.cancel.clone()).await?;
        let local = server.local_addr();
        self.tasks
            .spawn(async move { server.wait().await.map_err(Into::into) });
        Ok(local)
    }

    /// Runs any other task until shutdown (it must watch `self.cancel`).
    pub fn spawn<F>(&mut self, task: F)
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits until shutdown is requested and every task has finished; the first task error
    /// also shuts the service down and is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(done) = self.tasks.join_next().await {
            let outcome = match done {
                Ok(r) => r,
                Err(e) => Err(anyhow::anyhow!("task panicked: {e}")),
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "task failed; shutting down");
                self.cancel.cancel();
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        let _ = self.nats.flush().await;
        self.pool.close().await;
        tracing::info!(service = self.name, "stopped");
        result
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
