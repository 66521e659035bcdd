//! The relay: follows the event log in position order and publishes each event to JetStream.
//!
//! * Exactly one relay publishes at a time: every service process runs one, and they elect a
//!   leader with a PostgreSQL session advisory lock (released by the server when the leader's
//!   connection dies).
//! * It publishes a page in log order, waits for the JetStream acks in order, and moves its
//!   checkpoint (`relay_checkpoints`) past the acknowledged prefix. A crash between publish and
//!   checkpoint republishes from there on restart; JetStream drops those duplicates by
//!   `Nats-Msg-Id` (= event id) inside the dedup window, and consumers are idempotent by event id
//!   beyond it.
//! * Never out of order: each event after a page's first names its predecessor as the stream's
//!   expected last message, so when the broker loses one in flight, none after it is stored, and
//!   the relay resumes at the first event not acknowledged ([`publish_in_order`]).
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
    /// acknowledged prefix. Returns how many events it published. On a failed publish it saves
    /// what was acknowledged before the failure and returns the error: the next round resumes at
    /// the first event the stream may not hold, so nothing after it can land first.
    pub async fn publish_pending(&self) -> Result<u64, RelayError> {
        let metrics = crate::metrics::relay();
        let mut from = self.checkpoint().await?;
        let head = self.store.head_position().await?;
        metrics.lag.set((head - from).max(0));
        let mut total = 0;
        loop {
            let page = self
                .store
                .read_all(from, self.page, &ReadFilter::default())
                .await?;
            if page.is_empty() {
                metrics.lag.set(0);
                return Ok(total);
            }
            let published = publish_in_order(&self.js, &self.bus, &page).await;
            if published.acked > 0 {
                let last = page[published.acked - 1].position;
                self.save_checkpoint(last).await?;
                total += published.acked as u64;
                metrics.published.inc_by(published.acked as u64);
                metrics.lag.set((head - last).max(0));
                from = last;
            }
            if let Some(e) = published.error {
                metrics.publish_errors.inc();
                return Err(e.into());
            }
        }
    }

    /// The relay lag as the log says (head minus checkpoint), for a process that is not the
    /// leader: every process reports the same lag, so the metric is there whichever leads.
    async fn observe_lag(&self) -> Result<(), sqlx::Error> {
        let from = self.checkpoint().await?;
        let head = self.store.head_position().await?;
        crate::metrics::relay().lag.set((head - from).max(0));
        Ok(())
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
            if let Err(e) = self.observe_lag().await {
                tracing::debug!(error = %e, "cannot read the relay lag");
            }
            tokio::select! {
                _ = cancel.cancelled() => { let _ = conn.close().await; return Ok(()); }
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        tracing::info!(stream = %self.bus.stream, "relay is the leader");
        crate::metrics::relay().leader.set(1);
        let result = async {
            let mut listener = PgListener::connect_with(self.store.pool()).await?;
            listener.listen("rp_events").await?;
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
        crate::metrics::relay().leader.set(0);
        // Closing the session releases the advisory lock.
        let _ = conn.close().await;
        result
    }
}

/// What publishing a page in order did.
#[derive(Debug)]
pub struct InOrder {
    /// How many events, from the page's start, JetStream acknowledged (stored or duplicate).
    pub acked: usize,
    pub duplicates: u64,
    /// Why it stopped before the end of the page.
    pub error: Option<BusError>,
}

/// Publishes a page in log order, pipelined, and waits for the acks in order, stopping at the
/// first failure. Every event after the page's first says which event must be the stream's last
/// (`Nats-Expected-Last-Msg-Id`: the event before it), so when the broker loses one in flight
/// (a crash, a cut connection), none after it is stored; the caller resumes at the first event
/// not acknowledged, which carries no expectation. A duplicate (already stored, inside the dedup
/// window) is acknowledged as such. Another publisher in between (a replay) only makes the next
/// event fail its expectation, and the caller resumes there.
pub async fn publish_in_order(
    js: &jetstream::Context,
    cfg: &BusConfig,
    page: &[RecordedEvent],
) -> InOrder {
    let mut acks = Vec::with_capacity(page.len());
    let mut error = None;
    let mut previous: Option<&str> = None;
    for e in page {
        let subject = cfg.subject(e.workspace_id(), e.event_type());
        let (mut headers, body) = bus::message_for(e, false);
        if let Some(prev) = previous {
            headers.insert(async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID, prev);
        }
        previous = Some(e.meta().event_id.as_str());
        match js
            .publish_with_headers(subject.clone(), headers, body)
            .await
        {
            Ok(ack) => acks.push((subject, ack)),
            Err(err) => {
                error = Some(BusError::Publish {
                    subject,
                    message: err.to_string(),
                });
                break;
            }
        }
    }
    let mut done = InOrder {
        acked: 0,
        duplicates: 0,
        error: None,
    };
    for (subject, ack) in acks {
        match ack.await {
            Ok(ack) => {
                done.acked += 1;
                done.duplicates += u64::from(ack.duplicate);
            }
            Err(err) => {
                // Later acks are not counted: the resumed round sends them again, after this one.
                done.error = Some(BusError::Publish {
                    subject,
                    message: err.to_string(),
                });
                return done;
            }
        }
    }
    done.error = error;
    done
}

/// Publishes a page of events and waits for every ack. Returns how many JetStream reported as
/// duplicates. For replays: republished events are marked as such, and their order relative to
/// live traffic does not matter to consumers (they skip what they already handled).
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
