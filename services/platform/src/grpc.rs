//! gRPC servers, the same way in every service.
//!
//! * [`serve`] binds, then serves the service's own tonic services plus the standard
//!   `grpc.health.v1.Health` service (each service reported `SERVING` by name, and `""` for the
//!   whole server) and server reflection (`grpc.reflection.v1` and `v1alpha`) over every
//!   contract in `proto/`, so `grpcurl` works without local `.proto` files.
//! * Every server bounds its transport: a request timeout ([`REQUEST_TIMEOUT`]), at most
//!   [`MAX_STREAMS_PER_CONNECTION`] concurrent streams per connection, HTTP/2 keepalive pings
//!   (a client that vanished is dropped after [`KEEPALIVE_INTERVAL`] + [`KEEPALIVE_TIMEOUT`]).
//! * TLS when a certificate and key are configured ([`ServerTls`]: `RP_GRPC_TLS_CERT`,
//!   `RP_GRPC_TLS_KEY`, or [`Services::tls`]): rustls with the ring provider; a plaintext client
//!   is then refused (issue 15.6; docs/security.md).
//! * Every call is counted by method and status code, and open server streams are gauged
//!   ([`crate::metrics::GrpcMetricsLayer`]; docs/metrics.md).
//! * Shutdown follows the service's [`CancellationToken`]: health turns `NOT_SERVING` (and health
//!   `Watch` streams end), the listener closes, in-flight calls finish. Long-lived server
//!   streams must end on the same token (tonic waits for every open call); one that does not is
//!   left behind after a grace period (10 s by default): [`Serving::wait`] returns and the
//!   connection dies with the process.
//! * The one place where our error kinds become gRPC status codes: [`ApiError`], and the helpers
//!   [`invalid_argument`], [`not_found`], [`failed_precondition`], [`permission_denied`],
//!   [`unauthenticated`] and [`unavailable`]. "The request was wrong" says what to change;
//!   "the infrastructure failed" is logged with its cause and shown as `UNAVAILABLE` without
//!   internals.

use crate::contracts::FILE_DESCRIPTOR_SET;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How long a shutdown waits for open calls before dropping them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot listen for gRPC on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("gRPC server task ended abnormally: {0}")]
    Task(String),
    #[error("gRPC TLS: {0}")]
    Tls(String),
}

/// The server's certificate chain and private key (PEM), for TLS.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls { .. }")
    }
}

impl ServerTls {
    /// `RP_GRPC_TLS_CERT` and `RP_GRPC_TLS_KEY` (PEM files), both or neither: `None` serves
    /// plaintext (put TLS in front then).
    pub fn from_env() -> Result<Option<Self>, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let read = |n: &str, path: String| {
            std::fs::read(&path).map_err(|e| ConfigError::Invalid {
                var: n.into(),
                value: path,
                problem: e.to_string(),
            })
        };
        match (var("RP_GRPC_TLS_CERT"), var("RP_GRPC_TLS_KEY")) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert_pem: read("RP_GRPC_TLS_CERT", cert)?,
                key_pem: read("RP_GRPC_TLS_KEY", key)?,
            })),
            (Some(_), None) => Err(ConfigError::Missing {
                var: "RP_GRPC_TLS_KEY".into(),
                hint: "RP_GRPC_TLS_CERT is set; set the file of its private key too".into(),
            }),
            (None, Some(_)) => Err(ConfigError::Missing {
                var: "RP_GRPC_TLS_CERT".into(),
                hint: "RP_GRPC_TLS_KEY is set; set the file of its certificate too".into(),
            }),
        }
    }
}

/// The tonic services one server serves (health and reflection are added by [`serve`]).
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    grace: Duration,
    tls: Option<ServerTls>,
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    pub fn new() -> Self {
        Self {
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
        }
    }

    /// Adds a generated tonic server (`FooServer::new(impl)`); health reports it by its
    /// fully-qualified name (`rp.api.v1.Notifications`).
    pub fn service<S>(mut self, svc: S) -> Self
    where
        S: tonic::codegen::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(svc);
        self.names.push(S::NAME);
        self
    }

    /// How long shutdown waits for open calls (default [`DEFAULT_SHUTDOWN_GRACE`]).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serves TLS with this certificate (instead of `RP_GRPC_TLS_CERT`/`RP_GRPC_TLS_KEY`).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Fully-qualified names of the services added so far.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// A running gRPC server.
pub struct Serving {
    local_addr: SocketAddr,
    health: HealthReporter,
    task: JoinHandle<Result<(), GrpcError>>,
}

impl Serving {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The health reporter, to mark a service `NOT_SERVING` while a dependency is down.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Waits until the server has shut down (after the token is cancelled).
    pub async fn wait(self) -> Result<(), GrpcError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(GrpcError::Task(e.to_string())),
        }
    }
}

fn name_of<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// Binds `addr` and serves `services` plus health and reflection until `cancel` fires, over TLS
/// when [`Services::tls`] or `RP_GRPC_TLS_CERT`/`RP_GRPC_TLS_KEY` give a certificate.
/// Returns once the listener is bound, so the caller knows the address (tests bind port 0).
pub async fn serve(
    addr: SocketAddr,
    cancel: CancellationToken,
    services: Services,
) -> Result<Serving, GrpcError> {
    let Services {
        mut routes,
        names,
        grace,
        tls,
    } = services;
    let tls = match tls {
        Some(tls) => Some(tls),
        None => ServerTls::from_env().map_err(|e| GrpcError::Tls(e.to_string()))?,
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        crate::install_crypto_provider();
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| GrpcError::Tls(e.to_string()))?;
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in &names {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let health_name = name_of(&health_service);

    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        let mut b = b
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(health_name)
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for name in &names {
            b = b.with_service_name(*name);
        }
        b
    };
    let v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(|e| GrpcError::Reflection(e.to_string()))?;
    let v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(|e| GrpcError::Reflection(e.to_string()))?;
    routes
        .add_service(health_service)
        .add_service(v1)
        .add_service(v1alpha);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GrpcError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| GrpcError::Bind { addr, source })?;
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE_INTERVAL));

    // On cancel: report NOT_SERVING, then drop the statuses so `Watch` streams end and do not
    // hold the graceful shutdown open; then stop accepting and drain.
    let signal = {
        let (cancel, mut health, names) = (cancel.clone(), health.clone(), names.clone());
        async move {
            cancel.cancelled().await;
            for name in names.iter().copied().chain([""]) {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
                health.clear_service_status(name).await;
            }
            tracing::info!("gRPC server shutting down: draining open calls");
        }
    };
    let server = limits(builder)
        .layer(crate::metrics::GrpcMetricsLayer)
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(incoming, signal);
    let task = tokio::spawn(async move {
        tokio::pin!(server);
        let deadline = async {
            cancel.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            r = &mut server => r.map_err(GrpcError::from),
            _ = deadline => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "gRPC calls still open after the grace period: no longer waiting for them");
                Ok(())
            }
        }
    });
    tracing::info!(addr = %local_addr, services = ?names, tls = tls.is_some(), "gRPC server listening");
    Ok(Serving {
        local_addr,
        health,
        task,
    })
}

/// How long a unary call (or a stream's opening) may take before `CANCELLED`; a client's shorter
/// `grpc-timeout` wins.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent HTTP/2 streams one connection may open; more wait for the client's turn.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// A connection is pinged after this much silence and closed when the ping goes unanswered for
/// [`KEEPALIVE_TIMEOUT`], so a vanished client does not keep its streams for ever.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every server's transport bounds (issue 15.1; docs/security.md).
fn limits(b: tonic::transport::Server) -> tonic::transport::Server {
    b.timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// Our error kinds, as a caller of the API sees them. Convert with `Status::from`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request was wrong: `field` names the request field, `why` says what to change.
    #[error("{field}: {why}")]
    InvalidArgument { field: String, why: String },
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the system is not in a state to do it.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The infrastructure failed (database, bus). The cause is logged, not returned.
    #[error("{operation} is temporarily unavailable; please retry shortly")]
    Unavailable { operation: String },
}

/// Longest message an error carries, in characters: whatever a request sent, a message quoting
/// it stays short (issue 15.4). Messages are written to be far shorter.
pub const MAX_MESSAGE_CHARS: usize = 512;

fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut short: String = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    short.push('…');
    short
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let message = bounded(e.to_string());
        match e {
            ApiError::InvalidArgument { .. } => Status::invalid_argument(message),
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::FailedPrecondition(_) => Status::failed_precondition(message),
            ApiError::PermissionDenied(_) => Status::permission_denied(message),
            ApiError::Unauthenticated(_) => Status::unauthenticated(message),
            ApiError::Unavailable { .. } => Status::unavailable(message),
        }
    }
}

/// `INVALID_ARGUMENT` naming the field and why: `page_size: must be at most 100 (got 500)`.
pub fn invalid_argument(field: impl Into<String>, why: impl std::fmt::Display) -> Status {
    ApiError::InvalidArgument {
        field: field.into(),
        why: why.to_string(),
    }
    .into()
}

pub fn not_found(what: impl std::fmt::Display) -> Status {
    ApiError::NotFound(what.to_string()).into()
}

pub fn failed_precondition(why: impl std::fmt::Display) -> Status {
    ApiError::FailedPrecondition(why.to_string()).into()
}

pub fn permission_denied(why: impl std::fmt::Display) -> Status {
    ApiError::PermissionDenied(why.to_string()).into()
}

pub fn unauthenticated(why: impl std::fmt::Display) -> Status {
    ApiError::Unauthenticated(why.to_string()).into()
}

/// `UNAVAILABLE` for an infrastructure failure: logs `cause` (at error level, in the current
/// span) and tells the caller to retry, without internals.
pub fn unavailable(operation: &str, cause: &dyn std::fmt::Display) -> Status {
    tracing::error!(operation, error = %cause, "infrastructure failure answering a gRPC call");
    ApiError::Unavailable {
        operation: operation.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_has_its_status_code() {
        let cases = [
            (
                invalid_argument("page_size", "must be at most 100 (got 500)"),
                tonic::Code::InvalidArgument,
                "page_size: must be at most 100 (got 500)",
            ),
            (
                not_found("no notification n1"),
                tonic::Code::NotFound,
                "no notification n1",
            ),
            (
                failed_precondition("workspace is archived"),
                tonic::Code::FailedPrecondition,
                "workspace is archived",
            ),
            (
                permission_denied("other"),
                tonic::Code::PermissionDenied,
                "other",
            ),
            (
                unauthenticated("no key"),
                tonic::Code::Unauthenticated,
                "no key",
            ),
            (
                unavailable("listing notifications", &"connection refused"),
                tonic::Code::Unavailable,
                "listing notifications is temporarily unavailable; please retry shortly",
            ),
        ];
        for (status, code, message) in cases {
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), message);
        }
    }

    #[test]
    fn a_message_quoting_a_megabyte_stays_short() {
        let e = invalid_argument("x", format!("bad (got {:?})", "y".repeat(1 << 20)));
        assert_eq!(e.message().chars().count(), MAX_MESSAGE_CHARS);
        assert!(e.message().starts_with("x: bad (got \"yyy"));
    }
}
