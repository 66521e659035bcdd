//! The append-only event log in PostgreSQL: the source of truth of the whole system.
//!
//! * Streams (`connection-<id>`, `checkpoint-<connection>-<object>`, `syncrun-<id>`, ...) each
//!   have a version; an append states the version it expects and fails with
//!   [`AppendError::Conflict`] when the stream has moved on.
//! * Every event also gets a global `position`. Positions are handed out while the appending
//!   transaction holds one transaction-scoped advisory lock (the technique of the Python
//!   `eventsourcing` library's PostgreSQL recorder), and the lock is released only after the
//!   commit is visible. So positions become visible in commit order: a reader following the log by
//!   position can never pass a position that a slower transaction commits later. The race test in
//!   `tests/eventlog.rs` holds us to that. The price is that appends are serialized; a batch append
//!   amortizes it (see docs/benchmarks.md). An append is one statement, the `rp_append`
//!   function (migration `20261129000004_append_function.sql`): one round trip, and no BEGIN or
//!   COMMIT of its own when the caller has no transaction.
//! * UPDATE, DELETE and TRUNCATE on `events` are refused by a trigger (the migration).

use crate::contracts::events::v1::{Envelope, EventMeta, envelope::Event};
use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

// The advisory lock that serializes appends has key 0x52504C4F47 (ASCII "RPLOG"); the
// `rp_append` function (migration 20261129000004) takes it.

/// What the appender believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (versions start at 1).
    Exact(i64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => write!(f, "any version"),
            ExpectedVersion::NoStream => write!(f, "no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream is not at the version the caller expected: someone else appended first.
    #[error("stream {stream}: expected {expected}, but it is at {}", describe_version(.actual))]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's current version; `None` when the stream does not exist.
        actual: Option<i64>,
    },
    #[error("nothing to append")]
    Empty,
    /// The event is larger than the bus can carry: appending it would wedge the relay.
    #[error(
        "a {event_type} event of {bytes} bytes is larger than the {max} bytes an event may have (the bus's message limit)"
    )]
    TooLarge {
        event_type: &'static str,
        bytes: usize,
        max: usize,
    },
    #[error("an event with id {0} is already in the log")]
    DuplicateEventId(Uuid),
    #[error("event log: {0}")]
    Database(#[from] sqlx::Error),
}

fn describe_version(v: &Option<i64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "no stream".into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("event log: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} cannot be decoded: {source}")]
    Corrupt {
        position: i64,
        source: prost::DecodeError,
    },
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub workspace_id: String,
    pub integration_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub occurred_at: DateTime<Utc>,
    pub event: Event,
}

impl NewEvent {
    /// A new event with a fresh UUID v7, starting its own correlation chain.
    pub fn new(workspace_id: impl Into<String>, event: Event) -> Self {
        let event_id = Uuid::now_v7();
        Self {
            event_id,
            workspace_id: workspace_id.into(),
            integration_id: String::new(),
            correlation_id: event_id.to_string(),
            causation_id: String::new(),
            occurred_at: Utc::now(),
            event,
        }
    }

    pub fn integration(mut self, integration_id: impl Into<String>) -> Self {
        self.integration_id = integration_id.into();
        self
    }

    pub fn correlation(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    pub fn causation(mut self, causation_id: impl Into<String>) -> Self {
        self.causation_id = causation_id.into();
        self
    }

    /// Continues the causal chain of `cause`: same correlation, caused by it.
    pub fn caused_by(self, cause: &RecordedEvent) -> Self {
        let correlation = cause.meta().correlation_id.clone();
        self.correlation(correlation)
            .causation(cause.event_id().to_string())
    }

    pub fn type_name(&self) -> &'static str {
        self.event.type_name()
    }
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub recorded_at: DateTime<Utc>,
    pub envelope: Envelope,
}

impl RecordedEvent {
    pub fn meta(&self) -> &EventMeta {
        static EMPTY: EventMeta = EventMeta {
            event_id: String::new(),
            workspace_id: String::new(),
            integration_id: String::new(),
            occurred_at: None,
            correlation_id: String::new(),
            causation_id: String::new(),
            traceparent: String::new(),
            tracestate: String::new(),
        };
        self.envelope.meta.as_ref().unwrap_or(&EMPTY)
    }

    pub fn event_id(&self) -> Uuid {
        Uuid::parse_str(&self.meta().event_id).unwrap_or(Uuid::nil())
    }

    pub fn workspace_id(&self) -> &str {
        &self.meta().workspace_id
    }

    pub fn event(&self) -> Option<&Event> {
        self.envelope.event.as_ref()
    }

    /// The type name, or `Unknown` for an event added by a newer producer than this reader.
    pub fn event_type(&self) -> &'static str {
        self.event().map_or("Unknown", Event::type_name)
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_position: i64,
    pub last_position: i64,
    /// The stream's version after the append.
    pub stream_version: i64,
}

/// Which events a global read returns.
#[derive(Debug, Clone, Default)]
pub struct ReadFilter {
    /// Only these types (empty: all).
    pub event_types: Vec<String>,
    /// Only this workspace.
    pub workspace_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EventStore {
    pool: PgPool,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends `events` to `stream` in one transaction.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, AppendError> {
        // One autocommit statement is one transaction: `rp_append` holds the append lock until
        // it commits, as an explicit transaction would, without BEGIN and COMMIT round trips.
        let mut conn = self.pool.acquire().await?;
        append_in(&mut conn, stream, expected, events).await
    }

    /// Events of one stream with version >= `from_version`, in version order, at most `limit`.
    pub async fn read_stream(
        &self,
        stream: &str,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let mut conn = self.pool.acquire().await?;
        read_stream_in(&mut conn, stream, from_version, limit).await
    }

    /// Events after global position `after` (exclusive), in position order, at most `limit`.
    pub async fn read_all(
        &self,
        after: i64,
        limit: i64,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read_range(after, i64::MAX, limit, filter).await
    }

    /// Events with `after < position <= up_to`, in position order, at most `limit`.
    pub async fn read_range(
        &self,
        after: i64,
        up_to: i64,
        limit: i64,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let mut conn = self.pool.acquire().await?;
        read_range_in(&mut conn, after, up_to, limit, filter).await
    }

    /// The highest position in the log (0 when empty).
    pub async fn head_position(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
    }

    /// The stream's current version, `None` when it does not exist.
    pub async fn stream_version(&self, stream: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM event_streams WHERE stream_id = $1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
    }
}

/// [`EventStore::read_range`] inside the caller's transaction (a rebuild reads the log and
/// writes its projection in one).
pub async fn read_range_in(
    conn: &mut PgConnection,
    after: i64,
    up_to: i64,
    limit: i64,
    filter: &ReadFilter,
) -> Result<Vec<RecordedEvent>, ReadError> {
    // One statement per filter shape, so each gets a plan that uses the right index; a
    // single statement with optional filters gets a generic plan that suits none of them.
    macro_rules! select {
        ($rest:literal) => {
            concat!(
                "SELECT position, stream_id, version, recorded_at, payload FROM events \
                 WHERE position > $1 AND position <= $2",
                $rest
            )
        };
    }
    let sql: &'static str = match (filter.event_types.is_empty(), filter.workspace_id.is_some()) {
        (true, false) => select!(" ORDER BY position LIMIT $3"),
        (false, false) => {
            select!(" AND event_type = ANY($4) ORDER BY position LIMIT $3")
        }
        (true, true) => {
            select!(" AND workspace_id = $4 ORDER BY position LIMIT $3")
        }
        (false, true) => {
            select!(" AND event_type = ANY($4) AND workspace_id = $5 ORDER BY position LIMIT $3")
        }
    };
    let mut query = sqlx::query(sql).bind(after).bind(up_to).bind(limit);
    if !filter.event_types.is_empty() {
        query = query.bind(&filter.event_types);
    }
    if let Some(ws) = filter.workspace_id.as_deref() {
        query = query.bind(ws);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(decode_row).collect()
}

/// [`EventStore::read_stream`] inside the caller's transaction: a command handler loads its
/// aggregate and appends in one, so what it decided on is what the lock protects.
pub async fn read_stream_in(
    conn: &mut PgConnection,
    stream: &str,
    from_version: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let rows = sqlx::query(
        "SELECT position, stream_id, version, recorded_at, payload FROM events \
         WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3",
    )
    .bind(stream)
    .bind(from_version)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(decode_row).collect()
}

/// The whole of one stream, in version order, inside the caller's transaction.
pub async fn read_whole_stream_in(
    conn: &mut PgConnection,
    stream: &str,
) -> Result<Vec<RecordedEvent>, ReadError> {
    read_stream_in(conn, stream, 1, i64::MAX).await
}

/// The events at the given global positions (those that exist), in position order, inside the
/// caller's transaction: a consumer that staged positions reads them back with its writes.
pub async fn read_positions_in(
    conn: &mut PgConnection,
    positions: &[i64],
) -> Result<Vec<RecordedEvent>, ReadError> {
    let rows = sqlx::query(
        "SELECT position, stream_id, version, recorded_at, payload FROM events \
         WHERE position = ANY($1) ORDER BY position",
    )
    .bind(positions)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(decode_row).collect()
}

/// The largest encoded event the log takes: NATS' default `max_payload` (1 MiB) less room for the
/// message's headers. An event that the bus cannot carry is never appended (the relay would retry
/// it for ever, and nothing after it would be published): callers split their batches under it.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024 - 16 * 1024;

/// Appends inside the caller's transaction, so a handler's projection writes, its "processed" mark
/// and the events it emits commit together. Call it last in the transaction: from here to the
/// commit, appends from other transactions wait.
pub async fn append_in(
    conn: &mut PgConnection,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Appended, AppendError> {
    if events.is_empty() {
        return Err(AppendError::Empty);
    }
    let (traceparent, tracestate) = crate::telemetry::current_trace_context();
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut workspaces = Vec::with_capacity(n);
    let mut integrations = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut causations = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for e in events {
        let type_name = e.event.type_name();
        let envelope = Envelope {
            meta: Some(EventMeta {
                event_id: e.event_id.to_string(),
                workspace_id: e.workspace_id.clone(),
                integration_id: e.integration_id.clone(),
                occurred_at: Some(crate::contracts::timestamp(e.occurred_at)),
                correlation_id: e.correlation_id.clone(),
                causation_id: e.causation_id.clone(),
                traceparent: traceparent.clone(),
                tracestate: tracestate.clone(),
            }),
            event: Some(e.event),
        };
        let payload = envelope.encode_to_vec();
        if payload.len() > MAX_EVENT_BYTES {
            return Err(AppendError::TooLarge {
                event_type: type_name,
                bytes: payload.len(),
                max: MAX_EVENT_BYTES,
            });
        }
        ids.push(e.event_id);
        types.push(type_name);
        workspaces.push(e.workspace_id);
        integrations.push(e.integration_id);
        correlations.push(e.correlation_id);
        causations.push(e.causation_id);
        occurred.push(e.occurred_at);
        payloads.push(payload);
    }
    let expected_arg: i64 = match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(v) if v >= 1 => v,
        // Versions start at 1: no stream is at this one, so the append must fail.
        ExpectedVersion::Exact(_) => i64::MAX,
    };
    // Lock, version check, events and the stream's version in one statement: see the
    // `rp_append` migration for why it is correct (the version is read after the lock).
    let (appended, version, first, last): (bool, Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(
            "SELECT appended, stream_version, first_position, last_position \
             FROM rp_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(stream)
        .bind(expected_arg)
        .bind(&traceparent)
        .bind(&ids)
        .bind(&types)
        .bind(&workspaces)
        .bind(&integrations)
        .bind(&correlations)
        .bind(&causations)
        .bind(&occurred)
        .bind(&payloads)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.constraint() == Some("events_event_id_key") => {
                let dup = ids.first().copied().unwrap_or(Uuid::nil());
                AppendError::DuplicateEventId(dup)
            }
            _ => AppendError::Database(e),
        })?;
    match (appended, version, first, last) {
        (true, Some(stream_version), Some(first_position), Some(last_position)) => Ok(Appended {
            first_position,
            last_position,
            stream_version,
        }),
        (false, actual, _, _) => Err(AppendError::Conflict {
            stream: stream.to_string(),
            expected,
            actual,
        }),
        _ => Err(AppendError::Database(sqlx::Error::Protocol(
            "rp_append returned an incomplete row".into(),
        ))),
    }
}

/// Decodes a row of `SELECT position, stream_id, version, recorded_at, payload` (by index: the
/// hot path of catch-up reads).
fn decode_row(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, ReadError> {
    let position: i64 = row.try_get(0)?;
    let payload: &[u8] = row.try_get(4)?;
    let envelope =
        Envelope::decode(payload).map_err(|source| ReadError::Corrupt { position, source })?;
    Ok(RecordedEvent {
        position,
        stream_id: row.try_get(1)?,
        version: row.try_get(2)?,
        recorded_at: row.try_get(3)?,
        envelope,
    })
}
