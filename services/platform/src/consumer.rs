//! The consumer runtime every service uses to handle events from the bus.
//!
//! * Durable pull consumers with explicit ack; `MaxDeliver`, `BackOff` and `MaxAckPending` are
//!   always set. A message that exhausts its deliveries (or that a handler rejects as permanently
//!   bad) is written to `dead_letters` with its error and then terminated: operators see it in
//!   `rp consumers`; nothing is dropped silently.
//! * Idempotent: the handler runs inside a PostgreSQL transaction that also inserts the
//!   `(consumer, event id)` "processed" mark and appends the events the handler emits. A redelivery
//!   (duplicate publish, crash between commit and ack, replay) finds the mark and is acked
//!   without running the handler again.
//! * Ordering: [`Ordering::PerWorkspace`] binds one durable consumer per bus partition, each with
//!   one message in flight, so one workspace's events are handled in log order while partitions
//!   (and replicas) work in parallel. [`Ordering::Unordered`] shares one durable consumer with up
//!   to `concurrency` messages in flight per replica. Either way, replicas of a service share the
//!   work (queue semantics): each message goes to one of them.
//! * Metrics (`rp_platform::metrics`, docs/metrics.md), by consumer name: handling time, dead
//!   letters, and the lag (pending messages) read from JetStream every few seconds.
//! * Graceful shutdown: when the token is cancelled, stop pulling, finish in-flight messages, ack,
//!   return.

use crate::bus::{self, BusConfig, headers};
use crate::eventlog::{self, AppendError, ExpectedVersion, NewEvent, RecordedEvent};
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{FutureExt, StreamExt};
use sqlx::{PgPool, Postgres, Transaction};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Any order; up to `concurrency` messages in flight per replica.
    Unordered { concurrency: usize },
    /// Log order within a workspace.
    PerWorkspace,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Durable name (per service, e.g. `notification`); also the key of its processed marks.
    pub name: String,
    pub ordering: Ordering,
    /// Event types the handler wants (empty: all). Others are acked without a transaction.
    pub event_types: Vec<String>,
    /// Deliveries before a failing message is dead-lettered, counted by the runtime (the server
    /// has no limit, so it never drops a message the runtime has not recorded as dead).
    pub max_deliver: i64,
    /// Delays before redelivering after the handler's 1st, 2nd, ... failure (the last repeats).
    pub retry_delays: Vec<Duration>,
    /// For [`Ordering::Unordered`]; [`Ordering::PerWorkspace`] always uses 1 per partition.
    pub max_ack_pending: i64,
    /// How long the server waits for an ack before redelivering a message whose handler died
    /// (the runtime reports progress while a handler works, so a slow handler is not redelivered
    /// behind its back). Default 10 s: it also bounds a stall seen about once in ten runs of the
    /// matcher's service tests, where a delivered message never reaches the handler (taken, it
    /// seems, by a pull request the client had already given up on) and waits for redelivery;
    /// with 30 s the tests' waits ran out (docs/bus.md).
    pub ack_wait: Duration,
    /// Failure injection for tests of crash recovery.
    pub faults: Faults,
    /// What the runtime did, counted (for metrics and tests).
    pub stats: Arc<ConsumerStats>,
}

impl ConsumerConfig {
    pub fn new(name: impl Into<String>, ordering: Ordering) -> Self {
        Self {
            name: name.into(),
            ordering,
            event_types: Vec::new(),
            max_deliver: 6,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
                Duration::from_secs(300),
            ],
            max_ack_pending: 256,
            ack_wait: Duration::from_secs(10),
            faults: Faults::default(),
            stats: Arc::default(),
        }
    }

    pub fn event_types(mut self, types: &[&str]) -> Self {
        self.event_types = types.iter().map(|s| s.to_string()).collect();
        self
    }

    fn delay_after(&self, deliveries: i64) -> Duration {
        let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(0);
        self.retry_delays
            .get(i)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// Failure injection: simulates a process that dies at a chosen point.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// This many messages are committed but never acked, as if the process died between the
    /// commit and the ack; the server redelivers them after `ack_wait`.
    pub skip_ack_after_commit: Arc<AtomicU64>,
}

/// Counts of what a consumer's runtime did, across its partitions.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Events handled (committed).
    pub handled: AtomicU64,
    /// Events given up on and recorded in `dead_letters`.
    pub dead_lettered: AtomicU64,
    /// Attempts to record a dead letter that failed (the message was kept for redelivery).
    pub dead_letter_write_failures: AtomicU64,
    /// Durable consumers found deleted on the server and created again.
    pub durables_recreated: AtomicU64,
}

/// Why a handler did not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (a dependency is down, a conflict): redelivered with backoff.
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (the event is invalid for this handler): dead-lettered at once.
    #[error("{0}")]
    Reject(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl HandlerError {
    fn is_permanent(&self) -> bool {
        matches!(self, HandlerError::Reject(_))
    }

    /// The database could not be reached: not the message's fault, so it never uses up the
    /// message's deliveries (the outage is retried for as long as it lasts; the sync watchdog
    /// tells the user of a run it holds up for long).
    fn is_database_unavailable(&self) -> bool {
        match self {
            HandlerError::Database(e) | HandlerError::Append(AppendError::Database(e)) => {
                database_unavailable(e)
            }
            _ => false,
        }
    }
}

/// Whether `e` says the database could not be reached or went away (no connection, the pool's
/// wait ran out, the server shutting down or refusing connections), rather than refusing the
/// statement.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (the server shutting down,
        // crashed, or not accepting connections yet), 53300 (too many connections).
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// The workspace an event belongs to, parsed once at the consumer's edge; an event without a
/// workspace UUID will never be handled, so it is rejected (dead-lettered) with the reason.
pub fn workspace_of(event: &RecordedEvent) -> Result<crate::ids::WorkspaceId, HandlerError> {
    crate::ids::WorkspaceId::parse(event.workspace_id())
        .map_err(|why| HandlerError::Reject(format!("{}: workspace_id {why}", event.event_type())))
}

/// What a handler gets besides the event: the transaction its writes must use, and a way to
/// emit events that commit with them.
pub struct HandlerContext {
    pub tx: Transaction<'static, Postgres>,
    emitted: Vec<(String, ExpectedVersion, Vec<NewEvent>)>,
    cause: RecordedEvent,
}

impl HandlerContext {
    /// A new event in the incoming event's workspace, integration and causal chain.
    pub fn new_event(&self, event: crate::contracts::events::v1::envelope::Event) -> NewEvent {
        let meta = self.cause.meta();
        NewEvent::new(meta.workspace_id.clone(), event)
            .integration(meta.integration_id.clone())
            .caused_by(&self.cause)
    }

    /// Appends `events` to `stream` when the handler's transaction commits.
    pub fn emit(
        &mut self,
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) {
        if !events.is_empty() {
            self.emitted.push((stream.into(), expected, events));
        }
    }
}

/// Handles events of one consumer. Implementations must do all their writes through `ctx.tx`.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("consumer {name}: {message}")]
    Setup { name: String, message: String },
    #[error("consumer {name}: pulling messages: {message}")]
    Pull { name: String, message: String },
}

/// Creates (or updates) the durable consumers for `cfg` and handles messages until `cancel`.
pub async fn run<H: Handler>(
    js: jetstream::Context,
    bus_cfg: BusConfig,
    pool: PgPool,
    cfg: ConsumerConfig,
    handler: Arc<H>,
    cancel: CancellationToken,
) -> Result<(), ConsumerError> {
    let name = cfg.name.clone();
    let setup = |e: &dyn std::fmt::Display| ConsumerError::Setup {
        name: name.clone(),
        message: e.to_string(),
    };
    let stream = js
        .get_stream(&bus_cfg.stream)
        .await
        .map_err(|e| setup(&e))?;
    let cfg = Arc::new(cfg);
    let labels = crate::metrics::ConsumerMetrics::labels(&cfg.name);
    let metrics = crate::metrics::consumer();
    // Present from the start, so an alert on their increase sees the first one.
    let _ = metrics.dead_letters.get_or_create(&labels);
    let _ = metrics.durables_recreated.get_or_create(&labels);
    let mut tasks = JoinSet::new();
    let bindings: Vec<(String, String, i64, usize)> = match cfg.ordering {
        Ordering::PerWorkspace => (0..bus_cfg.partitions)
            .map(|p| {
                (
                    format!("{}-p{p}", cfg.name),
                    bus_cfg.partition_subjects(p),
                    1,
                    1,
                )
            })
            .collect(),
        Ordering::Unordered { concurrency } => vec![(
            cfg.name.clone(),
            bus_cfg.all_subjects(),
            cfg.max_ack_pending.max(1),
            concurrency.max(1),
        )],
    };
    tasks.spawn(refresh_lag(
        stream.clone(),
        bindings.iter().map(|b| b.0.clone()).collect(),
        labels,
        cancel.clone(),
    ));
    for (durable, filter, max_ack_pending, concurrency) in bindings {
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: filter,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            // No server-side limit: the runtime counts deliveries and gives up itself, and only
            // once the dead letter is committed (AckTerm), so the server never forgets a message
            // whose last delivery failed to be recorded (a database outage, a crash).
            max_deliver: -1,
            // (nats-server refuses a BackOff list without a MaxDeliver above its length: a
            // message whose handler died is redelivered after `ack_wait`, every time.)
            max_ack_pending,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        };
        let consumer = ensure_consumer(&stream, &durable, &config)
            .await
            .map_err(|e| setup(&e))?;
        let worker = Worker {
            pool: pool.clone(),
            cfg: cfg.clone(),
            handler: handler.clone(),
        };
        let cancel = cancel.clone();
        let stream = stream.clone();
        tasks.spawn(async move {
            worker
                .pull_loop(stream, consumer, config, durable, concurrency, cancel)
                .await
        });
    }
    let mut first_error = None;
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "consumer loop failed");
                cancel.cancel();
                first_error.get_or_insert(e);
            }
            Err(join) => {
                tracing::error!(error = %join, "consumer task panicked");
                cancel.cancel();
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How often a consumer's lag is read from the server (`rp_consumer_pending_messages`).
const LAG_REFRESH: Duration = Duration::from_secs(5);

/// Keeps the consumer's lag gauges: its durables' pending and unacknowledged messages, summed,
/// read from JetStream every [`LAG_REFRESH`] until `cancel`. A durable that cannot be read this
/// time (a reconnect, one being created again) leaves the gauges as they were.
async fn refresh_lag(
    stream: jetstream::stream::Stream,
    durables: Vec<String>,
    labels: crate::metrics::Labels<1>,
    cancel: CancellationToken,
) -> Result<(), ConsumerError> {
    let metrics = crate::metrics::consumer();
    let mut tick = tokio::time::interval(LAG_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let (mut pending, mut ack_pending) = (0u64, 0u64);
        let mut complete = true;
        for durable in &durables {
            match stream.consumer_info(durable).await {
                Ok(info) => {
                    pending += info.num_pending;
                    ack_pending += info.num_ack_pending as u64;
                }
                Err(e) => {
                    tracing::debug!(consumer = %durable, error = %e, "cannot read the consumer's lag");
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            metrics
                .pending
                .get_or_create(&labels)
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            metrics
                .ack_pending
                .get_or_create(&labels)
                .set(i64::try_from(ack_pending).unwrap_or(i64::MAX));
        }
    }
}

/// Creates the durable, or brings an existing one to `config` (a durable made by an older
/// version keeps working: if the server refuses the update, the existing one is used, loudly).
async fn ensure_consumer(
    stream: &jetstream::stream::Stream,
    durable: &str,
    config: &pull::Config,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    match stream.create_consumer(config.clone()).await {
        Ok(c) => Ok(c),
        Err(create) => {
            tracing::warn!(consumer = %durable, error = %create, "cannot create or update the durable consumer; using it as it is");
            stream
                .get_consumer(durable)
                .await
                .map_err(|e| format!("{create}; and reading it: {e}"))
        }
    }
}

struct Worker<H> {
    pool: PgPool,
    cfg: Arc<ConsumerConfig>,
    handler: Arc<H>,
}

impl<H> Clone for Worker<H> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            cfg: self.cfg.clone(),
            handler: self.handler.clone(),
        }
    }
}

impl<H: Handler> Worker<H> {
    async fn pull_loop(
        self,
        stream: jetstream::stream::Stream,
        mut consumer: jetstream::consumer::Consumer<pull::Config>,
        config: pull::Config,
        durable: String,
        concurrency: usize,
        cancel: CancellationToken,
    ) -> Result<(), ConsumerError> {
        let pull_err = |e: &dyn std::fmt::Display| ConsumerError::Pull {
            name: durable.clone(),
            message: e.to_string(),
        };
        let mut in_flight = JoinSet::new();
        let mut backoff = Duration::from_millis(200);
        'subscription: loop {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(concurrency)
                // Short pull requests: when a request goes quiet (a missed idle heartbeat, seen
                // while other consumers move large batches), the client waits for it to expire
                // before asking again, so the expiry bounds how long a partition can stall.
                .heartbeat(Duration::from_secs(1))
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|e| pull_err(&e))?;
            let lost = loop {
                if in_flight.len() >= concurrency {
                    in_flight.join_next().await;
                    continue;
                }
                let next = tokio::select! {
                    _ = cancel.cancelled() => break false,
                    next = messages.next() => next,
                };
                match next {
                    // The subscription ended without being asked to: the durable is gone.
                    None => break true,
                    Some(Ok(msg)) => {
                        backoff = Duration::from_millis(200);
                        let worker = self.clone();
                        let durable = durable.clone();
                        in_flight.spawn(async move { worker.process(&durable, msg).await });
                    }
                    Some(Err(e)) if e.kind() == pull::MessagesErrorKind::ConsumerDeleted => {
                        break true;
                    }
                    Some(Err(e)) => {
                        // Missed heartbeats and similar are transient: the stream reconnects.
                        tracing::warn!(consumer = %durable, error = %e, "pull interrupted");
                    }
                }
            };
            if !lost {
                // Messages already delivered to this process but not started: give them back
                // at once (NAK without delay) so another replica, or our successor, gets them
                // now rather than after `ack_wait`. Then stop pulling (drop the subscription),
                // and let in-flight messages finish and ack.
                while let Some(Some(next)) = messages.next().now_or_never() {
                    if let Ok(msg) = next {
                        ack(&msg, AckKind::Nak(None)).await;
                    }
                }
                break 'subscription;
            }
            drop(messages);
            // The durable was deleted on the server (an operator, a stream reset): without it
            // nothing reaches this partition again. Create it anew and resume; the processed
            // marks make what it redelivers from the stream's start harmless.
            loop {
                tracing::error!(consumer = %durable, "the durable consumer was deleted on the server; creating it again");
                match ensure_consumer(&stream, &durable, &config).await {
                    Ok(c) => {
                        consumer = c;
                        self.cfg
                            .stats
                            .durables_recreated
                            .fetch_add(1, AtomicOrdering::SeqCst);
                        crate::metrics::consumer()
                            .durables_recreated
                            .get_or_create(&crate::metrics::ConsumerMetrics::labels(&self.cfg.name))
                            .inc();
                        continue 'subscription;
                    }
                    Err(e) => {
                        tracing::error!(consumer = %durable, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot create the durable consumer again");
                        tokio::select! {
                            _ = cancel.cancelled() => break 'subscription,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
        Ok(())
    }

    async fn process(&self, durable: &str, msg: jetstream::Message) {
        let deliveries = msg.info().map(|i| i.delivered).unwrap_or(1);
        let stream_seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        let event_type = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::EVENT_TYPE))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        if !self.cfg.event_types.is_empty() && !self.cfg.event_types.contains(&event_type) {
            ack(&msg, AckKind::Ack).await;
            return;
        }
        let event = match bus::decode_message(&msg) {
            Ok(e) => e,
            Err(e) => {
                self.dead_letter(
                    durable,
                    &msg,
                    None,
                    &event_type,
                    stream_seq,
                    deliveries,
                    &e.to_string(),
                )
                .await;
                return;
            }
        };
        let span = tracing::info_span!(
            "handle_event",
            consumer = %self.cfg.name,
            event_type = %event_type,
            workspace_id = %event.workspace_id(),
            integration_id = %event.meta().integration_id,
            position = event.position,
            delivery = deliveries,
        );
        crate::telemetry::set_remote_parent(
            &span,
            &event.meta().traceparent,
            &event.meta().tracestate,
        );
        let started = std::time::Instant::now();
        let outcome = self
            .handle_with_progress(&msg, &event)
            .instrument(span.clone())
            .await;
        crate::metrics::consumer()
            .handle_seconds
            .get_or_create(&crate::metrics::ConsumerMetrics::labels(&self.cfg.name))
            .observe(started.elapsed().as_secs_f64());
        self.settle(
            durable,
            &msg,
            &event,
            &event_type,
            stream_seq,
            deliveries,
            outcome,
        )
        .instrument(span)
        .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        durable: &str,
        msg: &jetstream::Message,
        event: &RecordedEvent,
        event_type: &str,
        stream_seq: u64,
        deliveries: i64,
        outcome: Result<(), HandlerError>,
    ) {
        match outcome {
            Ok(()) => {
                let skip = &self.cfg.faults.skip_ack_after_commit;
                if skip
                    .fetch_update(AtomicOrdering::SeqCst, AtomicOrdering::SeqCst, |n| {
                        n.checked_sub(1)
                    })
                    .is_ok()
                {
                    tracing::warn!("fault injection: committed but not acked");
                    return;
                }
                self.cfg.stats.handled.fetch_add(1, AtomicOrdering::SeqCst);
                ack(msg, AckKind::Ack).await;
            }
            Err(e)
                if e.is_permanent()
                    || (deliveries >= self.cfg.max_deliver && !e.is_database_unavailable()) =>
            {
                tracing::error!(error = %e, deliveries, "giving up on event: dead-lettered");
                self.dead_letter(
                    durable,
                    msg,
                    Some(event),
                    event_type,
                    stream_seq,
                    deliveries,
                    &e.to_string(),
                )
                .await;
            }
            Err(e) => {
                let delay = self.cfg.delay_after(deliveries);
                tracing::warn!(error = %e, deliveries, retry_in_ms = delay.as_millis() as u64, "handler failed; will retry");
                ack(msg, AckKind::Nak(Some(delay))).await;
            }
        }
    }

    /// Runs the handler, telling the server the message is in progress while it works.
    async fn handle_with_progress(
        &self,
        msg: &jetstream::Message,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let work = self.handle(event);
        tokio::pin!(work);
        let mut tick =
            tokio::time::interval((self.cfg.ack_wait / 3).max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = tick.tick() => ack(msg, AckKind::Progress).await,
            }
        }
    }

    /// One transaction: processed mark, handler writes, emitted events.
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let mut tx = self.pool.begin().await?;
        // Fresh unless marked, or at or below the consumer's pruned floor (and not a dead
        // letter of it, which an operator replays to have it handled).
        let fresh = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id, position) \
             SELECT $1, $2, $3 WHERE NOT EXISTS ( \
                 SELECT 1 FROM processed_floors f WHERE f.consumer = $1 AND $3 <= f.position \
                 AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.event_id = $2 \
                     AND (d.consumer = $1 OR d.consumer LIKE $1 || '-p%'))) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.cfg.name)
        .bind(event.event_id())
        .bind(event.position)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tracing::debug!("already handled; acking the redelivery");
            tx.rollback().await?;
            return Ok(());
        }
        let mut ctx = HandlerContext {
            tx,
            emitted: Vec::new(),
            cause: event.clone(),
        };
        self.handler.handle(&mut ctx, event).await?;
        let HandlerContext {
            mut tx, emitted, ..
        } = ctx;
        for (stream, expected, events) in emitted {
            eventlog::append_in(&mut tx, &stream, expected, events).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn dead_letter(
        &self,
        durable: &str,
        msg: &jetstream::Message,
        event: Option<&RecordedEvent>,
        event_type: &str,
        stream_seq: u64,
        deliveries: i64,
        error: &str,
    ) {
        let res = self
            .record_dead_letter(
                durable, msg, event, event_type, stream_seq, deliveries, error,
            )
            .await;
        match res {
            Ok(_) => {
                self.cfg
                    .stats
                    .dead_lettered
                    .fetch_add(1, AtomicOrdering::SeqCst);
                crate::metrics::consumer()
                    .dead_letters
                    .get_or_create(&crate::metrics::ConsumerMetrics::labels(&self.cfg.name))
                    .inc();
                ack(msg, AckKind::Term).await
            }
            Err(e) => {
                self.cfg
                    .stats
                    .dead_letter_write_failures
                    .fetch_add(1, AtomicOrdering::SeqCst);
                // Could not record it: leave it to be redelivered rather than lose it.
                tracing::error!(error = %e, "cannot write dead letter; message will be redelivered");
                ack(msg, AckKind::Nak(Some(self.cfg.delay_after(deliveries)))).await;
            }
        }
    }
}

impl<H: Handler> Worker<H> {
    /// The dead letter's row and, for a decoded event, EventDeadLettered (so that whoever owns
    /// the event's causal chain, such as the sync run it belongs to, learns of it), in one
    /// transaction. A letter already recorded (a redelivery) appends nothing again.
    #[allow(clippy::too_many_arguments)]
    async fn record_dead_letter(
        &self,
        durable: &str,
        msg: &jetstream::Message,
        event: Option<&RecordedEvent>,
        event_type: &str,
        stream_seq: u64,
        deliveries: i64,
        error: &str,
    ) -> Result<(), DeadLetterError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO dead_letters (consumer, event_id, event_type, subject, stream_seq, deliveries, error, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (consumer, stream_seq) DO NOTHING",
        )
        .bind(durable)
        .bind(event.map(RecordedEvent::event_id))
        .bind(event_type)
        .bind(msg.subject.as_str())
        .bind(i64::try_from(stream_seq).unwrap_or(i64::MAX))
        .bind(deliveries)
        .bind(error)
        .bind(msg.payload.as_ref())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if let (true, Some(e)) = (inserted, event) {
            let meta = e.meta();
            let told = crate::contracts::events::v1::EventDeadLettered {
                consumer: durable.to_string(),
                event_id: e.event_id().to_string(),
                event_type: event_type.to_string(),
                error: error.chars().take(500).collect(),
                position: u64::try_from(e.position).unwrap_or(0),
            };
            let stream = if meta.workspace_id.is_empty() {
                "deadletters".to_string()
            } else {
                format!("deadletters-{}", meta.workspace_id)
            };
            let new = NewEvent::new(
                meta.workspace_id.clone(),
                crate::contracts::events::v1::envelope::Event::EventDeadLettered(told),
            )
            .integration(meta.integration_id.clone())
            .caused_by(e);
            eventlog::append_in(&mut tx, &stream, ExpectedVersion::Any, vec![new]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Why a dead letter could not be recorded.
#[derive(Debug, thiserror::Error)]
enum DeadLetterError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(#[from] eventlog::AppendError),
}

async fn ack(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        tracing::warn!(error = %e, "ack failed; the server will redeliver");
    }
}

/// What one pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub processed_marks: u64,
    pub dead_letters: u64,
}

/// How long the runtime's own tables keep their rows (`RP_PROCESSED_RETENTION`,
/// `RP_DEAD_LETTER_RETENTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Processed marks older than this are pruned; the highest pruned position of each consumer
    /// is kept as its floor. Must be longer than the stream's max age, so a message the stream
    /// can still redeliver always finds its mark (a replay below the floor is skipped too).
    pub processed: Duration,
    /// Dead letters older than this are deleted (replay a dead letter within it to have it
    /// handled: below the floor, a replayed event that is no longer a dead letter is skipped).
    pub dead_letters: Duration,
}

impl Retention {
    /// The defaults: marks the stream's max age plus 7 days, dead letters 90 days.
    pub fn for_stream(max_age: Duration) -> Self {
        Self {
            processed: max_age + Duration::from_secs(7 * 86_400),
            dead_letters: Duration::from_secs(90 * 86_400),
        }
    }

    /// From the environment, refusing a marks retention that would weaken idempotency.
    pub fn from_env(max_age: Duration) -> Result<Self, crate::config::ConfigError> {
        let d = Self::for_stream(max_age);
        Self {
            processed: crate::config::duration_or("RP_PROCESSED_RETENTION", d.processed)?,
            dead_letters: crate::config::duration_or("RP_DEAD_LETTER_RETENTION", d.dead_letters)?,
        }
        .checked(max_age)
    }

    /// Refuses a marks retention that would weaken idempotency (not longer than `max_age`).
    pub fn checked(self, max_age: Duration) -> Result<Self, crate::config::ConfigError> {
        let r = self;
        if r.processed <= max_age {
            return Err(crate::config::ConfigError::Invalid {
                var: "RP_PROCESSED_RETENTION".into(),
                value: format!("{}s", r.processed.as_secs()),
                problem: format!(
                    "must be longer than the stream's max age ({}s): a redelivered message would find no mark and be applied twice",
                    max_age.as_secs()
                ),
            });
        }
        Ok(r)
    }
}

/// Prunes processed marks and dead letters past their retention (any process may run it; it is
/// idempotent). The floors move in the same transaction as the marks leave.
pub async fn prune(pool: &PgPool, retention: Retention) -> Result<Pruned, sqlx::Error> {
    let secs = |d: Duration| d.as_secs_f64();
    let mut tx = pool.begin().await?;
    let marks: i64 = sqlx::query_scalar(
        "WITH gone AS ( \
             DELETE FROM processed_events \
             WHERE processed_at < now() - make_interval(secs => $1) RETURNING consumer, position), \
         floors AS ( \
             INSERT INTO processed_floors (consumer, position) \
             SELECT consumer, max(position) FROM gone GROUP BY consumer \
             ON CONFLICT (consumer) DO UPDATE \
             SET position = GREATEST(processed_floors.position, EXCLUDED.position), updated_at = now()) \
         SELECT count(*) FROM gone",
    )
    .bind(secs(retention.processed))
    .fetch_one(&mut *tx)
    .await?;
    let dead =
        sqlx::query("DELETE FROM dead_letters WHERE dead_at < now() - make_interval(secs => $1)")
            .bind(secs(retention.dead_letters))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    tx.commit().await?;
    Ok(Pruned {
        processed_marks: u64::try_from(marks).unwrap_or(0),
        dead_letters: dead,
    })
}

/// Prunes every `every` until cancelled (each service process runs one; see [`prune`]).
pub async fn housekeeping(
    pool: PgPool,
    retention: Retention,
    every: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match prune(&pool, retention).await {
            Ok(p) if p.processed_marks > 0 || p.dead_letters > 0 => {
                tracing::info!(
                    processed_marks = p.processed_marks,
                    dead_letters = p.dead_letters,
                    "pruned past retention"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; will try again"),
        }
    }
}

/// A dead-lettered message, for operators.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub event_id: Option<uuid::Uuid>,
    pub event_type: String,
    pub subject: String,
    pub stream_seq: i64,
    pub deliveries: i64,
    pub error: String,
    pub dead_at: chrono::DateTime<chrono::Utc>,
}

pub async fn dead_letters(
    pool: &PgPool,
    consumer: Option<&str>,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, consumer, event_id, event_type, subject, stream_seq, deliveries, error, dead_at \
         FROM dead_letters WHERE ($1::text IS NULL OR consumer = $1 OR consumer LIKE $1 || '-p%') \
         ORDER BY id",
    )
    .bind(consumer)
    .fetch_all(pool)
    .await
}
