//! Long-lived server streams (`WatchConnectionHealth`, the bell's `Subscribe`): how many one key
//! and one workspace may hold open, and when they end.
//!
//! * [`OpenStreams::open`] admits a stream for an authenticated [`Caller`] or refuses it with
//!   `RESOURCE_EXHAUSTED` naming the limit, when the key already holds
//!   [`StreamLimits::per_key`] streams or its workspace [`StreamLimits::per_workspace`]. The
//!   [`StreamPermit`] it returns counts the stream until it is dropped.
//! * [`guard`] wraps a stream with its permit: the stream ends when the service shuts down (the
//!   token given to [`OpenStreams::new`]) and, with an `UNAUTHENTICATED` status, when its key is
//!   revoked. One task per process re-reads the revocations of the keys that hold streams every
//!   [`StreamLimits::recheck`] (one query, however many streams are open), so a revoked key's
//!   streams end within seconds, whichever replica revoked it.
//!
//! Limits come from `RP_GRPC_MAX_STREAMS_PER_KEY` (default 32), `RP_GRPC_MAX_STREAMS_PER_WORKSPACE`
//! (default 64) and `RP_GRPC_KEY_RECHECK` (default 2s).

use crate::apikeys::{Caller, KeyId};
use crate::config::{ConfigError, parse_duration};
use crate::ids::WorkspaceId;
use futures::{Stream, StreamExt};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// How many streams may be open, and how often revocations are re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub per_key: usize,
    pub per_workspace: usize,
    pub recheck: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            per_key: 32,
            per_workspace: 64,
            recheck: Duration::from_secs(2),
        }
    }
}

impl StreamLimits {
    /// The defaults, with what `RP_GRPC_MAX_STREAMS_PER_KEY`, `RP_GRPC_MAX_STREAMS_PER_WORKSPACE`
    /// and `RP_GRPC_KEY_RECHECK` set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut limits = Self::default();
        let count = |var: &str, default: usize| -> Result<usize, ConfigError> {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(ConfigError::Invalid {
                        var: var.into(),
                        value: v,
                        problem: "a whole number of streams, at least 1".into(),
                    }),
                },
                _ => Ok(default),
            }
        };
        limits.per_key = count("RP_GRPC_MAX_STREAMS_PER_KEY", limits.per_key)?;
        limits.per_workspace = count("RP_GRPC_MAX_STREAMS_PER_WORKSPACE", limits.per_workspace)?;
        if let Ok(v) = std::env::var("RP_GRPC_KEY_RECHECK")
            && !v.trim().is_empty()
        {
            limits.recheck = parse_duration(v.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError::Invalid {
                    var: "RP_GRPC_KEY_RECHECK".into(),
                    value: v.clone(),
                    problem: "a duration above zero (e.g. 2s)".into(),
                })?;
        }
        Ok(limits)
    }
}

#[derive(Default)]
struct Counts {
    /// Open streams per key, and the token that ends them all (a child of shutdown).
    by_key: HashMap<KeyId, (usize, CancellationToken)>,
    by_workspace: HashMap<WorkspaceId, usize>,
    /// Keys found revoked, and why, for the streams that end because of it.
    revoked: HashMap<KeyId, String>,
}

struct Inner {
    pool: PgPool,
    limits: StreamLimits,
    shutdown: CancellationToken,
    counts: Mutex<Counts>,
    watcher: Once,
}

/// The open streams of one process. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct OpenStreams {
    inner: Arc<Inner>,
}

impl OpenStreams {
    /// Streams of this process end when `shutdown` fires.
    pub fn new(pool: PgPool, limits: StreamLimits, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                limits,
                shutdown,
                counts: Mutex::new(Counts::default()),
                watcher: Once::new(),
            }),
        }
    }

    /// The token that ends every stream of this process.
    pub fn shutdown(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub fn limits(&self) -> StreamLimits {
        self.inner.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding the lock leaves plain counters: still usable.
        self.inner
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits one more stream for `caller`, or `RESOURCE_EXHAUSTED` saying which limit it hit.
    pub fn open(&self, caller: &Caller) -> Result<StreamPermit, Status> {
        self.start_watcher();
        let limits = self.inner.limits;
        let mut c = self.counts();
        let key_open = c.by_key.get(&caller.key_id).map_or(0, |(n, _)| *n);
        if key_open >= limits.per_key {
            tracing::warn!(key_id = %caller.key_id, open = key_open, "stream refused: per-key limit");
            return Err(Status::resource_exhausted(format!(
                "this API key already has {} streams open, the most one key may hold: close one \
                 (or use another key) before opening another",
                limits.per_key
            )));
        }
        let ws_open = c
            .by_workspace
            .get(&caller.workspace_id)
            .copied()
            .unwrap_or(0);
        if ws_open >= limits.per_workspace {
            tracing::warn!(key_id = %caller.key_id, workspace_id = %caller.workspace_id, open = ws_open, "stream refused: per-workspace limit");
            return Err(Status::resource_exhausted(format!(
                "this workspace already has {} streams open, the most one workspace may hold: \
                 close one before opening another",
                limits.per_workspace
            )));
        }
        let shutdown = self.inner.shutdown.clone();
        let entry = c
            .by_key
            .entry(caller.key_id.clone())
            .or_insert_with(|| (0, shutdown.child_token()));
        entry.0 += 1;
        let end = entry.1.child_token();
        *c.by_workspace.entry(caller.workspace_id).or_insert(0) += 1;
        Ok(StreamPermit {
            streams: self.clone(),
            caller: caller.clone(),
            end,
        })
    }

    fn close(&self, caller: &Caller) {
        let mut c = self.counts();
        if let Some((n, _)) = c.by_key.get_mut(&caller.key_id) {
            *n -= 1;
            if *n == 0 {
                c.by_key.remove(&caller.key_id);
                c.revoked.remove(&caller.key_id);
            }
        }
        if let Some(n) = c.by_workspace.get_mut(&caller.workspace_id) {
            *n -= 1;
            if *n == 0 {
                c.by_workspace.remove(&caller.workspace_id);
            }
        }
    }

    /// Streams open now: (for this key, for this workspace).
    pub fn open_count(&self, caller: &Caller) -> (usize, usize) {
        let c = self.counts();
        (
            c.by_key.get(&caller.key_id).map_or(0, |(n, _)| *n),
            c.by_workspace
                .get(&caller.workspace_id)
                .copied()
                .unwrap_or(0),
        )
    }

    fn start_watcher(&self) {
        self.inner.watcher.call_once(|| {
            let me = self.clone();
            tokio::spawn(async move { me.watch_revocations().await });
        });
    }

    /// Every `recheck`: ends the streams of keys revoked since they opened.
    async fn watch_revocations(self) {
        let mut tick = tokio::time::interval(self.inner.limits.recheck);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let keys: Vec<String> = {
                let c = self.counts();
                c.by_key.keys().map(|k| k.as_str().to_string()).collect()
            };
            if keys.is_empty() {
                continue;
            }
            let revoked: Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, _> = sqlx::query_as(
                "SELECT key_id, revoked_at FROM api_keys \
                 WHERE key_id = ANY($1) AND revoked_at IS NOT NULL",
            )
            .bind(&keys)
            .fetch_all(&self.inner.pool)
            .await;
            let revoked = match revoked {
                Ok(r) => r,
                Err(e) => {
                    // Keep the streams; the next tick tries again.
                    tracing::warn!(error = %e, "re-reading API key revocations failed");
                    continue;
                }
            };
            let mut c = self.counts();
            for (key, at) in revoked {
                let Ok(key) = KeyId::parse(&key) else {
                    continue;
                };
                if let Some((_, token)) = c.by_key.get(&key) {
                    token.cancel();
                    tracing::info!(key_id = %key, "API key revoked: ending its open streams");
                    c.revoked.insert(
                        key.clone(),
                        format!(
                            "API key {key} was revoked at {}; this stream has ended",
                            at.format("%Y-%m-%d %H:%M UTC")
                        ),
                    );
                }
            }
        }
    }

    fn revoked_reason(&self, key: &KeyId) -> Option<String> {
        self.counts().revoked.get(key).cloned()
    }
}

/// One open stream, counted until dropped.
pub struct StreamPermit {
    streams: OpenStreams,
    caller: Caller,
    end: CancellationToken,
}

impl StreamPermit {
    /// Fires when the stream must end: shutdown, or its key revoked.
    pub fn ended(&self) -> CancellationToken {
        self.end.clone()
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.streams.close(&self.caller);
    }
}

/// `stream`, ending when the permit ends (shutdown: the stream just ends; revocation: a last
/// `UNAUTHENTICATED` item), and releasing the permit when the client goes away.
pub fn guard<S, T>(permit: StreamPermit, stream: S) -> impl Stream<Item = Result<T, Status>> + Send
where
    S: Stream<Item = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let end = permit.ended();
    let ended = end.clone().cancelled_owned();
    let tail = futures::stream::once(async move {
        let reason = permit.streams.revoked_reason(&permit.caller.key_id);
        drop(permit);
        reason.map(|r| Err(Status::unauthenticated(r)))
    })
    .filter_map(futures::future::ready);
    stream.take_until(ended).chain(tail)
}
