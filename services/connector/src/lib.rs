//! The connector: OAuth connections to LinkedIn, HubSpot and Salesforce with tokens encrypted
//! at rest, and the pulls that bring their records into the event log with incremental
//! checkpoints (docs/connector.md).
//!
//! | module | what |
//! |---|---|
//! | [`domain`] | pure types and rules: ids, checkpoints, plans, batches, failure classification |
//! | [`providers`] | HTTP clients of the providers and their OAuth servers |
//! | [`connect`], [`callback`], [`api`] | the connect flow, its HTTP callback, the gRPC API |
//! | [`vault`], [`crypto`] | the token vault and its AES-256-GCM key ring |
//! | [`handlers`], [`pull`] | SyncRequested becomes a pull job; the worker runs pulls |
//! | [`store`] | the connector's tables |
//! | [`metrics`] | provider requests, HubSpot's budget, token refreshes, disconnections (the sync run's are in `sync::metrics`) |
//! | [`sync`] | the sync run's home: run aggregate, Sync Now, orchestrator, scheduler, health API |

pub mod api;
pub mod callback;
pub mod clients;
pub mod clock;
pub mod config;
pub mod connect;
pub mod crypto;
pub mod domain;
pub mod handlers;
pub mod metrics;
pub mod providers;
pub mod pull;
pub mod store;
pub mod sync;
pub mod vault;

use std::sync::Arc;

use rp_platform::contracts::api::v1::connections_server::ConnectionsServer;
use rp_platform::eventlog::EventStore;
use sqlx::PgPool;

use crate::clock::ProviderClock;
use crate::config::ConnectorConfig;
use crate::pull::{NextScheduledSync, PullContext, PullWorker};

/// The connector's parts, built once from configuration; `main.rs` wires them into the service.
pub struct Connector {
    pub config: ConnectorConfig,
    pub clients: clients::Clients,
    pub vault: Arc<vault::Vault>,
    pub flow: Arc<connect::ConnectFlow>,
    pub pull: Arc<PullContext>,
}

impl Connector {
    /// `schedule` answers when an integration's next scheduled sync is (for SyncFailed).
    pub fn new(
        pool: PgPool,
        store: EventStore,
        config: ConnectorConfig,
        schedule: Arc<dyn NextScheduledSync>,
    ) -> anyhow::Result<Self> {
        let clients = clients::Clients::new(&config)?;
        let vault = Arc::new(
            vault::Vault::new(
                pool.clone(),
                config.keys.clone(),
                clients.clone(),
                config.refresh_margin,
            )
            .with_provider_clock(ProviderClock::from_config(
                config.provider_clock_url.as_deref(),
                clients.http.clone(),
            )),
        );
        let flow = Arc::new(connect::ConnectFlow::new(
            pool.clone(),
            clients.clone(),
            vault.clone(),
            config.oauth_state_ttl,
            config.connections_page.clone(),
        ));
        let pull = Arc::new(PullContext {
            pool,
            store,
            clients: clients.clone(),
            vault: vault.clone(),
            clock: ProviderClock::from_config(
                config.provider_clock_url.as_deref(),
                clients.http.clone(),
            ),
            plans: config.plans.clone(),
            signpost_margin: chrono::Duration::from_std(config.signpost_margin)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            schedule,
            lease: config.pull.lease,
            heartbeat: config.pull.heartbeat,
            retry_for: config.pull.retry_for,
            max_attempts: config.pull.max_attempts,
        });
        Ok(Self {
            config,
            clients,
            vault,
            flow,
            pull,
        })
    }

    /// The `rp.api.v1.Connections` gRPC service.
    pub fn grpc_service(&self) -> ConnectionsServer<api::ConnectionsApi> {
        ConnectionsServer::new(api::ConnectionsApi::new(self.flow.clone()))
    }

    /// The HTTP routes: the OAuth callback.
    pub fn http_router(&self) -> axum::Router {
        callback::router(self.flow.clone(), self.config.callback_rate)
    }

    /// The SyncRequested / WorkspaceCreated consumer.
    pub fn handler(&self) -> Arc<handlers::SyncRequests> {
        Arc::new(handlers::SyncRequests)
    }

    /// A pull worker for this process.
    pub fn worker(&self) -> PullWorker {
        PullWorker::new(
            self.pull.clone(),
            self.config.pull.concurrency,
            self.config.pull.poll,
        )
    }
}
