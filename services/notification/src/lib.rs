//! The notification service: turns sync interruptions and disconnections into in-app
//! notifications for the bell (one per incident, and one when it ends), and serves them over
//! gRPC (`rp.api.v1.Notifications`). Rules and words: [`domain`]; events in and out:
//! [`handlers`]; projection: [`store`]; API: [`api`]. docs/notifications.md for the whole story.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use rp_platform::config::{ConfigError, parse_or, var_or};
use rp_platform::contracts::api::v1::notifications_server::NotificationsServer;
use rp_platform::grpc::{self, Services};
use rp_platform::runtime::Service;
use std::net::SocketAddr;
use std::sync::Arc;

/// The service's own settings (the platform's come from `PlatformConfig`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `NOTIFICATION_GRPC_ADDR` (default `127.0.0.1:50054`).
    pub grpc_addr: SocketAddr,
    /// `RP_APP_BASE_URL` (default `http://localhost:3000`) + `RP_CONNECTIONS_PATH` (default
    /// `/workspace/connections`): where every notification links to.
    pub connections_link: domain::ConnectionsLink,
}

impl Config {
    pub const DEFAULT_GRPC_ADDR: &'static str = "127.0.0.1:50054";
    pub const DEFAULT_APP_BASE_URL: &'static str = "http://localhost:3000";
    pub const DEFAULT_CONNECTIONS_PATH: &'static str = "/workspace/connections";

    pub fn from_env() -> Result<Self, ConfigError> {
        let default_addr = SocketAddr::from(([127, 0, 0, 1], 50054));
        let grpc_addr = parse_or("NOTIFICATION_GRPC_ADDR", default_addr)?;
        let base = var_or("RP_APP_BASE_URL", Self::DEFAULT_APP_BASE_URL);
        let path = var_or("RP_CONNECTIONS_PATH", Self::DEFAULT_CONNECTIONS_PATH);
        let connections_link = domain::ConnectionsLink::new(&base, &path).map_err(|e| match e {
            domain::LinkError::BaseUrl(problem) => ConfigError::Invalid {
                var: "RP_APP_BASE_URL".into(),
                value: base.clone(),
                problem,
            },
            domain::LinkError::Path(problem) => ConfigError::Invalid {
                var: "RP_CONNECTIONS_PATH".into(),
                value: path.clone(),
                problem,
            },
        })?;
        Ok(Self {
            grpc_addr,
            connections_link,
        })
    }
}

/// Starts the service's work on a connected platform service: applies the projection's
/// migrations, runs the consumer, and serves gRPC (with health and reflection). Returns the
/// address the gRPC server is bound to. Everything stops when `svc.cancel` fires.
pub async fn start(svc: &mut Service, config: &Config) -> anyhow::Result<SocketAddr> {
    store::migrate(&svc.pool).await?;
    svc.consume(
        handlers::consumer_config(),
        Arc::new(handlers::NotificationHandler::new(
            config.connections_link.clone(),
        )),
    );
    let api = api::NotificationsApi::new(
        svc.pool.clone(),
        svc.nats.clone(),
        svc.bus().clone(),
        svc.cancel.clone(),
    );
    let serving = grpc::serve(
        config.grpc_addr,
        svc.cancel.clone(),
        Services::new().service(NotificationsServer::new(api)),
    )
    .await?;
    let addr = serving.local_addr();
    svc.spawn(async move { serving.wait().await.map_err(Into::into) });
    Ok(addr)
}
