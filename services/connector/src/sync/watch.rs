//! One PostgreSQL LISTEN per process for `WatchConnectionHealth`: the hub listens on
//! [`store::HEALTH_CHANNEL`] on one connection and fans each notification out to every open
//! Watch over a broadcast channel, so open streams hold no database connection (each stream
//! only borrows one from the pool to re-read its workspace's health when it changed).
//!
//! A lost listener connection is re-established, and every watcher re-reads its health then
//! (notifications sent meanwhile are lost, so each treats it as a change), as does a watcher
//! that fell behind the channel.

use super::store;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::{OnceCell, broadcast};
use tokio_util::sync::CancellationToken;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This workspace's health (the NOTIFY payload: its id).
    Workspace(String),
    /// Possibly anything (the listener reconnected): re-read.
    Everything,
}

/// How many changes a slow watcher may fall behind before it is told to re-read.
const CAPACITY: usize = 1024;

pub struct HealthHub {
    pool: PgPool,
    shutdown: CancellationToken,
    tx: broadcast::Sender<Change>,
    started: OnceCell<()>,
}

impl HealthHub {
    pub fn new(pool: PgPool, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self {
            pool,
            shutdown,
            tx,
            started: OnceCell::new(),
        }
    }

    /// A receiver of every change from now on. The first call starts the listener and returns
    /// once it is listening, so nothing committed after this returns is missed.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<Change>, sqlx::Error> {
        self.started
            .get_or_try_init(|| async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(store::HEALTH_CHANNEL).await?;
                let (tx, shutdown) = (self.tx.clone(), self.shutdown.clone());
                tokio::spawn(run(listener, tx, shutdown));
                Ok::<_, sqlx::Error>(())
            })
            .await?;
        Ok(self.tx.subscribe())
    }
}

async fn run(mut listener: PgListener, tx: broadcast::Sender<Change>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = listener.try_recv() => n,
        };
        match next {
            Ok(Some(n)) => {
                backoff = Duration::from_millis(100);
                // No receiver is not an error: nobody is watching.
                let _ = tx.send(Change::Workspace(n.payload().to_string()));
            }
            // The connection was lost and is being re-established: changes may have been missed.
            Ok(None) => {
                let _ = tx.send(Change::Everything);
            }
            // The pool is closing (the process is stopping): give the connection back.
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "health listener failed; retrying");
                let _ = tx.send(Change::Everything);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
