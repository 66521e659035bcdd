//! The notification projection in PostgreSQL (migrations in `services/notification/migrations`).
//!
//! * Every change to `notifications` comes from one of the service's own events
//!   (NotificationRaised, NotificationUpdated, NotificationResolved, NotificationsRead) through
//!   [`apply`], whether the
//!   handler just decided it, the API just appended it, or [`rebuild`] replays it from the log:
//!   so a rebuilt projection equals the live one.
//! * The handler's writes commit with its emitted events (consumer runtime); the API's
//!   NotificationsRead is appended and applied in one transaction, the update *after* the
//!   append: the append takes the log's append lock, so "mark all read" covers exactly the
//!   notifications before it in the log, as a replay would.

use crate::domain::{FailureKind, IncidentKind, NotificationKind, OpenIncidents, Promise};
use chrono::{DateTime, Utc};
use rp_platform::contracts::events::v1::{self as ev, NotificationsRead, envelope::Event};
use rp_platform::eventlog::{self, AppendError, ExpectedVersion, NewEvent, ReadError, ReadFilter};
use rp_platform::ids::WorkspaceId;
use rp_platform::provider::Provider;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("notification store: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("notification migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("event at position {position} cannot be decoded: {source}")]
    Corrupt {
        position: i64,
        source: prost::DecodeError,
    },
}

impl From<ReadError> for StoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Database(e) => StoreError::Database(e),
            ReadError::Corrupt { position, source } => StoreError::Corrupt { position, source },
        }
    }
}

/// Applies the service's migrations (beside the platform's; each ignores the other's).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

// ---- Integrations --------------------------------------------------------------------------

/// The provider an event names, for the events that name one.
pub fn provider_in(event: &Event) -> Option<Provider> {
    match event {
        Event::ConnectionConnected(e) => Provider::from_event(e.provider),
        Event::ConnectionReconnected(e) => Provider::from_event(e.provider),
        Event::ConnectionDisconnected(e) => Provider::from_event(e.provider),
        Event::SyncStarted(e) => Provider::from_event(e.provider),
        _ => None,
    }
}

/// The event types [`provider_in`] learns from.
pub const PROVIDER_EVENT_TYPES: &[&str] = &[
    "ConnectionConnected",
    "ConnectionReconnected",
    "ConnectionDisconnected",
    "SyncStarted",
];

pub async fn learn_provider(
    conn: &mut PgConnection,
    integration_id: &str,
    workspace_id: WorkspaceId,
    provider: Provider,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notification_integrations (integration_id, workspace_id, provider) \
         VALUES ($1, $2, $3) ON CONFLICT (integration_id) DO UPDATE \
         SET workspace_id = EXCLUDED.workspace_id, provider = EXCLUDED.provider, updated_at = now()",
    )
    .bind(integration_id)
    .bind(workspace_id.as_uuid())
    .bind(provider.slug())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn provider_of(
    conn: &mut PgConnection,
    integration_id: &str,
) -> Result<Option<Provider>, StoreError> {
    let code: Option<String> = sqlx::query_scalar(
        "SELECT provider FROM notification_integrations WHERE integration_id = $1",
    )
    .bind(integration_id)
    .fetch_optional(conn)
    .await?;
    Ok(code.as_deref().and_then(Provider::from_slug))
}

// ---- Incidents -----------------------------------------------------------------------------

/// An open notification's id and kind, and what it promises (failure kind, next attempt).
type OpenRow = (Uuid, String, Option<String>, Option<DateTime<Utc>>);

/// The incidents still open for an integration, by the notification that opened each.
pub async fn open_incidents(
    conn: &mut PgConnection,
    workspace_id: WorkspaceId,
    integration_id: &str,
) -> Result<OpenIncidents, StoreError> {
    let rows: Vec<OpenRow> = sqlx::query_as(
        "SELECT notification_id, kind, failure_kind, next_attempt_at FROM notifications \
         WHERE workspace_id = $1 AND integration_id = $2 AND resolved_at IS NULL \
           AND kind IN ('sync_interrupted', 'connection_disconnected') \
         ORDER BY raised_at, notification_id",
    )
    .bind(workspace_id.as_uuid())
    .bind(integration_id)
    .fetch_all(conn)
    .await?;
    let mut open = OpenIncidents::default();
    for (id, kind, failure_kind, next_attempt_at) in rows {
        match NotificationKind::from_code(&kind).and_then(NotificationKind::opens) {
            Some(IncidentKind::Disconnected) => open.disconnected = Some(id),
            Some(IncidentKind::SyncInterrupted) => {
                open.sync_interrupted = Some(id);
                // Raised before promises were recorded: unknown (the domain rewords it).
                open.interruption_says = failure_kind
                    .as_deref()
                    .and_then(FailureKind::from_code)
                    .map(|kind| Promise {
                        kind,
                        next_attempt_at,
                    });
            }
            Some(IncidentKind::AccountChanged) | None => {}
        }
    }
    Ok(open)
}

// ---- Applying the service's own events -----------------------------------------------------

/// Applies one of the service's events to the projection (others are ignored). Idempotent.
/// Returns how many notifications it changed.
pub async fn apply(
    conn: &mut PgConnection,
    workspace_id: WorkspaceId,
    integration_id: &str,
    occurred_at: DateTime<Utc>,
    event: &Event,
) -> Result<u64, StoreError> {
    let ws = workspace_id.as_uuid();
    let done = match event {
        Event::NotificationRaised(n) => {
            let Ok(id) = Uuid::parse_str(&n.notification_id) else {
                tracing::warn!(notification_id = %n.notification_id, "NotificationRaised with an id that is not a UUID: skipped");
                return Ok(0);
            };
            let resolves = Uuid::parse_str(&n.resolves_notification_id).ok();
            let provider = Provider::from_event(n.provider).map_or("", Provider::slug);
            let (failure_kind, next_attempt_at) = promise_of(
                &n.kind,
                n.failure_kind,
                n.next_attempt_at
                    .as_ref()
                    .and_then(rp_platform::contracts::from_timestamp),
            );
            sqlx::query(
                "INSERT INTO notifications (notification_id, workspace_id, integration_id, \
                     provider, incident_key, kind, title, body, action, link, \
                     resolves_notification_id, raised_at, failure_kind, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (notification_id) DO NOTHING",
            )
            .bind(id)
            .bind(ws)
            .bind(integration_id)
            .bind(provider)
            .bind(&n.incident_key)
            .bind(&n.kind)
            .bind(&n.title)
            .bind(&n.body)
            .bind(&n.action)
            .bind(&n.link)
            .bind(resolves)
            .bind(occurred_at)
            .bind(failure_kind)
            .bind(next_attempt_at)
            .execute(conn)
            .await?
        }
        Event::NotificationUpdated(u) => {
            let Ok(id) = Uuid::parse_str(&u.notification_id) else {
                tracing::warn!(notification_id = %u.notification_id, "NotificationUpdated with an id that is not a UUID: skipped");
                return Ok(0);
            };
            let (failure_kind, next_attempt_at) = promise_of(
                NotificationKind::SyncInterrupted.code(),
                u.failure_kind,
                u.next_attempt_at
                    .as_ref()
                    .and_then(rp_platform::contracts::from_timestamp),
            );
            sqlx::query(
                "UPDATE notifications SET title = $3, body = $4, action = $5, failure_kind = $6, \
                     next_attempt_at = $7, updated_at = $8 \
                 WHERE workspace_id = $1 AND notification_id = $2",
            )
            .bind(ws)
            .bind(id)
            .bind(&u.title)
            .bind(&u.body)
            .bind(&u.action)
            .bind(failure_kind)
            .bind(next_attempt_at)
            .bind(occurred_at)
            .execute(conn)
            .await?
        }
        Event::NotificationResolved(r) => {
            let Ok(id) = Uuid::parse_str(&r.notification_id) else {
                return Ok(0);
            };
            sqlx::query(
                "UPDATE notifications SET resolved_at = $3 \
                 WHERE workspace_id = $1 AND notification_id = $2 AND resolved_at IS NULL",
            )
            .bind(ws)
            .bind(id)
            .bind(occurred_at)
            .execute(conn)
            .await?
        }
        Event::NotificationsRead(r) if r.notification_ids.is_empty() => {
            sqlx::query(
                "UPDATE notifications SET read_at = $2 WHERE workspace_id = $1 AND read_at IS NULL",
            )
            .bind(ws)
            .bind(occurred_at)
            .execute(conn)
            .await?
        }
        Event::NotificationsRead(r) => {
            let ids: Vec<Uuid> = r
                .notification_ids
                .iter()
                .filter_map(|s| Uuid::parse_str(s).ok())
                .collect();
            sqlx::query(
                "UPDATE notifications SET read_at = $3 \
                 WHERE workspace_id = $1 AND notification_id = ANY($2) AND read_at IS NULL",
            )
            .bind(ws)
            .bind(&ids)
            .bind(occurred_at)
            .execute(conn)
            .await?
        }
        _ => return Ok(0),
    };
    Ok(done.rows_affected())
}

/// The promise columns of a notification of kind `kind` from its event's fields: only an
/// interruption promises anything.
fn promise_of(
    kind: &str,
    failure_kind: i32,
    next_attempt_at: Option<DateTime<Utc>>,
) -> (Option<&'static str>, Option<DateTime<Utc>>) {
    if NotificationKind::from_code(kind) != Some(NotificationKind::SyncInterrupted) {
        return (None, None);
    }
    let kind = match ev::FailureKind::try_from(failure_kind) {
        Ok(ev::FailureKind::ProviderOutage) => FailureKind::ProviderOutage,
        Ok(ev::FailureKind::BadPayload) => FailureKind::BadPayload,
        Ok(ev::FailureKind::Authorization) => FailureKind::Authorization,
        Ok(ev::FailureKind::RateLimited) => FailureKind::RateLimited,
        Ok(ev::FailureKind::Internal) => FailureKind::Internal,
        Ok(ev::FailureKind::ApiVersion) => FailureKind::ApiVersion,
        Ok(ev::FailureKind::Stalled) => FailureKind::Stalled,
        Ok(ev::FailureKind::Unspecified) | Err(_) => FailureKind::Unspecified,
    };
    (Some(kind.code()), next_attempt_at)
}

// ---- Queries -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRow {
    pub notification_id: Uuid,
    pub workspace_id: Uuid,
    pub integration_id: String,
    pub provider: String,
    pub incident_key: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub action: String,
    pub link: String,
    pub resolves_notification_id: Option<Uuid>,
    pub raised_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl NotificationRow {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            raised_at: self.raised_at,
            notification_id: self.notification_id,
        }
    }
}

/// Where a page ends: the last row's sort key (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub raised_at: DateTime<Utc>,
    pub notification_id: Uuid,
}

/// A page of a workspace's notifications, newest first, after `after`; and the cursor of the
/// next page when there is one.
pub async fn list(
    pool: &PgPool,
    workspace_id: WorkspaceId,
    unread_only: bool,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<NotificationRow>, Option<Cursor>), StoreError> {
    let mut rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT notification_id, workspace_id, integration_id, provider, incident_key, kind, \
             title, body, action, link, resolves_notification_id, raised_at, read_at, resolved_at, \
             updated_at \
         FROM notifications \
         WHERE workspace_id = $1 \
           AND (NOT $2 OR read_at IS NULL) \
           AND ($3::timestamptz IS NULL OR (raised_at, notification_id) < ($3, $4)) \
         ORDER BY raised_at DESC, notification_id DESC \
         LIMIT $5",
    )
    .bind(workspace_id.as_uuid())
    .bind(unread_only)
    .bind(after.map(|c| c.raised_at))
    .bind(after.map(|c| c.notification_id))
    .bind(limit.saturating_add(1))
    .fetch_all(pool)
    .await?;
    let more = usize::try_from(limit).is_ok_and(|l| rows.len() > l);
    if more {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
    }
    let next = if more {
        rows.last().map(NotificationRow::cursor)
    } else {
        None
    };
    Ok((rows, next))
}

/// One notification of the workspace, as List shows it.
pub async fn get(
    pool: &PgPool,
    workspace_id: WorkspaceId,
    notification_id: Uuid,
) -> Result<Option<NotificationRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT notification_id, workspace_id, integration_id, provider, incident_key, kind, \
             title, body, action, link, resolves_notification_id, raised_at, read_at, resolved_at, \
             updated_at \
         FROM notifications WHERE workspace_id = $1 AND notification_id = $2",
    )
    .bind(workspace_id.as_uuid())
    .bind(notification_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn unread_count(pool: &PgPool, workspace_id: WorkspaceId) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE workspace_id = $1 AND read_at IS NULL",
    )
    .bind(workspace_id.as_uuid())
    .fetch_one(pool)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkRead {
    Marked,
    AlreadyRead,
    NotFound,
}

/// Marks one notification read: appends NotificationsRead and applies it in one transaction;
/// nothing is appended when it was read already.
pub async fn mark_read(
    pool: &PgPool,
    workspace_id: WorkspaceId,
    notification_id: Uuid,
) -> Result<MarkRead, StoreError> {
    let state: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT read_at FROM notifications WHERE workspace_id = $1 AND notification_id = $2",
    )
    .bind(workspace_id.as_uuid())
    .bind(notification_id)
    .fetch_optional(pool)
    .await?;
    match state {
        None => return Ok(MarkRead::NotFound),
        Some(Some(_)) => return Ok(MarkRead::AlreadyRead),
        Some(None) => {}
    }
    let marked = append_read(pool, workspace_id, vec![notification_id.to_string()]).await?;
    Ok(if marked > 0 {
        MarkRead::Marked
    } else {
        MarkRead::AlreadyRead
    })
}

/// Marks every notification of the workspace raised so far read; returns how many it marked.
pub async fn mark_all_read(pool: &PgPool, workspace_id: WorkspaceId) -> Result<u64, StoreError> {
    if unread_count(pool, workspace_id).await? == 0 {
        return Ok(0);
    }
    append_read(pool, workspace_id, Vec::new()).await
}

/// Appends NotificationsRead, then applies it (after the append: see the module docs); rolls
/// back, appending nothing, when it changed nothing (someone else read them meanwhile).
async fn append_read(
    pool: &PgPool,
    workspace_id: WorkspaceId,
    notification_ids: Vec<String>,
) -> Result<u64, StoreError> {
    let event = NewEvent::new(
        workspace_id.to_string(),
        Event::NotificationsRead(NotificationsRead { notification_ids }),
    );
    let (occurred_at, body) = (event.occurred_at, event.event.clone());
    let mut tx = pool.begin().await?;
    eventlog::append_in(
        &mut tx,
        &workspace_id.notifications_stream(),
        ExpectedVersion::Any,
        vec![event],
    )
    .await?;
    let marked = apply(&mut tx, workspace_id, "", occurred_at, &body).await?;
    if marked == 0 {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(marked)
}

// ---- Rebuild -------------------------------------------------------------------------------

/// What [`rebuild`] replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub notifications: i64,
    pub integrations: i64,
    pub last_position: i64,
}

/// The event types the projection is made of.
const REBUILD_TYPES: &[&str] = &[
    "NotificationRaised",
    "NotificationUpdated",
    "NotificationResolved",
    "NotificationsRead",
    "ConnectionConnected",
    "ConnectionReconnected",
    "ConnectionDisconnected",
    "SyncStarted",
];

/// Empties the projection and replays it from the log: the `notifications-*` streams for the
/// notifications (never re-deciding them), the connection events for the providers. One
/// transaction holding the tables in EXCLUSIVE mode, so the live handler and API wait for it
/// (and then carry on from the rebuilt state) instead of interleaving with it.
pub async fn rebuild(pool: &PgPool) -> Result<RebuildReport, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE notifications, notification_integrations IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM notifications")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM notification_integrations")
        .execute(&mut *tx)
        .await?;
    let mut report = RebuildReport::default();
    let filter = ReadFilter {
        event_types: REBUILD_TYPES.iter().map(|s| s.to_string()).collect(),
        workspace_id: None,
    };
    loop {
        let page =
            eventlog::read_range_in(&mut tx, report.last_position, i64::MAX, 1000, &filter).await?;
        if page.is_empty() {
            break;
        }
        for recorded in page {
            let position = recorded.position;
            report.last_position = position;
            report.events += 1;
            let (Some(meta), Some(event)) = (recorded.envelope.meta, recorded.envelope.event)
            else {
                continue;
            };
            let Ok(ws) = WorkspaceId::parse(&meta.workspace_id) else {
                tracing::warn!(position, "event without a workspace UUID: skipped");
                continue;
            };
            if let Some(p) = provider_in(&event) {
                if !meta.integration_id.is_empty() {
                    learn_provider(&mut tx, &meta.integration_id, ws, p).await?;
                }
                continue;
            }
            let occurred_at = meta
                .occurred_at
                .as_ref()
                .and_then(rp_platform::contracts::from_timestamp)
                .unwrap_or_default();
            apply(&mut tx, ws, &meta.integration_id, occurred_at, &event).await?;
        }
    }
    report.notifications = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut *tx)
        .await?;
    report.integrations = sqlx::query_scalar("SELECT count(*) FROM notification_integrations")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        events = report.events,
        notifications = report.notifications,
        "notification projection rebuilt from the log"
    );
    Ok(report)
}
