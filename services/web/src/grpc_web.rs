//! The gRPC-Web edge: `POST /rp.api.v1.<Service>/<Method>` from the browser, translated to gRPC
//! by tonic-web's [`GrpcWebLayer`] and forwarded over HTTP/2 to the service that serves it.
//!
//! * Only the services of [`ROUTES`] are reachable; anything else under a gRPC-looking path is
//!   `UNIMPLEMENTED` (reflection and health stay internal).
//! * Only the request headers a gRPC call needs are forwarded ([`FORWARDED`]): `authorization`
//!   (the API key) among them, cookies and hop-by-hop headers not. Headers are never logged.
//! * Responses stream: a server-streaming call (`WatchConnectionHealth`, `Subscribe`) reaches
//!   the browser message by message, and ends when either side hangs up.
//! * A backend that cannot be reached answers `UNAVAILABLE` naming the service, so the page can
//!   say so.

use http::{HeaderMap, HeaderName, Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic_web::GrpcWebLayer;
use tower::{Layer, Service};

/// Which backend serves which `rp.api.v1` service (see each service's `main.rs`).
pub const ROUTES: [(&str, Backend); 5] = [
    ("rp.api.v1.Connections", Backend::Connector),
    ("rp.api.v1.Sync", Backend::Connector),
    ("rp.api.v1.Matches", Backend::Matcher),
    ("rp.api.v1.Attribution", Backend::Attribution),
    ("rp.api.v1.Notifications", Backend::Notification),
];

/// The request headers passed on to a backend. Everything else (cookies, `host`, hop-by-hop
/// headers) stays at the edge.
pub const FORWARDED: [&str; 11] = [
    "authorization",
    "content-type",
    "te",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "accept-encoding",
    "user-agent",
    "x-user-agent",
    "traceparent",
    "tracestate",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Connector,
    Matcher,
    Attribution,
    Notification,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Connector => "connector",
            Backend::Matcher => "matcher",
            Backend::Attribution => "attribution",
            Backend::Notification => "notification",
        }
    }
}

/// Forwards gRPC calls (already translated from gRPC-Web) to the backends, by service name.
#[derive(Clone)]
pub struct Forward {
    routes: Arc<HashMap<String, (&'static str, Channel)>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: not a valid gRPC address: {problem} (got {value:?})")]
pub struct BadAddress {
    pub var: String,
    pub value: String,
    pub problem: String,
}

impl Forward {
    /// `routes`: fully-qualified service name → (backend name, `http://host:port`). The
    /// channels connect lazily and reconnect by themselves.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'static str, String)>,
    ) -> Result<Self, BadAddress> {
        Self::with_ca(routes, None)
    }

    /// [`Forward::new`], trusting the CA in `ca_pem` for `https://` backends (the services serve
    /// TLS with `RP_GRPC_TLS_CERT`/`RP_GRPC_TLS_KEY`; issue 15.6).
    pub fn with_ca<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'static str, String)>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, BadAddress> {
        let mut map = HashMap::new();
        let mut channels: HashMap<String, Channel> = HashMap::new();
        for (service, backend, url) in routes {
            let channel = match channels.get(&url) {
                Some(c) => c.clone(),
                None => {
                    let bad = |problem: String| BadAddress {
                        var: backend.to_string(),
                        value: url.clone(),
                        problem,
                    };
                    let mut endpoint =
                        Endpoint::from_shared(url.clone()).map_err(|e| bad(e.to_string()))?;
                    if url.starts_with("https://") {
                        let ca = ca_pem.ok_or_else(|| {
                            bad("https needs the services' CA (RP_GRPC_TLS_CA)".into())
                        })?;
                        rp_platform::install_crypto_provider();
                        endpoint = endpoint
                            .tls_config(
                                tonic::transport::ClientTlsConfig::new()
                                    .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
                            )
                            .map_err(|e| bad(e.to_string()))?;
                    }
                    let c = endpoint.connect_lazy();
                    channels.insert(url.clone(), c.clone());
                    c
                }
            };
            map.insert(service.to_string(), (backend, channel));
        }
        Ok(Self {
            routes: Arc::new(map),
        })
    }

    /// Wrapped in tonic-web's translation: a service for gRPC-Web requests.
    pub fn grpc_web(self) -> tonic_web::GrpcWebService<Self> {
        GrpcWebLayer::new().layer(self)
    }
}

/// `"/rp.api.v1.Sync/SyncNow"` → `"rp.api.v1.Sync"`.
fn service_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
}

fn forwarded_headers(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::new();
    for name in FORWARDED {
        let name = HeaderName::from_static(name);
        for v in from.get_all(&name) {
            to.append(name.clone(), v.clone());
        }
    }
    to
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> BoxFuture {
        let path = req.uri().path().to_string();
        let Some((backend, channel)) = service_of(&path).and_then(|s| self.routes.get(s)) else {
            tracing::debug!(%path, "gRPC-Web call to a service the edge does not serve");
            let status = tonic::Status::unimplemented(format!("{path} is not served here"));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let (backend, mut channel) = (*backend, channel.clone());
        let (parts, body) = req.into_parts();
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = parts.uri;
        *out.headers_mut() = forwarded_headers(&parts.headers);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let answer = match tower::ServiceExt::ready(&mut channel).await {
                Ok(ready) => ready.call(out).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(res) => {
                    tracing::debug!(%path, backend, elapsed_ms = started.elapsed().as_millis() as u64, "forwarded");
                    Ok(res)
                }
                Err(e) => {
                    tracing::warn!(%path, backend, error = %e, "backend unreachable");
                    Ok(tonic::Status::unavailable(format!(
                        "the {backend} service cannot be reached right now; please retry shortly"
                    ))
                    .into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_the_first_path_segment_of_a_method_path() {
        assert_eq!(
            service_of("/rp.api.v1.Sync/SyncNow"),
            Some("rp.api.v1.Sync")
        );
        assert_eq!(service_of("/rp.api.v1.Sync/"), None);
        assert_eq!(service_of("/rp.api.v1.Sync"), None);
        assert_eq!(service_of("/a/b/c"), None);
    }

    #[test]
    fn only_the_call_headers_are_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer k".parse().unwrap());
        h.insert("cookie", "session=1".parse().unwrap());
        h.insert("host", "app.test".parse().unwrap());
        h.insert("content-type", "application/grpc".parse().unwrap());
        let out = forwarded_headers(&h);
        assert_eq!(out.get("authorization").unwrap(), "Bearer k");
        assert_eq!(out.get("content-type").unwrap(), "application/grpc");
        assert!(out.get("cookie").is_none());
        assert!(out.get("host").is_none());
    }
}
