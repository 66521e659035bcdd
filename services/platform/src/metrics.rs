//! Prometheus metrics: one registry per process, the families every service shares, and the
//! HTTP endpoint Prometheus scrapes (`GET /metrics`, OpenMetrics text).
//!
//! * Every family lives in one process-wide registry ([`register`]); a service's own families
//!   (the connector's sync runs, provider calls, ...) register there too, once, on first use.
//! * The families here: the consumer runtime's ([`consumer`]), the relay's ([`relay`]) and the
//!   gRPC servers' ([`grpc`], a tower layer [`GrpcMetricsLayer`] that [`crate::grpc::serve`]
//!   puts in front of every server).
//! * Names follow Prometheus' conventions (`rp_` prefix, `_total` counters, `_seconds`
//!   histograms in base units); label sets are bounded: a consumer's name, a provider, a step, a
//!   gRPC method known from the contracts. A workspace, integration or run id is never a label
//!   (it is a log field or a trace attribute). docs/metrics.md lists every metric.
//! * [`serve`] binds the address a service reads from `<SERVICE>_METRICS_ADDR` ([`addr_from_env`]):
//!   a malformed value stops the service at startup, as any other setting does.

use crate::config::{ConfigError, parse_or};
use bytes::Bytes;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// A gauge of fractional values (a ratio, seconds).
pub type GaugeF64 = Gauge<f64, AtomicU64>;

/// A label set: names fixed by the code, values from a bounded set.
pub type Labels<const N: usize> = [(&'static str, String); N];

/// The content type of [`encode_all`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a shutdown waits for a scrape in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a family in the process' registry. `name` is the full name without the `_total`
/// that OpenMetrics adds to counters (`rp_relay_publish_errors` is exposed as
/// `rp_relay_publish_errors_total`). Call it once per family (a `LazyLock` does).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    registry().register(name, help, metric);
}

/// Everything registered, in the OpenMetrics text format (ends with `# EOF`).
pub fn encode_all() -> Result<String, std::fmt::Error> {
    // The shared families exist from the start, so a scrape always shows them.
    let _ = (consumer(), relay(), grpc());
    let mut out = String::new();
    encode(&mut out, &registry())?;
    Ok(out)
}

/// A proto enum's value as a label: `FAILURE_KIND_PROVIDER_OUTAGE` with prefix `FAILURE_KIND_`
/// is `provider_outage`.
pub fn enum_label(as_str_name: &str, prefix: &str) -> String {
    as_str_name
        .strip_prefix(prefix)
        .unwrap_or(as_str_name)
        .to_ascii_lowercase()
}

/// Buckets for work that takes milliseconds to seconds (an event's handling): 1 ms to ~24 s.
pub fn fast_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.5, 12)
}

/// Buckets for work that takes seconds to hours (a sync run, a step): 0.5 s to ~3.3 h.
pub fn slow_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.5, 2.5, 12)
}

// ---- Serving ---------------------------------------------------------------------------------

/// The metrics address from `var` (`host:port`), `default` when unset; a malformed value is an
/// error that names the variable.
pub fn addr_from_env(var: &str, default: SocketAddr) -> Result<SocketAddr, ConfigError> {
    parse_or(var, default).map_err(|e| match e {
        ConfigError::Invalid { var, value, .. } => ConfigError::Invalid {
            var,
            value,
            problem: format!("must be host:port, e.g. {default}"),
        },
        other => other,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics server: {0}")]
    Serve(std::io::Error),
    #[error("metrics server task ended abnormally: {0}")]
    Task(String),
}

/// A running metrics endpoint.
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<Result<(), MetricsError>>,
}

impl MetricsServer {
    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped (after the token is cancelled).
    pub async fn wait(self) -> Result<(), MetricsError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(MetricsError::Task(e.to_string())),
        }
    }
}

/// Binds `addr` and serves `GET /metrics` until `cancel` fires. Returns once bound.
pub async fn serve(
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<MetricsServer, MetricsError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let app = axum::Router::new().route("/metrics", get(scrape));
    let server =
        axum::serve(listener, app).with_graceful_shutdown(cancel.clone().cancelled_owned());
    let task = tokio::spawn(async move {
        let deadline = async {
            cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = server => r.map_err(MetricsError::Serve),
            _ = deadline => Ok(()),
        }
    });
    tracing::info!(addr = %local_addr, "metrics served on /metrics");
    Ok(MetricsServer { local_addr, task })
}

async fn scrape() -> axum::response::Response {
    use axum::response::IntoResponse;
    match encode_all() {
        Ok(body) => ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

// ---- The consumer runtime --------------------------------------------------------------------

/// The consumer runtime's families (`rp_platform::consumer`), by consumer name.
pub struct ConsumerMetrics {
    /// Messages on the stream not yet delivered to the consumer (JetStream's `num_pending`,
    /// summed over its durables).
    pub pending: Family<Labels<1>, Gauge>,
    /// Messages delivered and not yet acknowledged.
    pub ack_pending: Family<Labels<1>, Gauge>,
    pub handle_seconds: Family<Labels<1>, Histogram>,
    pub dead_letters: Family<Labels<1>, Counter>,
    pub durables_recreated: Family<Labels<1>, Counter>,
}

impl ConsumerMetrics {
    pub fn labels(consumer: &str) -> Labels<1> {
        [("consumer", consumer.to_string())]
    }
}

static CONSUMER: LazyLock<ConsumerMetrics> = LazyLock::new(|| {
    let m = ConsumerMetrics {
        pending: Family::default(),
        ack_pending: Family::default(),
        handle_seconds: Family::new_with_constructor(|| Histogram::new(fast_buckets())),
        dead_letters: Family::default(),
        durables_recreated: Family::default(),
    };
    register(
        "rp_consumer_pending_messages",
        "Messages on the stream not yet delivered to the consumer (JetStream num_pending, summed over its durables)",
        m.pending.clone(),
    );
    register(
        "rp_consumer_ack_pending_messages",
        "Messages delivered to the consumer and not yet acknowledged",
        m.ack_pending.clone(),
    );
    register(
        "rp_consumer_handle_duration_seconds",
        "Time to handle one event (transaction, handler, commit), per consumer",
        m.handle_seconds.clone(),
    );
    register(
        "rp_consumer_dead_letters",
        "Events the consumer gave up on and recorded in dead_letters",
        m.dead_letters.clone(),
    );
    register(
        "rp_consumer_durables_recreated",
        "Durable consumers found deleted on the server and created again",
        m.durables_recreated.clone(),
    );
    m
});

/// The consumer runtime's families.
pub fn consumer() -> &'static ConsumerMetrics {
    &CONSUMER
}

// ---- The relay -------------------------------------------------------------------------------

/// The relay's families (`rp_platform::relay`).
pub struct RelayMetrics {
    /// Log head position minus the relay's checkpoint.
    pub lag: Gauge,
    pub published: Counter,
    pub publish_errors: Counter,
    /// 1 while this process' relay is the leader.
    pub leader: Gauge,
}

static RELAY: LazyLock<RelayMetrics> = LazyLock::new(|| {
    let m = RelayMetrics {
        lag: Gauge::default(),
        published: Counter::default(),
        publish_errors: Counter::default(),
        leader: Gauge::default(),
    };
    register(
        "rp_relay_lag_events",
        "Events in the log not yet published to the bus: log head position minus the relay's checkpoint",
        m.lag.clone(),
    );
    register(
        "rp_relay_published_events",
        "Events the relay published and JetStream acknowledged",
        m.published.clone(),
    );
    register(
        "rp_relay_publish_errors",
        "Publish rounds that stopped on a JetStream error (the relay retries from its checkpoint)",
        m.publish_errors.clone(),
    );
    register(
        "rp_relay_leader",
        "1 while this process' relay holds the leader lock, else 0",
        m.leader.clone(),
    );
    m
});

/// The relay's families.
pub fn relay() -> &'static RelayMetrics {
    &RELAY
}

// ---- gRPC servers ----------------------------------------------------------------------------

/// The gRPC servers' families.
pub struct GrpcMetrics {
    /// `grpc_service`, `grpc_method`, `grpc_code`.
    pub handled: Family<Labels<3>, Counter>,
    /// `grpc_service`, `grpc_method`: server-streaming calls open now.
    pub open_streams: Family<Labels<2>, Gauge>,
    /// `reason` (`missing`, `malformed`, `unknown`, `revoked`): calls refused as unauthenticated.
    pub auth_failures: Family<Labels<1>, Counter>,
    /// Calls refused because their API key was over its rate (`RP_GRPC_RATE_PER_KEY`).
    pub rate_limited: Counter,
    /// `grpc_service`, `grpc_method`: calls of a read-only API key refused because the method
    /// changes the workspace (`unknown` when the call named no known method).
    pub read_only_refusals: Family<Labels<2>, Counter>,
}

static GRPC: LazyLock<GrpcMetrics> = LazyLock::new(|| {
    let m = GrpcMetrics {
        handled: Family::default(),
        open_streams: Family::default(),
        auth_failures: Family::default(),
        rate_limited: Counter::default(),
        read_only_refusals: Family::default(),
    };
    register(
        "rp_grpc_server_handled",
        "gRPC calls finished, by service, method and status code",
        m.handled.clone(),
    );
    register(
        "rp_grpc_server_open_streams",
        "Server-streaming gRPC calls open now (Watch, Subscribe), by service and method",
        m.open_streams.clone(),
    );
    register(
        "rp_grpc_auth_failures",
        "gRPC calls refused as unauthenticated, by reason (missing, malformed, unknown, revoked)",
        m.auth_failures.clone(),
    );
    register(
        "rp_grpc_rate_limited",
        "gRPC calls refused because their API key was over its rate (RP_GRPC_RATE_PER_KEY)",
        m.rate_limited.clone(),
    );
    register(
        "rp_grpc_read_only_refusals",
        "gRPC calls of a read-only API key refused (PERMISSION_DENIED) because the method changes \
         the workspace, by service and method",
        m.read_only_refusals.clone(),
    );
    m
});

/// The gRPC servers' families.
pub fn grpc() -> &'static GrpcMetrics {
    &GRPC
}

/// A method the servers know: its labels, and whether the server streams its answer.
#[derive(Debug, Clone)]
struct KnownMethod {
    service: Arc<str>,
    method: Arc<str>,
    streaming: bool,
}

/// Every method of the contracts (and of health and reflection), by request path
/// (`/rp.api.v1.Sync/SyncNow`): the only values the method labels take, so a client calling
/// made-up paths cannot grow the label set.
static KNOWN_METHODS: LazyLock<HashMap<String, KnownMethod>> = LazyLock::new(|| {
    use prost::Message;
    let mut known = HashMap::new();
    for set in [
        crate::contracts::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in &set.file {
            let package = file.package();
            for svc in &file.service {
                let service: Arc<str> = if package.is_empty() {
                    svc.name().into()
                } else {
                    format!("{package}.{}", svc.name()).into()
                };
                for m in &svc.method {
                    known.insert(
                        format!("/{service}/{}", m.name()),
                        KnownMethod {
                            service: service.clone(),
                            method: m.name().into(),
                            streaming: m.server_streaming(),
                        },
                    );
                }
            }
        }
    }
    for service in [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        known.insert(
            format!("/{service}/ServerReflectionInfo"),
            KnownMethod {
                service: service.into(),
                method: "ServerReflectionInfo".into(),
                streaming: true,
            },
        );
    }
    known
});

fn known_method(path: &str) -> KnownMethod {
    KNOWN_METHODS
        .get(path)
        .cloned()
        .unwrap_or_else(|| KnownMethod {
            service: "unknown".into(),
            method: "unknown".into(),
            streaming: false,
        })
}

/// The canonical name of a gRPC status code (`NOT_FOUND`); `UNKNOWN` for anything else.
pub fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

fn status_of(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Counts every call a tonic server finishes by method and status code, and keeps the open
/// server streams gauge. It also names the call for the handlers: a request for a method of the
/// contracts carries a [`tonic::GrpcMethod`] extension (tonic's servers do not add one; its
/// clients do, for their own side), which [`crate::apikeys::authenticate`] checks a key's scope
/// against. The code is read where gRPC puts it: the response headers of an error
/// answered at once, else the trailers at the end of the body. A call whose body is dropped
/// before its trailers (the client went away) counts as `CANCELLED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService { inner }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        if let Some(m) = KNOWN_METHODS.get(req.uri().path()) {
            req.extensions_mut()
                .insert(tonic::GrpcMethod::new(&m.service, &m.method));
        }
        let call = Call::start(known_method(req.uri().path()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let mut call = Some(call);
            if let Some(code) = status_of(resp.headers()) {
                // Trailers-only: the call ended with its headers.
                if let Some(c) = call.take() {
                    c.finish(code);
                }
            }
            Ok(resp.map(|inner| CountedBody { inner, call }))
        })
    }
}

/// One call in flight: counted once, when it finishes.
struct Call {
    method: KnownMethod,
}

impl Call {
    fn start(method: KnownMethod) -> Self {
        if method.streaming {
            grpc()
                .open_streams
                .get_or_create(&[
                    ("grpc_service", method.service.to_string()),
                    ("grpc_method", method.method.to_string()),
                ])
                .inc();
        }
        Self { method }
    }

    fn finish(self, code: i32) {
        let m = &self.method;
        grpc()
            .handled
            .get_or_create(&[
                ("grpc_service", m.service.to_string()),
                ("grpc_method", m.method.to_string()),
                ("grpc_code", grpc_code_name(code).to_string()),
            ])
            .inc();
        // The stream gauge goes down in Drop, once.
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.method.streaming {
            grpc()
                .open_streams
                .get_or_create(&[
                    ("grpc_service", self.method.service.to_string()),
                    ("grpc_method", self.method.method.to_string()),
                ])
                .dec();
        }
    }
}

/// A response body that reports its call's status code from the trailers.
pub struct CountedBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> http_body::Body for CountedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    call.finish(status_of(trailers).unwrap_or(2));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish(13);
                }
            }
            Poll::Ready(None) => {
                // Ended without trailers: not a gRPC answer we can read a code from.
                if let Some(call) = this.call.take() {
                    call.finish(2);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            // The body went away before its trailers: the client cancelled (or the server
            // shut down under it).
            call.finish(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_become_lowercase_labels() {
        assert_eq!(
            enum_label("FAILURE_KIND_PROVIDER_OUTAGE", "FAILURE_KIND_"),
            "provider_outage"
        );
        assert_eq!(enum_label("SYNC_STEP_CRM_PULL", "SYNC_STEP_"), "crm_pull");
        assert_eq!(enum_label("ODD", "SYNC_STEP_"), "odd");
    }

    #[test]
    fn method_labels_come_from_the_contracts_only() {
        let m = known_method("/rp.api.v1.Sync/WatchConnectionHealth");
        assert_eq!(&*m.service, "rp.api.v1.Sync");
        assert_eq!(&*m.method, "WatchConnectionHealth");
        assert!(m.streaming);
        let m = known_method("/rp.api.v1.Sync/SyncNow");
        assert!(!m.streaming);
        assert!(known_method("/grpc.health.v1.Health/Watch").streaming);
        assert!(known_method("/rp.api.v1.Notifications/Subscribe").streaming);
        let made_up = known_method("/rp.api.v1.Sync/DropAllTables");
        assert_eq!(
            (&*made_up.service, &*made_up.method),
            ("unknown", "unknown")
        );
    }

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(grpc_code_name(0), "OK");
        assert_eq!(grpc_code_name(5), "NOT_FOUND");
        assert_eq!(grpc_code_name(16), "UNAUTHENTICATED");
        assert_eq!(grpc_code_name(99), "UNKNOWN");
    }

    #[test]
    fn a_malformed_address_names_its_variable() {
        let var = "RP_METRICS_TEST_ADDR_MALFORMED";
        // SAFETY: this test alone reads and writes this variable.
        unsafe { std::env::set_var(var, "localhost:port") };
        let default = SocketAddr::from(([127, 0, 0, 1], 9101));
        let err = addr_from_env(var, default).unwrap_err().to_string();
        assert!(err.contains(var) && err.contains("localhost:port"), "{err}");
        unsafe { std::env::remove_var(var) };
        assert_eq!(addr_from_env(var, default).unwrap(), default);
    }

    #[test]
    fn the_text_is_openmetrics() {
        relay().publish_errors.inc();
        consumer()
            .handle_seconds
            .get_or_create(&ConsumerMetrics::labels("unit-test"))
            .observe(0.002);
        let text = encode_all().unwrap();
        assert!(
            text.contains("# TYPE rp_relay_publish_errors counter"),
            "{text}"
        );
        assert!(text.contains("rp_relay_publish_errors_total "), "{text}");
        assert!(
            text.contains("# TYPE rp_consumer_handle_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rp_consumer_handle_duration_seconds_bucket{le="0.0025",consumer="unit-test"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
