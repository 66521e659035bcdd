//! Faults of our own infrastructure, for the scenarios that must survive them.
//!
//! [`DbProxy`] sits between a service process and PostgreSQL (the service's `DATABASE_URL`
//! points at it, [`DbProxy::url`]). [`DbProxy::cut`] drops every proxied connection at once
//! and refuses new ones (accepted and closed straight away, as a server that is going down
//! does) until [`DbProxy::restore`]: what a `pg_ctlcluster ... restart` looks like to the
//! service, without touching the machine's PostgreSQL that other tests use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

struct Shared {
    upstream: SocketAddr,
    open: AtomicBool,
    /// The proxied connections' tasks; aborting one closes both of its sockets.
    live: Mutex<Vec<AbortHandle>>,
    refused: AtomicU64,
    accepted: AtomicU64,
}

/// A TCP proxy in front of PostgreSQL that can be cut and restored.
pub struct DbProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
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
            live: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// `database_url` with the proxy as its server.
    pub fn url(&self, database_url: &str) -> String {
        let mut url = reqwest::Url::parse(database_url)
            .unwrap_or_else(|e| panic!("{database_url} is not a URL: {e}"));
        let _ = url.set_host(Some(&self.addr.ip().to_string()));
        let _ = url.set_port(Some(self.addr.port()));
        url.to_string()
    }

    /// Drops every proxied connection and refuses new ones until [`DbProxy::restore`].
    pub fn cut(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        let live = std::mem::take(&mut *lock(&self.shared.live));
        for task in live {
            task.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.shared.open.store(true, Ordering::SeqCst);
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections proxied so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
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
        if !shared.open.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(pipe(client, shared.upstream));
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

async fn pipe(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
