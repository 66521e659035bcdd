//! The OAuth callback: `GET /oauth/callback?code=..&state=..` on the connector's HTTP server.
//! It completes the authorization and sends the browser back to the Connections page with a
//! `status` (connected, reconnected, denied, error) and, for errors, a `reason`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::connect::ConnectFlow;

pub const CALLBACK_PATH: &str = "/oauth/callback";

pub fn router(flow: Arc<ConnectFlow>) -> Router {
    Router::new()
        .route(CALLBACK_PATH, get(callback))
        .with_state(flow)
}

async fn callback(State(flow): State<Arc<ConnectFlow>>, RawQuery(query): RawQuery) -> Response {
    let span = tracing::info_span!("oauth_callback");
    let query = query.unwrap_or_default();
    match tracing::Instrument::instrument(flow.complete(&query), span).await {
        Ok(outcome) => Redirect::to(&flow.redirect_for(&outcome)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "OAuth callback failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Connecting is temporarily unavailable; please try again from the Connections page.",
            )
                .into_response()
        }
    }
}

/// A running callback server.
pub struct HttpServer {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `addr` and serves `router` until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<HttpServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(listener, router, cancel)
}

/// Serves `router` on a bound listener until `cancel` fires.
pub fn serve_listener(
    listener: tokio::net::TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<HttpServer> {
    let local_addr = listener.local_addr()?;
    tracing::info!(addr = %local_addr, path = CALLBACK_PATH, "OAuth callback server listening");
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await
    });
    Ok(HttpServer { local_addr, task })
}
