//! `web`: the browser's one origin. Serves the page (Connections, the bell, the dashboard; built
//! from `ui/` into `ui/dist`) and forwards its gRPC-Web calls to the services
//! ([`grpc_web`]). Same origin for both, so no CORS is needed and none is offered.
//!
//! The API key travels only in the `authorization` header of the gRPC-Web calls (the page keeps
//! it in `sessionStorage`), never in a URL; the edge forwards it and logs no header.

pub mod assets;
pub mod grpc_web;

use assets::Assets;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use grpc_web::{Backend, Forward, ROUTES};
use rp_platform::config::{ConfigError, parse_or, var_or};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Where the page's built files are by default: this crate's `ui/dist`.
pub const DEFAULT_ASSETS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/dist");

#[derive(Clone, Debug)]
pub struct Config {
    /// `WEB_ADDR` (127.0.0.1:3000: `RP_APP_BASE_URL`'s default is http://localhost:3000).
    pub addr: SocketAddr,
    /// `WEB_ASSETS_DIR`.
    pub assets_dir: PathBuf,
    /// `http://` (or `https://` with `RP_GRPC_TLS_CA`) + `CONNECTOR_GRPC_ADDR`,
    /// `MATCHER_GRPC_ADDR`, `ATTRIBUTION_GRPC_ADDR`, `NOTIFICATION_GRPC_ADDR` (the services' own
    /// listen addresses and defaults).
    pub connector: String,
    pub matcher: String,
    pub attribution: String,
    pub notification: String,
    /// `RP_GRPC_TLS_CA`: the PEM of the CA that signed the services' certificates, when they
    /// serve TLS (`RP_GRPC_TLS_CERT`); the edge then calls them over `https://`, and the
    /// certificates must name the addresses above.
    pub backend_ca: Option<Vec<u8>>,
    /// `WEB_DEMO_ENV`: for `make run`'s demo only, the file with the demo workspace and key
    /// (`.run/demo.env`), which `POST /demo/session` hands to a browser on this machine.
    pub demo_env: Option<PathBuf>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let ca = var_or("RP_GRPC_TLS_CA", "");
        let backend_ca = if ca.is_empty() {
            None
        } else {
            Some(std::fs::read(&ca).map_err(|e| ConfigError::Invalid {
                var: "RP_GRPC_TLS_CA".into(),
                value: ca.clone(),
                problem: e.to_string(),
            })?)
        };
        let scheme = if backend_ca.is_some() {
            "https"
        } else {
            "http"
        };
        let grpc = |var: &str, default_port: u16| -> Result<String, ConfigError> {
            let addr = parse_or(var, SocketAddr::from(([127, 0, 0, 1], default_port)))?;
            Ok(format!("{scheme}://{addr}"))
        };
        let demo = var_or("WEB_DEMO_ENV", "");
        Ok(Self {
            addr: parse_or("WEB_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?,
            assets_dir: PathBuf::from(var_or("WEB_ASSETS_DIR", DEFAULT_ASSETS_DIR)),
            connector: grpc("CONNECTOR_GRPC_ADDR", 50051)?,
            matcher: grpc("MATCHER_GRPC_ADDR", 50052)?,
            attribution: grpc("ATTRIBUTION_GRPC_ADDR", 50053)?,
            notification: grpc("NOTIFICATION_GRPC_ADDR", 50054)?,
            demo_env: (!demo.is_empty()).then(|| PathBuf::from(demo)),
            backend_ca,
        })
    }

    fn backend_url(&self, b: Backend) -> String {
        match b {
            Backend::Connector => self.connector.clone(),
            Backend::Matcher => self.matcher.clone(),
            Backend::Attribution => self.attribution.clone(),
            Backend::Notification => self.notification.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Assets(#[from] assets::AssetsError),
    #[error(transparent)]
    Address(#[from] grpc_web::BadAddress),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct AppState {
    assets: Assets,
    demo_env: Option<PathBuf>,
}

/// The whole origin: the gRPC-Web routes of [`ROUTES`], `POST /demo/session` when configured,
/// and the page.
pub fn app(config: &Config) -> Result<Router, WebError> {
    let assets = Assets::load(&config.assets_dir)?;
    let forward = Forward::with_ca(
        ROUTES
            .iter()
            .map(|(service, backend)| (*service, backend.name(), config.backend_url(*backend))),
        config.backend_ca.as_deref(),
    )?;
    let grpc_web = forward.grpc_web();
    let mut router = Router::new();
    for (service, _) in ROUTES {
        router = router.route_service(&format!("/{service}/{{method}}"), grpc_web.clone());
    }
    let router = router
        .route("/demo/session", axum::routing::post(demo_session))
        .fallback(page)
        .layer(axum::middleware::from_fn(same_origin_only))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(AppState {
            assets,
            demo_env: config.demo_env.clone(),
        });
    Ok(router)
}

/// How long a shutdown waits for open calls (a `WatchConnectionHealth` or `Subscribe` stream
/// stays open until the browser leaves) before dropping them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A running edge.
pub struct Serving {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<Result<(), WebError>>,
}

/// Binds `config.addr` and serves [`app`] until `cancel` fires; then stops accepting and lets
/// open calls finish for [`SHUTDOWN_GRACE`].
pub async fn serve(config: &Config, cancel: CancellationToken) -> Result<Serving, WebError> {
    let router = app(config)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| WebError::Bind {
            addr: config.addr,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| WebError::Bind {
        addr: config.addr,
        source,
    })?;
    let task = tokio::spawn(async move {
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(cancel.clone().cancelled_owned());
        let deadline = async {
            cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = server => r.map_err(WebError::Serve),
            _ = deadline => Ok(()),
        }
    });
    tracing::info!(addr = %local_addr, "web: serving the page and forwarding gRPC-Web");
    Ok(Serving { local_addr, task })
}

async fn page(State(state): State<AppState>, method: Method, req: Request) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    state.assets.get(req.uri().path())
}

/// The demo workspace for a browser on this machine, from `WEB_DEMO_ENV` (`make run` only):
/// `{"workspace_id", "api_key"}` in the body of a POST, never in a URL.
async fn demo_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(path) = state.demo_env.as_ref() else {
        return (StatusCode::NOT_FOUND, "no demo workspace here\n").into_response();
    };
    // Loopback peers only, and only under a loopback name: a site whose name was made to
    // resolve to 127.0.0.1 (DNS rebinding) does not get the key.
    if !peer.ip().is_loopback() || !is_loopback_host(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "the demo workspace is for this machine only\n",
        )
            .into_response();
    }
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the demo workspace is not made yet: wait for `make run` to finish its demo\n",
            )
                .into_response();
        }
    };
    let value = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
    };
    match (value("WS"), value("RP_API_KEY")) {
        (Some(ws), Some(key)) => {
            let mut res =
                axum::Json(serde_json::json!({"workspace_id": ws, "api_key": key})).into_response();
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the demo workspace is not made yet\n",
        )
            .into_response(),
    }
}

fn is_loopback_host(h: &HeaderMap) -> bool {
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// Refuses a state-changing request sent by another origin's page (the browser says which in
/// `Origin`): the edge offers no CORS, and a form or `no-cors` fetch from elsewhere must not
/// reach an API either.
async fn same_origin_only(req: Request, next: Next) -> Response {
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && !origin_matches_host(req.headers())
    {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin requests are not served\n",
        )
            .into_response();
    }
    next.run(req).await
}

fn origin_matches_host(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not sent by a browser page (or a same-origin GET)
    };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// One line per request: method, path (no query), status, time. Never a header.
async fn access_log(req: Request<Body>, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::info!(%method, %path, status = res.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_demo_key_is_handed_out_under_a_loopback_name_only() {
        assert!(is_loopback_host(&headers(None, "localhost:3000")));
        assert!(is_loopback_host(&headers(None, "127.0.0.1:3000")));
        assert!(is_loopback_host(&headers(None, "[::1]:3000")));
        assert!(!is_loopback_host(&headers(None, "rebound.example:3000")));
    }

    #[test]
    fn only_the_pages_own_origin_may_post() {
        assert!(origin_matches_host(&headers(
            Some("http://localhost:3000"),
            "localhost:3000"
        )));
        assert!(origin_matches_host(&headers(None, "localhost:3000")));
        assert!(!origin_matches_host(&headers(
            Some("http://evil.example"),
            "localhost:3000"
        )));
        assert!(!origin_matches_host(&headers(
            Some("null"),
            "localhost:3000"
        )));
    }
}
