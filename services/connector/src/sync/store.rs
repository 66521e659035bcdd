//! The sync projection's tables: the only writer of `sync_integrations`, `sync_runs` and
//! `sync_run_steps`, and their readers for the API and the scheduler.
//!
//! A run's row is written whole from the aggregate ([`SyncRun`]) after each of its events, so the
//! state rules live in `domain.rs` alone; SQL knows a state only as [`RunState::name`].

use super::domain::{ConnectionFacts, RunState, SyncRun};
use super::schedule::DailySchedule;
use chrono::{DateTime, Utc};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::envelope::Event;
use rp_platform::contracts::events::v1::{ConnectionDisconnected, SyncStep};
use rp_platform::contracts::timestamp;
use rp_platform::eventlog::{self, ReadError};
use rp_platform::ids::{IntegrationId, SyncRunId, WorkspaceId};
use rp_platform::provider::Provider;
use sqlx::{PgConnection, PgPool};

/// The PostgreSQL NOTIFY channel that tells watchers a workspace's health changed.
pub const HEALTH_CHANNEL: &str = "sync_health";

/// Tells the workspace's health watchers that something changed (delivered at commit).
pub async fn notify(conn: &mut PgConnection, workspace: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(HEALTH_CHANNEL)
        .bind(workspace)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---- From the log ---------------------------------------------------------------------------

/// The connection's current state and workspace, from its stream: the source of truth, not a
/// projection. `None` when the integration was never connected.
pub async fn connection_facts(
    conn: &mut PgConnection,
    integration: IntegrationId,
) -> Result<Option<(WorkspaceId, ConnectionFacts)>, ReadError> {
    let events = eventlog::read_whole_stream_in(conn, &integration.connection_stream()).await?;
    let Some(facts) = ConnectionFacts::fold(events.iter().filter_map(|e| e.event())) else {
        return Ok(None);
    };
    let workspace = events
        .iter()
        .rev()
        .find_map(|e| WorkspaceId::parse(e.workspace_id()).ok());
    Ok(workspace.map(|ws| (ws, facts)))
}

/// A run as its stream says, up to and including a version.
#[derive(Debug, Clone, Default)]
pub struct LoadedRun {
    /// The run before the last event read, so a handler sees the transition its event made.
    pub before: SyncRun,
    pub after: SyncRun,
    /// The integration and workspace its first event names.
    pub integration: String,
    pub workspace: String,
}

/// Loads the run from its stream, up to and including `up_to_version` (`i64::MAX`: all).
pub async fn load_run(
    conn: &mut PgConnection,
    run: &SyncRunId,
    up_to_version: i64,
) -> Result<LoadedRun, ReadError> {
    let events = eventlog::read_stream_in(conn, &run.run_stream(), 1, up_to_version).await?;
    let mut loaded = LoadedRun::default();
    for e in &events {
        let Some(ev) = e.event() else { continue };
        if loaded.integration.is_empty() {
            loaded.integration = e.meta().integration_id.clone();
            loaded.workspace = e.meta().workspace_id.clone();
        }
        loaded.before = loaded.after.clone();
        loaded.after = super::domain::apply(loaded.after.clone(), ev, occurred_at(e));
    }
    Ok(loaded)
}

/// The provider number the integration's row knows (0 when none yet).
pub async fn integration_provider(
    conn: &mut PgConnection,
    integration: &str,
) -> Result<i32, sqlx::Error> {
    Ok(
        sqlx::query_scalar("SELECT provider FROM sync_integrations WHERE integration_id = $1")
            .bind(integration)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or(0),
    )
}

/// When an event happened: its own time, else when the log recorded it.
pub fn occurred_at(e: &eventlog::RecordedEvent) -> DateTime<Utc> {
    e.meta()
        .occurred_at
        .as_ref()
        .and_then(rp_platform::contracts::from_timestamp)
        .unwrap_or(e.recorded_at)
}

// ---- Integrations ---------------------------------------------------------------------------

/// Makes sure the integration has a row (a command may run before the projection caught up).
pub async fn ensure_integration(
    conn: &mut PgConnection,
    integration: IntegrationId,
    workspace: WorkspaceId,
    facts: &ConnectionFacts,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let id = integration.to_string();
    let schedule = DailySchedule::default_for(&id, facts.provider);
    sqlx::query(
        "INSERT INTO sync_integrations (integration_id, workspace_id, provider, connected, \
             schedule_local_time, schedule_time_zone, handled_slot) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (integration_id) DO NOTHING",
    )
    .bind(&id)
    .bind(workspace.to_string())
    .bind(facts.provider.map_or(0, |p| p.to_event() as i32))
    .bind(facts.connected)
    .bind(schedule.local_time_string())
    .bind(schedule.zone_name())
    .bind(schedule.last_slot_at_or_before(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the integration's row and returns its active run: every request of a sync goes through
/// here, so two never start concurrent runs, whatever the number of replicas.
pub async fn lock_active_run(
    conn: &mut PgConnection,
    integration: IntegrationId,
) -> Result<Option<SyncRunId>, sqlx::Error> {
    let active: Option<Option<String>> = sqlx::query_scalar(
        "SELECT active_run_id FROM sync_integrations WHERE integration_id = $1 FOR UPDATE",
    )
    .bind(integration.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(active.flatten().and_then(|r| SyncRunId::parse(&r).ok()))
}

/// Connected (or reconnected): syncing resumes from the next slot, never replaying the days it
/// was disconnected (the checkpoints make that sync pull everything since the last one).
pub async fn set_connected(
    conn: &mut PgConnection,
    integration: IntegrationId,
    provider: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if matches!(
        latest_connection_event(conn, integration).await?,
        Some(Event::ConnectionDisconnected(_))
    ) {
        // A later disconnection is already in the log (and, written with it, in this row).
        return Ok(());
    }
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT schedule_local_time, schedule_time_zone FROM sync_integrations WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let slot = row
        .and_then(|(t, z)| DailySchedule::parse(&t, &z).ok())
        .map(|s| s.last_slot_at_or_before(now));
    sqlx::query(
        "UPDATE sync_integrations SET connected = true, provider = $2, disconnect_reason = 0, provider_message = '', \
         handled_slot = GREATEST(handled_slot, $3), catch_up_at = NULL, updated_at = now() WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .bind(provider)
    .bind(slot)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn set_disconnected(
    conn: &mut PgConnection,
    integration: IntegrationId,
    d: &ConnectionDisconnected,
) -> Result<(), sqlx::Error> {
    match latest_connection_event(conn, integration).await? {
        Some(Event::ConnectionDisconnected(latest)) if latest != *d => return Ok(()),
        Some(Event::ConnectionConnected(_) | Event::ConnectionReconnected(_)) => return Ok(()),
        // This disconnection is the connection's latest word (or the log has none: a caller
        // that did not append one).
        _ => {}
    }
    sqlx::query(
        "UPDATE sync_integrations SET connected = false, provider = $2, disconnect_reason = $3, provider_message = $4, \
         catch_up_at = NULL, updated_at = now() WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .bind(d.provider)
    .bind(d.reason)
    .bind(&d.provider_message)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the integration's row, then reads the connection's latest ConnectionConnected /
/// ConnectionReconnected / ConnectionDisconnected from its stream (the truth). [`set_connected`]
/// and [`set_disconnected`] apply an event only while it is still that latest word, so the
/// orchestrator catching up on an older event never undoes a later one the connector already
/// wrote (see [`project_connection`]). The lock comes first: a connector transaction that
/// appended a later event holds it until it commits, and the read after it sees that event.
async fn latest_connection_event(
    conn: &mut PgConnection,
    integration: IntegrationId,
) -> Result<Option<Event>, sqlx::Error> {
    lock_active_run(conn, integration).await?;
    let events = eventlog::read_whole_stream_in(conn, &integration.connection_stream())
        .await
        .map_err(|e| match e {
            ReadError::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    Ok(events
        .iter()
        .rev()
        .filter_map(|e| e.event())
        .find(|e| ConnectionFacts::of(e).is_some())
        .cloned())
}

/// Makes sure the integration has a row and locks it, before the caller appends a connection
/// event it will [`project_connection`]: every command takes the row's lock before the log's
/// append lock (as a sync request does), so the two never wait on each other in opposite orders.
pub async fn lock_integration(
    conn: &mut PgConnection,
    integration: IntegrationId,
    workspace: WorkspaceId,
    facts: &ConnectionFacts,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    ensure_integration(conn, integration, workspace, facts, now).await?;
    lock_active_run(conn, integration).await?;
    Ok(())
}

/// Writes a connection event into the health projection in the transaction that appends it (the
/// connector's connect, reconnect and disconnect; after [`lock_integration`] and the append), and
/// tells the health watchers, so whoever acted reads their action at once. The orchestrator
/// applies the same event later through the same functions, which then change nothing. Other
/// events are ignored.
pub async fn project_connection(
    conn: &mut PgConnection,
    integration: IntegrationId,
    workspace: WorkspaceId,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Some(facts) = ConnectionFacts::of(event) else {
        return Ok(());
    };
    ensure_integration(conn, integration, workspace, &facts, now).await?;
    match event {
        Event::ConnectionDisconnected(d) => set_disconnected(conn, integration, d).await?,
        _ => {
            let provider = facts.provider.map_or(0, |p| p.to_event() as i32);
            set_connected(conn, integration, provider, now).await?
        }
    }
    notify(conn, &workspace.to_string()).await
}

/// A new daily time, applying from the next slot: changing it never fires a catch-up.
pub async fn set_schedule(
    conn: &mut PgConnection,
    integration: IntegrationId,
    schedule: &DailySchedule,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_integrations SET schedule_local_time = $2, schedule_time_zone = $3, \
         handled_slot = GREATEST(handled_slot, $4), catch_up_at = NULL, updated_at = now() \
         WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .bind(schedule.local_time_string())
    .bind(schedule.zone_name())
    .bind(schedule.last_slot_at_or_before(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A connected integration as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub integration: IntegrationId,
    pub workspace: String,
    pub provider: Option<Provider>,
    pub schedule: DailySchedule,
    pub handled_slot: Option<DateTime<Utc>>,
    pub catch_up_at: Option<DateTime<Utc>>,
    /// A run of it is live (requested or running).
    pub running: bool,
}

/// Every connected integration with a valid schedule.
pub async fn connected_integrations(pool: &PgPool) -> Result<Vec<Scheduled>, sqlx::Error> {
    type Row = (
        String,
        String,
        i32,
        String,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT integration_id, workspace_id, provider, schedule_local_time, schedule_time_zone, handled_slot, \
                catch_up_at, active_run_id IS NOT NULL \
         FROM sync_integrations WHERE connected ORDER BY integration_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(id, workspace, provider, t, z, handled_slot, catch_up_at, running)| {
                Some(Scheduled {
                    integration: IntegrationId::parse(&id).ok()?,
                    workspace,
                    provider: Provider::from_event(provider),
                    schedule: DailySchedule::parse(&t, &z).ok()?,
                    handled_slot,
                    catch_up_at,
                    running,
                })
            },
        )
        .collect())
}

/// Remembers when a missed slot's catch-up is due (the first replica to notice decides).
pub async fn set_catch_up_at(
    pool: &PgPool,
    integration: IntegrationId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_integrations SET catch_up_at = $2 WHERE integration_id = $1 AND catch_up_at IS NULL",
    )
    .bind(integration.to_string())
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes the slot under the integration's row lock: true when this caller is the one to handle
/// it (still connected and not handled yet), which it then is, in the caller's transaction.
pub async fn claim_slot(
    conn: &mut PgConnection,
    integration: IntegrationId,
    slot: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let still_due: Option<bool> = sqlx::query_scalar(
        "SELECT connected AND (handled_slot IS NULL OR handled_slot < $2) FROM sync_integrations \
         WHERE integration_id = $1 FOR UPDATE",
    )
    .bind(integration.to_string())
    .bind(slot)
    .fetch_optional(&mut *conn)
    .await?;
    if still_due != Some(true) {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE sync_integrations SET handled_slot = $2, catch_up_at = NULL WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .bind(slot)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// The next time the integration syncs by itself, if it does (connected).
pub async fn next_scheduled_sync(
    pool: &PgPool,
    integration: IntegrationId,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let row: Option<(bool, String, String)> = sqlx::query_as(
        "SELECT connected, schedule_local_time, schedule_time_zone FROM sync_integrations WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(connected, t, z)| {
        let s = DailySchedule::parse(&t, &z).ok()?;
        connected.then(|| s.next_slot_after(now))
    }))
}

// ---- Runs -----------------------------------------------------------------------------------

/// Where a run belongs.
#[derive(Debug, Clone, Copy)]
pub struct RunOwner<'a> {
    pub integration: &'a str,
    pub workspace: &'a str,
    pub provider: i32,
}

/// Writes the run's row and steps from the aggregate after one of its events (`before` →
/// `after`), and what the transition means for its integration: a new run is the attempt the
/// page shows at once; a finished one is the last outcome and frees the integration.
pub async fn project_run(
    conn: &mut PgConnection,
    owner: RunOwner<'_>,
    before: &SyncRun,
    after: &SyncRun,
) -> Result<(), sqlx::Error> {
    let Some(run) = after.id.as_ref() else {
        return Ok(());
    };
    let Some(requested_at) = after
        .requested_at
        .or(after.started_at)
        .or(after.finished_at)
    else {
        // Only step reports so far: the row comes with the request.
        return Ok(());
    };
    // What the metrics count of this transition, less what the rows already showed (the same
    // transition is projected more than once).
    let mut seen = super::metrics::observe(before, after);
    if !seen.is_empty() {
        let (state, completed) = projected(conn, run).await?;
        seen = seen.already_projected(state.as_deref(), &completed);
    }
    let failure = after.failure.as_ref();
    sqlx::query(
        "INSERT INTO sync_runs (sync_run_id, integration_id, workspace_id, provider, trigger, state, current_step, \
             failure_kind, failure_message, failure_location, next_attempt_at, requested_at, started_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (sync_run_id) DO UPDATE SET provider = GREATEST(sync_runs.provider, EXCLUDED.provider), \
             trigger = EXCLUDED.trigger, state = EXCLUDED.state, current_step = EXCLUDED.current_step, \
             failure_kind = EXCLUDED.failure_kind, failure_message = EXCLUDED.failure_message, \
             failure_location = EXCLUDED.failure_location, next_attempt_at = EXCLUDED.next_attempt_at, \
             requested_at = EXCLUDED.requested_at, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at",
    )
    .bind(run.as_str())
    .bind(owner.integration)
    .bind(owner.workspace)
    .bind(owner.provider)
    .bind(after.trigger as i32)
    .bind(after.state.name())
    .bind(after.last_step as i32)
    .bind(failure.map_or(0, |f| f.kind as i32))
    .bind(failure.map_or("", |f| f.message.as_str()))
    .bind(failure.map_or("", |f| f.location.as_str()))
    .bind(failure.and_then(|f| f.next_attempt_at))
    .bind(requested_at)
    .bind(after.started_at)
    .bind(after.finished_at)
    .execute(&mut *conn)
    .await?;
    for s in &after.steps {
        if before.steps.contains(s) {
            continue;
        }
        sqlx::query(
            "INSERT INTO sync_run_steps (sync_run_id, step, started_at, completed_at, records) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sync_run_id, step) DO UPDATE SET started_at = EXCLUDED.started_at, \
                 completed_at = EXCLUDED.completed_at, records = EXCLUDED.records",
        )
        .bind(run.as_str())
        .bind(s.step as i32)
        .bind(s.started_at)
        .bind(s.completed_at)
        .bind(s.records)
        .execute(&mut *conn)
        .await?;
    }
    if before.state == RunState::NotRequested && after.state.is_live() {
        sqlx::query(
            "UPDATE sync_integrations SET last_attempt_at = $2, last_outcome = $3, \
             active_run_id = COALESCE(active_run_id, $4), updated_at = now() WHERE integration_id = $1",
        )
        .bind(owner.integration)
        .bind(requested_at)
        .bind(after.state.outcome())
        .bind(run.as_str())
        .execute(&mut *conn)
        .await?;
    }
    if !before.state.is_finished() && after.state.is_finished() {
        sqlx::query(
            "UPDATE sync_integrations SET last_outcome = $2, \
                 last_success_at = CASE WHEN $3 THEN $4 ELSE last_success_at END, \
                 active_run_id = CASE WHEN active_run_id = $5 THEN NULL ELSE active_run_id END, updated_at = now() \
             WHERE integration_id = $1",
        )
        .bind(owner.integration)
        .bind(after.state.outcome())
        .bind(after.state == RunState::Completed)
        .bind(after.finished_at)
        .bind(run.as_str())
        .execute(&mut *conn)
        .await?;
    }
    super::metrics::record(owner.provider, &seen);
    Ok(())
}

/// The run's row as projected so far: its state name (if it has a row) and its completed steps.
async fn projected(
    conn: &mut PgConnection,
    run: &SyncRunId,
) -> Result<(Option<String>, Vec<SyncStep>), sqlx::Error> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM sync_runs WHERE sync_run_id = $1")
            .bind(run.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let steps: Vec<i32> = sqlx::query_scalar(
        "SELECT step FROM sync_run_steps WHERE sync_run_id = $1 AND completed_at IS NOT NULL",
    )
    .bind(run.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let steps = steps
        .into_iter()
        .filter_map(|s| SyncStep::try_from(s).ok())
        .collect();
    Ok((state, steps))
}

/// Makes the run the integration's active one (a request that started it).
pub async fn set_active_run(
    conn: &mut PgConnection,
    integration: IntegrationId,
    run: &SyncRunId,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_integrations SET active_run_id = $2 WHERE integration_id = $1")
        .bind(integration.to_string())
        .bind(run.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---- Reads for the API ----------------------------------------------------------------------

type HealthRow = (
    String,
    i32,
    bool,
    i32,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<i32>,
);

/// The health of one workspace's integrations at `now`.
pub async fn workspace_health(
    pool: &PgPool,
    workspace: WorkspaceId,
    now: DateTime<Utc>,
) -> Result<api::ConnectionHealth, sqlx::Error> {
    let rows: Vec<HealthRow> = sqlx::query_as(
        "SELECT i.integration_id, i.provider, i.connected, i.disconnect_reason, i.provider_message, \
                i.schedule_local_time, i.schedule_time_zone, i.last_success_at, i.last_attempt_at, \
                i.last_outcome, i.active_run_id, i.catch_up_at, r.current_step \
         FROM sync_integrations i LEFT JOIN sync_runs r ON r.sync_run_id = i.active_run_id \
         WHERE i.workspace_id = $1 ORDER BY i.provider, i.integration_id",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await?;
    let integrations = rows
        .into_iter()
        .map(
            |(
                id,
                provider,
                connected,
                reason,
                message,
                t,
                z,
                success,
                attempt,
                outcome,
                active,
                catch_up,
                step,
            )| {
                let schedule = DailySchedule::parse(&t, &z).ok();
                let next = if connected {
                    catch_up.or_else(|| schedule.map(|s| s.next_slot_after(now)))
                } else {
                    None
                };
                api::IntegrationHealth {
                    integration_id: id,
                    provider,
                    status: if connected {
                        api::ConnectionStatus::Connected
                    } else {
                        api::ConnectionStatus::Disconnected
                    } as i32,
                    disconnect_reason: if connected {
                        String::new()
                    } else {
                        disconnect_reason_words(reason, provider)
                    },
                    provider_message: if connected { String::new() } else { message },
                    last_successful_sync_at: success.map(timestamp),
                    last_attempt_at: attempt.map(timestamp),
                    last_attempt_outcome: outcome,
                    next_scheduled_sync_at: next.map(timestamp),
                    schedule_local_time: t,
                    schedule_time_zone: z,
                    running_sync_run_id: active.unwrap_or_default(),
                    current_step: step.unwrap_or(0),
                }
            },
        )
        .collect();
    Ok(api::ConnectionHealth {
        workspace_id: workspace.to_string(),
        integrations,
    })
}

/// Why an integration is disconnected, in words for the page.
pub fn disconnect_reason_words(reason: i32, provider: i32) -> String {
    use rp_platform::contracts::events::v1::DisconnectReason;
    let p = rp_platform::provider::display_name_of_event(provider);
    match DisconnectReason::try_from(reason) {
        Ok(DisconnectReason::UserRequested) => "Disconnected by a user of this workspace".into(),
        Ok(DisconnectReason::AuthorizationRevoked) => format!("Access was revoked in {p}"),
        Ok(DisconnectReason::AuthorizationExpired) => format!("The authorization with {p} expired"),
        Ok(DisconnectReason::AuthorizationExpiredOrRevoked) => {
            format!("The authorization with {p} expired or was revoked")
        }
        _ => String::new(),
    }
}

type RunRow = (
    String,
    String,
    i32,
    i32,
    String,
    i32,
    i32,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
);

const RUN_COLUMNS: &str = "sync_run_id, integration_id, provider, trigger, state, current_step, failure_kind, \
     failure_message, failure_location, requested_at, started_at, finished_at, next_attempt_at, workspace_id";

/// A run with its steps, as the API shows it, and its workspace.
pub async fn get_run(
    pool: &PgPool,
    run: &SyncRunId,
) -> Result<Option<(WorkspaceId, api::SyncRun)>, sqlx::Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE sync_run_id = $1");
    let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(run.as_str())
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let Ok(ws) = WorkspaceId::parse(&row.13) else {
        return Ok(None);
    };
    Ok(Some((ws, with_steps(pool, row).await?)))
}

/// Where a page of runs starts: after this run (newest first).
pub type RunCursor = (DateTime<Utc>, String);

/// The integration's runs, newest first, at most `limit` after `after`; and whether more follow.
pub async fn list_runs(
    pool: &PgPool,
    integration: IntegrationId,
    after: Option<RunCursor>,
    limit: i64,
) -> Result<(Vec<api::SyncRun>, bool), sqlx::Error> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE integration_id = $1 \
         AND ($2::timestamptz IS NULL OR (requested_at, sync_run_id) < ($2, $3)) \
         ORDER BY requested_at DESC, sync_run_id DESC LIMIT $4"
    );
    let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(integration.to_string())
        .bind(after.as_ref().map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or_default())
        .bind(limit + 1)
        .fetch_all(pool)
        .await?;
    let more = rows.len() as i64 > limit;
    let mut runs = Vec::new();
    for row in rows.into_iter().take(limit as usize) {
        runs.push(with_steps(pool, row).await?);
    }
    Ok((runs, more))
}

async fn with_steps(pool: &PgPool, r: RunRow) -> Result<api::SyncRun, sqlx::Error> {
    type StepRow = (i32, DateTime<Utc>, Option<DateTime<Utc>>, i64);
    let steps: Vec<StepRow> = sqlx::query_as(
        "SELECT step, started_at, completed_at, records FROM sync_run_steps WHERE sync_run_id = $1 ORDER BY started_at, step",
    )
    .bind(&r.0)
    .fetch_all(pool)
    .await?;
    Ok(api::SyncRun {
        sync_run_id: r.0,
        integration_id: r.1,
        provider: r.2,
        trigger: r.3,
        state: r.4,
        current_step: r.5,
        failure_kind: r.6,
        failure_message: r.7,
        failure_location: r.8,
        requested_at: Some(timestamp(r.9)),
        started_at: r.10.map(timestamp),
        finished_at: r.11.map(timestamp),
        next_attempt_at: r.12.map(timestamp),
        workspace_id: r.13,
        steps: steps
            .into_iter()
            .map(|(step, s, c, n)| api::SyncRunStep {
                step,
                started_at: Some(timestamp(s)),
                completed_at: c.map(timestamp),
                records: n.max(0) as u64,
            })
            .collect(),
    })
}
