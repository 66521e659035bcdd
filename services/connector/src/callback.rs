//! The OAuth callback: `GET /oauth/callback?code=..&state=..` on the connector's HTTP server.
//! It completes the authorization and sends the browser back to the Connections page with a
//! `status` (connected, reconnected, denied, error) and, for errors, a `reason`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use rp_platform::ratelimit::{KeyedLimiter, Rate};

use crate::connect::ConnectFlow;

pub const CALLBACK_PATH: &str = "/oauth/callback";

/// The callback's routes, limited to `rate` per client address: the callback does a token
/// exchange and database work per call, so no one address may make it do so without bound
/// (issue 15.2). Behind a proxy every browser shares the proxy's address: size the rate for it.
pub fn router(flow: Arc<ConnectFlow>, rate: Rate) -> Router {
    let limiter = Arc::new(KeyedLimiter::<IpAddr>::new(rate));
    Router::new()
        .route(CALLBACK_PATH, get(callback))
        .with_state(flow)
        .layer(from_fn_with_state(limiter, per_address))
}

/// `429 Too Many Requests` (with `Retry-After`) for a client address over its rate.
async fn per_address(
    State(limiter): State<Arc<KeyedLimiter<IpAddr>>>,
    req: Request,
    next: Next,
) -> Response {
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    if let Some(ip) = addr
        && let Err(wait) = limiter.check(&ip)
    {
        tracing::warn!(client = %ip, "OAuth callback refused: the address is over its rate");
        let secs = wait.as_secs().max(1).to_string();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs)],
            "Too many connection attempts from this address; please wait a moment and try again.",
        )
            .into_response();
    }
    next.run(req).await
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
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    });
    Ok(HttpServer { local_addr, task })
}
