//! Faults of our own infrastructure, for the scenarios that must survive them.
//!
//! [`DbProxy`] sits between a service process and PostgreSQL (the service's `DATABASE_URL`
//! points at it, [`DbProxy::url`], without TLS or prepared-statement caching, so that every
//! statement's text goes through it).
//! [`DbProxy::cut`] drops every proxied connection at once, in-flight queries included, and
//! stops listening, so new connections are refused, until [`DbProxy::restore`] listens on the
//! same port again: what a `pg_ctlcluster ... restart` looks like to the service ("terminating
//! connection due to administrator command", then connection refused), without touching the
//! machine's PostgreSQL that other tests use. [`DbProxy::cut_when_sent`] does it the moment a
//! statement containing some text is sent (and holds that statement back), so the restart hits
//! a transaction in flight, as it did in production.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

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

/// A TCP proxy in front of PostgreSQL that can be cut and restored.
pub struct DbProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl DbProxy {
    /// A proxy to the server of `database_url` (a `postgres://` URL), listening on a free local
    /// port.
    pub async fn start(database_url: &str) -> Self {
        let url = reqwest::Url::parse(database_url)
            .unwrap_or_else(|e| panic!("{database_url} is not a URL: {e}"));
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(5432);
        let upstream = tokio::net::lookup_host((host, port))
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
        let mut url = reqwest::Url::parse(database_url)
            .unwrap_or_else(|e| panic!("{database_url} is not a URL: {e}"));
        let _ = url.set_host(Some(&self.addr.ip().to_string()));
        let _ = url.set_port(Some(self.addr.port()));
        url.query_pairs_mut()
            .append_pair("sslmode", "disable")
            .append_pair("statement-cache-capacity", "0");
        url.to_string()
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
        let listener = rp_platform::testing::eventually(
            crate::WAIT,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
