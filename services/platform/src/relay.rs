//! The relay: follows the event log in position order and publishes each event to JetStream.
//!
//! * Exactly one relay publishes at a time: every service process runs one, and they elect a
//!   leader with a PostgreSQL session advisory lock (released by the server when the leader's
//!   connection dies).
//! * It publishes a page, waits for every JetStream ack, and only then moves its checkpoint
//!   (`relay_checkpoints`). A crash between publish and checkpoint republishes the page on restart;
//!   JetStream drops those duplicates by `Nats-Msg-Id` (= event id) inside the dedup window, and
//!   consumers are idempotent by event id beyond it.
//! * It wakes on `LISTEN rp_events` (a trigger notifies on every append) and polls as a fallback.

use crate::bus::{self, BusConfig, BusError};
use crate::eventlog::{EventStore, ReadError, ReadFilter, RecordedEvent};
use async_nats::jetstream;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("relay checkpoint: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Relay {
    store: EventStore,
    js: jetstream::Context,
    bus: BusConfig,
    name: String,
    page: i64,
    poll: Duration,
}

/// What a replay republished.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub published: u64,
    /// Dropped by JetStream as already on the stream (inside the dedup window).
    pub duplicates: u64,
    pub last_position: i64,
}

impl Relay {
    pub fn new(store: EventStore, js: jetstream::Context, bus: BusConfig) -> Self {
        Self {
            store,
            js,
            bus,
            name: "main".into(),
            page: 500,
            poll: Duration::from_secs(1),
        }
    }

    /// Page size (events per publish round).
    pub fn with_page(mut self, page: i64) -> Self {
        self.page = page.max(1);
        self
    }

    fn lock_key(&self) -> i64 {
        // "RPRLY" + a hash of the relay's name and stream, so two deployments sharing a database
        // with different streams each get a leader.
        let mut h: i64 = 0x52_50_52_4C_59;
        for b in format!("{}/{}", self.name, self.bus.stream).bytes() {
            h = h.wrapping_mul(31).wrapping_add(i64::from(b));
        }
        h
    }

    /// Where this relay has published up to.
    pub async fn checkpoint(&self) -> Result<i64, sqlx::Error> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT position FROM relay_checkpoints WHERE relay = $1")
                .bind(self.checkpoint_name())
                .fetch_optional(self.store.pool())
                .await?
                .unwrap_or(0),
        )
    }

    fn checkpoint_name(&self) -> String {
        format!("{}/{}", self.name, self.bus.stream)
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (relay, position) VALUES ($1, $2) \
             ON CONFLICT (relay) DO UPDATE \
             SET position = GREATEST(relay_checkpoints.position, EXCLUDED.position), updated_at = now()",
        )
        .bind(self.checkpoint_name())
        .bind(position)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Publishes every event after the checkpoint, page by page, moving the checkpoint after each
    /// fully acknowledged page. Returns how many events it published.
    pub async fn publish_pending(&self) -> Result<u64, RelayError> {
        let mut from = self.checkpoint().await?;
        let mut total = 0;
        loop {
            let page = self
                .store
                .read_all(from, self.page, &ReadFilter::default())
                .await?;
            let Some(last) = page.last().map(|e| e.position) else {
                return Ok(total);
            };
            publish_page(&self.js, &self.bus, &page, false).await?;
            self.save_checkpoint(last).await?;
            total += page.len() as u64;
            from = last;
        }
    }

    /// Runs until `cancel` fires: waits for leadership, then follows the log.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), RelayError> {
        let mut backoff = Duration::from_millis(200);
        while !cancel.is_cancelled() {
            match self.lead(&cancel).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay stopped; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        Ok(())
    }

    /// One term: take the leader lock (or wait for it), then publish until cancelled or an error.
    async fn lead(&self, cancel: &CancellationToken) -> Result<(), RelayError> {
        let mut conn: PgConnection = self.store.pool().acquire().await?.detach();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.lock_key())
                .fetch_one(&mut conn)
                .await?;
            if got {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => { let _ = conn.close().await; return Ok(()); }
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        tracing::info!(stream = %self.bus.stream, "relay is the leader");
        let mut listener = PgListener::connect_with(self.store.pool()).await?;
        listener.listen("rp_events").await?;
        let result = async {
            loop {
                let n = self.publish_pending().await?;
                if n > 0 {
                    tracing::debug!(published = n, "relay published");
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    r = listener.recv() => { r?; }
                    _ = tokio::time::sleep(self.poll) => {}
                }
            }
        }
        .await;
        // Closing the session releases the advisory lock.
        let _ = conn.close().await;
        result
    }
}

/// Publishes a page of events and waits for every ack. Returns how many JetStream reported as
/// duplicates.
pub async fn publish_page(
    js: &jetstream::Context,
    cfg: &BusConfig,
    page: &[RecordedEvent],
    replay: bool,
) -> Result<u64, BusError> {
    let mut acks = Vec::with_capacity(page.len());
    for e in page {
        let subject = cfg.subject(e.workspace_id(), e.event_type());
        let (headers, body) = bus::message_for(e, replay);
        let ack = js
            .publish_with_headers(subject.clone(), headers, body)
            .await
            .map_err(|err| BusError::Publish {
                subject: subject.clone(),
                message: err.to_string(),
            })?;
        acks.push((subject, ack));
    }
    let mut duplicates = 0;
    for (subject, ack) in acks {
        let ack = ack.await.map_err(|err| BusError::Publish {
            subject,
            message: err.to_string(),
        })?;
        if ack.duplicate {
            duplicates += 1;
        }
    }
    Ok(duplicates)
}

/// Republishes events with `from < position <= to` (optionally one workspace's) to the bus.
/// Safe to run twice: every message keeps its event id as `Nats-Msg-Id`, so JetStream drops
/// copies inside its dedup window and consumers skip events they already handled.
pub async fn replay(
    store: &EventStore,
    js: &jetstream::Context,
    cfg: &BusConfig,
    from: i64,
    to: i64,
    filter: &ReadFilter,
) -> Result<ReplayReport, RelayError> {
    let mut report = ReplayReport {
        last_position: from,
        ..Default::default()
    };
    loop {
        let page = store
            .read_range(report.last_position, to, 500, filter)
            .await?;
        let Some(last) = page.last().map(|e| e.position) else {
            return Ok(report);
        };
        report.duplicates += publish_page(js, cfg, &page, true).await?;
        report.published += page.len() as u64;
        report.last_position = last;
    }
}
