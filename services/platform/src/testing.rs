//! Test support: an isolated environment per test against the real PostgreSQL and NATS.
//!
//! Each [`TestEnv`] gets its own database (created, migrated, dropped with `FORCE` at the end)
//! and its own subject prefix and JetStream stream (deleted at the end), so tests run in
//! parallel without seeing each other. `RP_TEST_DATABASE_URL` (a server URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `RP_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`) point it elsewhere.

use crate::bus::{self, BusConfig};
use crate::config::PlatformConfig;
use crate::eventlog::EventStore;
use async_nats::jetstream;
pub use async_nats::jetstream::stream::StorageType;
use futures::StreamExt;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct TestEnv {
    pub id: String,
    pub database_url: String,
    pub pool: PgPool,
    pub store: EventStore,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub bus: BusConfig,
    admin_url: String,
    nats_url: String,
    cleaned: bool,
}

fn admin_url() -> String {
    std::env::var("RP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn nats_url() -> String {
    std::env::var("RP_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn with_database(server_url: &str, db: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let (head, _) = base.rsplit_once('/').unwrap_or((base, ""));
    format!("{head}/{db}{query}")
}

/// Where a [`TestEnv`] makes its database and stream, and how the stream keeps its messages.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// A URL of the PostgreSQL server (any database on it; default `RP_TEST_DATABASE_URL`).
    pub database_server_url: String,
    /// Default `RP_TEST_NATS_URL`.
    pub nats_url: String,
    /// `Memory` by default; `File` for a test that restarts its own nats-server and expects the
    /// stream to survive, as in production.
    pub storage: StorageType,
    /// The stream's duplicate window (`RP_BUS_DEDUP_WINDOW`; default 2 min).
    pub dedup_window: Duration,
    /// The stream's replicas (`RP_BUS_REPLICAS`; 1, or 3 on a NATS cluster).
    pub replicas: usize,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            database_server_url: admin_url(),
            nats_url: nats_url(),
            storage: StorageType::Memory,
            dedup_window: BusConfig::default().dedup_window,
            replicas: 1,
        }
    }
}

impl TestEnv {
    /// A new workspace on `plan` (its WorkspaceCreated appended to the log), named `name`.
    pub async fn create_workspace(&self, name: &str, plan: &str) -> crate::ids::WorkspaceId {
        use crate::contracts::events::v1::{WorkspaceCreated, envelope::Event};
        use crate::eventlog::{ExpectedVersion, NewEvent};
        let ws = crate::ids::WorkspaceId::new(uuid::Uuid::new_v4());
        self.store
            .append(
                &ws.stream(),
                ExpectedVersion::NoStream,
                vec![NewEvent::new(
                    ws.to_string(),
                    Event::WorkspaceCreated(WorkspaceCreated {
                        name: name.into(),
                        plan: plan.into(),
                    }),
                )],
            )
            .await
            .unwrap_or_else(|e| panic!("creating workspace {name}: {e}"));
        ws
    }

    /// A fresh, migrated database and a fresh stream. Panics (failing the test) when the
    /// infrastructure is not there, saying what is missing.
    pub async fn new() -> Self {
        Self::with(EnvOptions::default()).await
    }

    /// [`TestEnv::new`] on other servers or with another stream layout: a test's own
    /// PostgreSQL cluster or nats-server, a file-backed stream.
    pub async fn with(options: EnvOptions) -> Self {
        crate::install_crypto_provider();
        crate::telemetry::init_for_tests();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let admin = options.database_server_url;
        let database_url = with_database(&admin, &format!("rp_test_{id}"));
        crate::db::ensure_database(&database_url)
            .await
            .unwrap_or_else(|e| panic!("test database: {e} (is PostgreSQL running?)"));
        let pool = crate::db::connect(&database_url, 20)
            .await
            .unwrap_or_else(|e| panic!("test database: {e}"));
        crate::db::migrate(&pool)
            .await
            .unwrap_or_else(|e| panic!("migrations: {e}"));
        let nats_url = options.nats_url;
        let nats = bus::connect(&nats_url, "test")
            .await
            .unwrap_or_else(|e| panic!("{e} (is nats-server -js running?)"));
        let js = jetstream::new(nats.clone());
        let bus = BusConfig {
            prefix: format!("t{id}"),
            stream: format!("T_{id}"),
            partitions: 4,
            storage: options.storage,
            dedup_window: options.dedup_window,
            replicas: options.replicas,
            ..BusConfig::default()
        };
        bus::ensure_stream(&js, &bus)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            id,
            store: EventStore::new(pool.clone()),
            database_url,
            pool,
            nats,
            js,
            bus,
            admin_url: admin,
            nats_url,
            cleaned: false,
        }
    }

    /// The configuration a service under test should use.
    pub fn platform_config(&self) -> PlatformConfig {
        PlatformConfig {
            database_url: self.database_url.clone(),
            migrate_database_url: None,
            nats_url: self.nats_url.clone(),
            bus: self.bus.clone(),
            db_limits: crate::db::SessionLimits::default(),
            retention: crate::consumer::Retention::for_stream(self.bus.max_age),
            consumer_retry: crate::config::ConsumerRetry::default(),
        }
    }

    /// Environment variables for a service process under test.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.database_url.clone()),
            ("NATS_URL".into(), self.nats_url.clone()),
            ("RP_BUS_PREFIX".into(), self.bus.prefix.clone()),
            ("RP_BUS_STREAM".into(), self.bus.stream.clone()),
            ("RP_BUS_PARTITIONS".into(), self.bus.partitions.to_string()),
            (
                "RP_BUS_STORAGE".into(),
                match self.bus.storage {
                    StorageType::File => "file",
                    StorageType::Memory => "memory",
                }
                .into(),
            ),
            (
                "RP_BUS_DEDUP_WINDOW".into(),
                format!("{}ms", self.bus.dedup_window.as_millis()),
            ),
            ("RP_BUS_REPLICAS".into(), self.bus.replicas.to_string()),
        ]
    }

    /// Every message currently on the test's stream, in stream order.
    pub async fn stream_messages(&self) -> Vec<async_nats::jetstream::message::StreamMessage> {
        let stream = self
            .js
            .get_stream(&self.bus.stream)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let mut seq = 1;
        loop {
            match stream.get_raw_message(seq).await {
                Ok(m) => out.push(m),
                Err(_) => {
                    let mut s = stream.clone();
                    let last = s.info().await.map(|i| i.state.last_sequence).unwrap_or(0);
                    if seq >= last {
                        break;
                    }
                }
            }
            seq += 1;
        }
        out
    }

    /// Drops the database and the stream.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        self.pool.close().await;
        cleanup(
            self.admin_url.clone(),
            self.database_url.clone(),
            self.js.clone(),
            self.bus.stream.clone(),
        )
        .await;
    }
}

async fn cleanup(admin_url: String, database_url: String, js: jetstream::Context, stream: String) {
    let _ = js.delete_stream(&stream).await;
    let db = database_url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    if let Ok(admin) = crate::db::connect(&admin_url, 1).await {
        // The name is ours (rp_test_<hex>), never input.
        let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await;
        admin.close().await;
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A test that panicked (or forgot): clean up from a thread with its own runtime. The pool
        // is left alone (its connections belong to the test's runtime, which is not running
        // now); DROP DATABASE ... WITH (FORCE) ends them.
        let (admin, url, stream) = (
            self.admin_url.clone(),
            self.database_url.clone(),
            self.bus.stream.clone(),
        );
        let nats_url = self.nats_url.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = bus::connect(&nats_url, "test-cleanup").await {
                    cleanup(admin, url, jetstream::new(client), stream).await;
                }
            });
        })
        .join();
    }
}

/// Waits until `check` returns `Some`, re-checking every 20 ms, for at most `timeout`; panics
/// with `what` when it never does. For state that has no event to wait on (a projection row).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Subscribes (core NATS) to a subject pattern of the test's bus, to wait for events.
pub async fn subscribe(env: &TestEnv, pattern: &str) -> async_nats::Subscriber {
    env.nats
        .subscribe(format!("{}.v1.{pattern}", env.bus.prefix))
        .await
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
}

/// The next message on `sub` that satisfies `pred`, or a panic after `timeout`.
pub async fn next_matching<F>(
    sub: &mut async_nats::Subscriber,
    timeout: Duration,
    mut pred: F,
) -> async_nats::Message
where
    F: FnMut(&async_nats::Message) -> bool,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) if pred(&m) => return m,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("subscription closed"),
            Err(_) => panic!("timed out after {timeout:?} waiting for a message"),
        }
    }
}

/// A service binary running as its own process against a [`TestEnv`], as in production.
pub struct ServiceProcess {
    child: tokio::process::Child,
}

impl ServiceProcess {
    /// Starts `bin` (e.g. `env!("CARGO_BIN_EXE_attribution")`) with the test's infrastructure
    /// and `extra` environment. Its logs go to the test's stderr. Its metrics endpoint listens
    /// on a port of its own choosing unless `extra` names one, so services of tests running in
    /// parallel never contend for the default metrics ports.
    pub fn spawn(bin: &str, env: &TestEnv, extra: &[(&str, &str)]) -> Self {
        let mut cmd = tokio::process::Command::new(bin);
        for (k, v) in env.env_vars() {
            cmd.env(k, v);
        }
        for var in [
            "CONNECTOR_METRICS_ADDR",
            "MATCHER_METRICS_ADDR",
            "ATTRIBUTION_METRICS_ADDR",
            "NOTIFICATION_METRICS_ADDR",
        ] {
            cmd.env(var, "127.0.0.1:0");
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Self { child }
    }

    /// The process's id (none once it has exited and been waited for).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process with SIGKILL (a crash: no shutdown code runs) and waits for it.
    pub async fn kill(mut self) -> std::process::ExitStatus {
        let _ = self.child.start_kill();
        self.child
            .wait()
            .await
            .unwrap_or_else(|e| panic!("waiting for the killed service: {e}"))
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the process to exit.
    pub async fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => panic!("waiting for the service: {e}"),
            Err(_) => panic!("the service did not exit within {timeout:?} of SIGTERM"),
        }
    }
}

/// Waits until a durable consumer exists on the test's stream (the service is consuming).
pub async fn wait_for_consumer(env: &TestEnv, durable: &str, timeout: Duration) {
    eventually(timeout, &format!("consumer {durable}"), || async {
        let stream = env.js.get_stream(&env.bus.stream).await.ok()?;
        stream.consumer_info(durable).await.ok().map(|_| ())
    })
    .await
}

/// A workspace (its `WorkspaceCreated` event) and an API key bound to it: what every gRPC test
/// needs first. Returns (workspace id, plaintext key).
pub async fn workspace_with_key(env: &TestEnv, plan: &str) -> (String, String) {
    use crate::contracts::events::v1::{WorkspaceCreated, envelope::Event};
    let ws = uuid::Uuid::new_v4();
    env.store
        .append(
            &format!("workspace-{ws}"),
            crate::eventlog::ExpectedVersion::NoStream,
            vec![crate::eventlog::NewEvent::new(
                ws.to_string(),
                Event::WorkspaceCreated(WorkspaceCreated {
                    name: format!("Test {}", &ws.simple().to_string()[..6]),
                    plan: plan.into(),
                }),
            )],
        )
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"));
    let key = crate::apikeys::issue(&env.pool, crate::ids::WorkspaceId::new(ws), "test")
        .await
        .unwrap_or_else(|e| panic!("api key: {e}"))
        .plaintext;
    (ws.to_string(), key)
}

/// A gRPC request carrying `authorization: Bearer <key>`.
pub fn authed<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = format!("Bearer {key}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// The machine a benchmark ran on, for its report: `2 cores (AMD EPYC ...)`.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

/// A nats-server of the test's own (another port, its own store), for tests that restart or
/// kill the broker: the machine's shared server is never touched.
pub struct PrivateNats {
    pub port: u16,
    store: std::path::PathBuf,
    child: Option<std::process::Child>,
    /// A configuration file (`-c`) and the server's environment (the passwords it references).
    config: Option<std::path::PathBuf>,
    env: Vec<(String, String)>,
}

impl PrivateNats {
    /// Starts `nats-server -js` on a free port with a fresh store directory, and waits until it
    /// accepts connections.
    pub async fn start() -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("rp-nats-{}", uuid::Uuid::new_v4().simple()));
        let mut nats = Self {
            port,
            store,
            child: None,
            config: None,
            env: Vec::new(),
        };
        nats.restart_process().await;
        nats
    }

    /// [`PrivateNats::start`] with a configuration (users, permissions, TLS: e.g.
    /// infra/nats/nats-server.conf) and environment variables for the server (the passwords the
    /// configuration references). Address, port and store still come from the command line.
    pub async fn start_with_config(config: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let id = uuid::Uuid::new_v4().simple();
        let store = std::env::temp_dir().join(format!("rp-nats-{id}"));
        std::fs::create_dir_all(&store).unwrap_or_else(|e| panic!("{}: {e}", store.display()));
        let path = store.join("nats-server.conf");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut nats = Self {
            port,
            store,
            child: None,
            config: Some(path),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        nats.restart_process().await;
        nats
    }

    /// The store directory (a configuration's certificates may be written there too).
    pub fn dir(&self) -> &std::path::Path {
        &self.store
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL (no goodbye to clients) and starts it again on the same port
    /// and store, as a crashed broker coming back.
    pub async fn crash_and_restart(&mut self) {
        self.kill();
        self.restart_process().await;
    }

    /// Stops the server as an operator's restart does (SIGTERM: it closes its clients'
    /// connections and flushes its store), waits for it to exit, and starts it again on the same
    /// port and store.
    pub async fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let exited = eventually(
                std::time::Duration::from_secs(20),
                "nats-server to exit after SIGTERM",
                || {
                    let done = c.try_wait().map(|s| s.is_some()).unwrap_or(true);
                    async move { done.then_some(()) }
                },
            );
            exited.await;
        }
        self.restart_process().await;
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn restart_process(&mut self) {
        let mut command = std::process::Command::new("nats-server");
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nats-server: {e} (is it installed? infra/dev-up.sh)"));
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        eventually(
            std::time::Duration::from_secs(20),
            "nats-server to listen",
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
            },
        )
        .await;
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

struct Shared {
    upstream: SocketAddr,
    open: AtomicBool,
    /// The accepting task, which owns the listening socket (none while cut).
    accept: Mutex<Option<AbortHandle>>,
    /// The proxied connections' tasks; aborting one closes both of its sockets.
    live: Mutex<Vec<AbortHandle>>,
    /// Cut as soon as a client sends these bytes.
    trigger: Mutex<Option<Vec<u8>>>,
    dropped: AtomicU64,
    accepted: AtomicU64,
}

impl Shared {
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
        let live = std::mem::take(&mut *lock(&self.live));
        for task in live {
            if !task.is_finished() {
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
            task.abort();
        }
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore: [`DbProxy::cut`] drops
/// every proxied connection at once, in-flight queries included, and stops listening, so new
/// connections are refused, until [`DbProxy::restore`] listens on the same port again: what a
/// `pg_ctlcluster ... restart` looks like to a service ("terminating connection due to
/// administrator command", then connection refused), without touching the machine's PostgreSQL
/// that other tests use. [`DbProxy::url`] gives a service its `DATABASE_URL` through it, without
/// TLS or prepared-statement caching, so [`DbProxy::cut_when_sent`] can cut the moment a
/// statement containing some text is sent (and hold that statement back), hitting a
/// transaction in flight.
pub struct DbProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl DbProxy {
    /// A proxy to the server of `database_url` (a `postgres://` URL), listening on a free local
    /// port.
    pub async fn start(database_url: &str) -> Self {
        let (_, host_port, _) = split_url(database_url);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(5432)),
            None => (host_port.clone(), 5432),
        };
        let upstream = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve the database host {host}:{port}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("the database proxy cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the database proxy's address: {e}"));
        let shared = Arc::new(Shared {
            upstream,
            open: AtomicBool::new(true),
            accept: Mutex::new(None),
            live: Mutex::new(Vec::new()),
            trigger: Mutex::new(None),
            dropped: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        *lock(&shared.accept) = Some(accept);
        Self { addr, shared }
    }

    /// `database_url` with the proxy as its server, without TLS and without caching prepared
    /// statements (so that [`DbProxy::cut_when_sent`] sees every statement's text, every time).
    pub fn url(&self, database_url: &str) -> String {
        let (head, _, tail) = split_url(database_url);
        let sep = if tail.contains('?') { '&' } else { '?' };
        format!(
            "{head}{}{tail}{sep}sslmode=disable&statement-cache-capacity=0",
            self.addr
        )
    }

    /// Drops every proxied connection and stops listening (new connections are refused)
    /// until [`DbProxy::restore`].
    pub fn cut(&self) {
        self.shared.cut();
    }

    /// [`DbProxy::cut`] the moment a client sends a statement containing `text`; that
    /// statement is never delivered: it is in flight when its connection drops.
    pub fn cut_when_sent(&self, text: &str) {
        *lock(&self.shared.trigger) = Some(text.as_bytes().to_vec());
    }

    /// True once cut (and not restored).
    pub fn is_cut(&self) -> bool {
        !self.shared.open.load(Ordering::SeqCst)
    }

    /// Listens on the same port again and lets connections through.
    pub async fn restore(&self) {
        let addr = self.addr;
        let listener = eventually(
            std::time::Duration::from_secs(90),
            &format!("the database proxy listening on {addr} again"),
            || async move { TcpListener::bind(addr).await.ok() },
        )
        .await;
        *lock(&self.shared.trigger) = None;
        self.shared.open.store(true, Ordering::SeqCst);
        let accept = tokio::spawn(accept_loop(listener, self.shared.clone())).abort_handle();
        *lock(&self.shared.accept) = Some(accept);
    }

    /// Live connections cut so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Connections proxied so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.shared.cut();
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(pipe(client, shared.clone()));
        {
            let mut live = lock(&shared.live);
            live.retain(|t| !t.is_finished());
            live.push(task.abort_handle());
        }
        // Cut meanwhile: this one goes too.
        if !shared.open.load(Ordering::SeqCst) {
            task.abort();
        }
    }
}

async fn pipe(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = forward(client_read, server_write, Some(&shared)) => {}
        _ = forward(server_read, client_write, None) => {}
    }
}

/// Copies `from` to `to`; from a client (`watch`: the proxy), cuts everything instead of
/// forwarding the bytes that contain the armed trigger.
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    watch: Option<&Shared>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(shared) = watch {
            let hit = lock(&shared.trigger)
                .as_ref()
                .is_some_and(|t| buf[..n].windows(t.len()).any(|w| w == t.as_slice()));
            if hit {
                shared.cut();
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `scheme://[auth@]` (with the auth), `host:port`, and the rest (`/db?query`) of a URL.
fn split_url(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (auth, host_port) = match authority.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), authority),
    };
    (
        format!("{scheme}://{auth}"),
        host_port.to_string(),
        tail.to_string(),
    )
}

/// A local TCP port for a server a test starts (a service's gRPC or HTTP address): below the
/// ephemeral range, so no outgoing connection (to PostgreSQL, NATS, a provider) is handed it in
/// the meantime, as `bind(0)` ports were; never handed out twice by this process; and free when
/// handed out. Each test process starts at its own place (by pid) in 20000..32000.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = LOW + u16::try_from(std::process::id() % 120).unwrap_or(0) * 100;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..(HIGH - LOW) {
        let mut port = NEXT.fetch_add(1, Ordering::SeqCst);
        if !(LOW..HIGH).contains(&port) {
            NEXT.store(LOW + 1, Ordering::SeqCst);
            port = LOW;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free local port in {LOW}..{HIGH}")
}

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, made for one test
/// (rcgen), as PEM.
pub struct TestCertificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCertificates {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rp test CA");
        let ca = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("CA: {e}"));
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
        let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap_or_else(|e| panic!("{e}"))
            .signed_by(&key, &issuer)
            .unwrap_or_else(|e| panic!("certificate: {e}"));
        Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The server's side, for [`crate::grpc::Services::tls`].
    pub fn server_tls(&self) -> crate::grpc::ServerTls {
        crate::grpc::ServerTls {
            cert_pem: self.cert_pem.clone().into_bytes(),
            key_pem: self.key_pem.clone().into_bytes(),
        }
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write_to(&self, dir: &std::path::Path) -> [std::path::PathBuf; 3] {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let files = [
            ("ca.pem", &self.ca_pem),
            ("cert.pem", &self.cert_pem),
            ("key.pem", &self.key_pem),
        ];
        files.map(|(name, pem)| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        })
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}
