//! The notification service: turns sync interruptions and disconnections into in-app
//! notifications for the bell (one per incident, and one when it ends), and serves them over
//! gRPC (`rp.api.v1.Notifications`). Rules and words: [`domain`]; events in and out:
//! [`handlers`]; projection: [`store`]; API: [`api`]; settings: [`config`].
//! docs/notifications.md for the whole story.

pub mod api;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod store;

use rp_platform::contracts::api::v1::notifications_server::NotificationsServer;
use rp_platform::grpc::{self, Services};
use rp_platform::runtime::Service;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::Config;

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
    let api = api::NotificationsApi::with_limits(
        svc.pool.clone(),
        svc.nats.clone(),
        svc.bus().clone(),
        svc.cancel.clone(),
        rp_platform::streams::StreamLimits::from_env()?,
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
