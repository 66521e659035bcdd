//! Sync runs: the event-sourced state machine of each sync, Sync Now, and the daily scheduler.
//!
//! A run lives in the stream `syncrun-<id>`: SyncRequested → SyncStarted → SyncStepStarted /
//! PullCompleted / CompaniesResolved / AccountsMatched / AttributionUpdated → SyncCompleted, or
//! SyncFailed at any step. The orchestrator consumer keeps the `sync_runs`, `sync_run_steps` and
//! `sync_integrations` projection (the Connections page's health) and closes each run: when the
//! attribution step reports AttributionUpdated it appends SyncCompleted.
//!
//! Never two concurrent runs of one integration: Sync Now and the scheduler both go through
//! [`request_sync_in`], which locks the integration's row and joins the active run if there is
//! one, so this holds across replicas.

use crate::schedule::{self, Clock, DailySchedule, Due};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use prost::Message;
use rp_platform::consumer::{Handler, HandlerContext, HandlerError};
use rp_platform::contracts::events::v1::{
    ConnectionDisconnected, DisconnectReason, Envelope, FailureKind, Provider, SyncCompleted,
    SyncFailed, SyncRequested, SyncStep, SyncTrigger, envelope::Event,
};
use rp_platform::contracts::{from_timestamp, timestamp};
use rp_platform::eventlog::{self, AppendError, ExpectedVersion, NewEvent, RecordedEvent};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The events the orchestrator consumes.
pub const EVENT_TYPES: &[&str] = &[
    "ConnectionConnected",
    "ConnectionReconnected",
    "ConnectionDisconnected",
    "SyncScheduleSet",
    "SyncRequested",
    "SyncStarted",
    "SyncStepStarted",
    "PullCompleted",
    "CompaniesResolved",
    "AccountsMatched",
    "AttributionUpdated",
    "SyncCompleted",
    "SyncFailed",
];

/// The PostgreSQL NOTIFY channel that tells watchers a workspace's health changed.
pub const HEALTH_CHANNEL: &str = "sync_health";

/// A run that has not finished after this long is considered abandoned (its process died and
/// nobody resumed it): the next request fails it and starts afresh.
pub const MAX_RUN_AGE: ChronoDuration = ChronoDuration::hours(3);

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no integration {0}")]
    NotFound(String),
    #[error("integration {integration_id} belongs to another workspace")]
    OtherWorkspace { integration_id: String },
    #[error("{provider} is disconnected: reconnect it on the Connections page to sync again")]
    Disconnected { provider: &'static str },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The provider's name as people read it.
pub fn provider_name(p: i32) -> &'static str {
    match Provider::try_from(p) {
        Ok(Provider::Linkedin) => "LinkedIn",
        Ok(Provider::Hubspot) => "HubSpot",
        Ok(Provider::Salesforce) => "Salesforce",
        _ => "The integration",
    }
}

/// What the log says about a connection right now (the last Connection* event).
#[derive(Debug, Clone)]
pub struct ConnectionFacts {
    pub workspace_id: String,
    pub provider: i32,
    pub connected: bool,
}

/// Reads the connection's current state from its stream: the source of truth, not a projection.
pub async fn connection_facts(
    conn: &mut PgConnection,
    integration_id: &str,
) -> Result<Option<ConnectionFacts>, sqlx::Error> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE stream_id = $1 \
         AND event_type IN ('ConnectionConnected', 'ConnectionReconnected', 'ConnectionDisconnected') \
         ORDER BY version",
    )
    .bind(format!("connection-{integration_id}"))
    .fetch_all(&mut *conn)
    .await?;
    let mut facts: Option<ConnectionFacts> = None;
    for payload in rows {
        let Ok(env) = Envelope::decode(payload.as_slice()) else {
            continue;
        };
        let ws = env
            .meta
            .as_ref()
            .map(|m| m.workspace_id.clone())
            .unwrap_or_default();
        match env.event {
            Some(Event::ConnectionConnected(c)) => {
                facts = Some(ConnectionFacts {
                    workspace_id: ws,
                    provider: c.provider,
                    connected: true,
                })
            }
            Some(Event::ConnectionReconnected(c)) => {
                facts = Some(ConnectionFacts {
                    workspace_id: ws,
                    provider: c.provider,
                    connected: true,
                })
            }
            Some(Event::ConnectionDisconnected(c)) => {
                facts = Some(ConnectionFacts {
                    workspace_id: ws,
                    provider: c.provider,
                    connected: false,
                })
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// Who asks for a sync.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub integration_id: String,
    /// `Some(ws)`: the caller acts for this workspace only.
    pub caller_workspace: Option<String>,
    pub trigger: SyncTrigger,
    pub requested_by: String,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// The run a request started or joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub sync_run_id: String,
    pub joined_running: bool,
}

/// Starts a sync of the integration, or joins the one running. Returns at once: the run itself
/// happens in the background (the connector's pull workers and the downstream services).
pub async fn request_sync(
    pool: &PgPool,
    req: &SyncRequest,
    now: DateTime<Utc>,
) -> Result<Requested, RequestError> {
    let mut tx = pool.begin().await?;
    let r = request_sync_in(&mut tx, req, now).await?;
    tx.commit().await?;
    Ok(r)
}

/// [`request_sync`] inside the caller's transaction.
pub async fn request_sync_in(
    conn: &mut PgConnection,
    req: &SyncRequest,
    now: DateTime<Utc>,
) -> Result<Requested, RequestError> {
    let facts = connection_facts(conn, &req.integration_id)
        .await?
        .ok_or_else(|| RequestError::NotFound(req.integration_id.clone()))?;
    if req
        .caller_workspace
        .as_ref()
        .is_some_and(|w| *w != facts.workspace_id)
    {
        return Err(RequestError::OtherWorkspace {
            integration_id: req.integration_id.clone(),
        });
    }
    if !facts.connected {
        return Err(RequestError::Disconnected {
            provider: provider_name(facts.provider),
        });
    }
    ensure_integration(conn, &req.integration_id, &facts, now).await?;
    let active: Option<(Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT i.active_run_id, r.requested_at FROM sync_integrations i \
         LEFT JOIN sync_runs r ON r.sync_run_id = i.active_run_id \
         WHERE i.integration_id = $1 FOR UPDATE OF i",
    )
    .bind(&req.integration_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((Some(run), requested_at)) = active {
        let fresh = requested_at.is_none_or(|t| now - t < MAX_RUN_AGE);
        if fresh {
            return Ok(Requested {
                sync_run_id: run,
                joined_running: true,
            });
        }
        // Abandoned: fail it so its history says so, then start afresh.
        let failed = NewEvent::new(
            facts.workspace_id.clone(),
            Event::SyncFailed(SyncFailed {
                sync_run_id: run.clone(),
                kind: FailureKind::Internal as i32,
                message: format!(
                    "the sync did not finish within {} hours",
                    MAX_RUN_AGE.num_hours()
                ),
                ..Default::default()
            }),
        )
        .integration(req.integration_id.clone())
        .correlation(run.clone());
        eventlog::append_in(
            conn,
            &format!("syncrun-{run}"),
            ExpectedVersion::Any,
            vec![failed],
        )
        .await?;
    }
    let run_id = Uuid::now_v7().to_string();
    // The page shows the attempt at once, not when the projection catches up.
    sqlx::query(
        "UPDATE sync_integrations SET active_run_id = $2, last_attempt_at = $3, last_outcome = 'running', \
         updated_at = now() WHERE integration_id = $1",
    )
    .bind(&req.integration_id)
    .bind(&run_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO sync_runs (sync_run_id, integration_id, workspace_id, provider, trigger, state, requested_at) \
         VALUES ($1, $2, $3, $4, $5, 'requested', $6) ON CONFLICT DO NOTHING",
    )
    .bind(&run_id)
    .bind(&req.integration_id)
    .bind(&facts.workspace_id)
    .bind(facts.provider)
    .bind(req.trigger as i32)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let requested = NewEvent::new(
        facts.workspace_id.clone(),
        Event::SyncRequested(SyncRequested {
            sync_run_id: run_id.clone(),
            trigger: req.trigger as i32,
            requested_by: req.requested_by.clone(),
            scheduled_for: req.scheduled_for.map(timestamp),
        }),
    )
    .integration(req.integration_id.clone())
    .correlation(run_id.clone());
    eventlog::append_in(
        conn,
        &format!("syncrun-{run_id}"),
        ExpectedVersion::NoStream,
        vec![requested],
    )
    .await?;
    notify(conn, &facts.workspace_id).await?;
    Ok(Requested {
        sync_run_id: run_id,
        joined_running: false,
    })
}

/// Makes sure the integration has a row (the command may run before the projection caught up).
async fn ensure_integration(
    conn: &mut PgConnection,
    integration_id: &str,
    facts: &ConnectionFacts,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let schedule = DailySchedule::default_for(integration_id);
    sqlx::query(
        "INSERT INTO sync_integrations (integration_id, workspace_id, provider, connected, \
             schedule_local_time, schedule_time_zone, handled_slot) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (integration_id) DO NOTHING",
    )
    .bind(integration_id)
    .bind(&facts.workspace_id)
    .bind(facts.provider)
    .bind(facts.connected)
    .bind(schedule.local_time_string())
    .bind(schedule.zone_name())
    .bind(schedule.last_slot_at_or_before(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn notify(conn: &mut PgConnection, workspace_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(HEALTH_CHANNEL)
        .bind(workspace_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The next time the integration syncs by itself, if it does (connected).
pub async fn next_scheduled_sync(
    pool: &PgPool,
    integration_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let row: Option<(bool, String, String)> = sqlx::query_as(
        "SELECT connected, schedule_local_time, schedule_time_zone FROM sync_integrations WHERE integration_id = $1",
    )
    .bind(integration_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(connected, t, z)| {
        let s = DailySchedule::parse(&t, &z).ok()?;
        connected.then(|| s.next_slot_after(now))
    }))
}

/// The orchestrator: keeps the run and health projection, and closes completed runs.
pub struct Orchestrator;

fn step_of(e: &RecordedEvent) -> Option<(String, i32)> {
    match e.event()? {
        Event::SyncStepStarted(s) => Some((s.sync_run_id.clone(), s.step)),
        Event::PullCompleted(p) => Some((p.sync_run_id.clone(), p.step)),
        Event::CompaniesResolved(c) => {
            Some((c.sync_run_id.clone(), SyncStep::CompanyResolution as i32))
        }
        // Only the last part of a split result completes the matching step.
        Event::AccountsMatched(m) if m.remaining_parts == 0 => {
            Some((m.sync_run_id.clone(), SyncStep::Matching as i32))
        }
        Event::AttributionUpdated(a) => Some((a.sync_run_id.clone(), SyncStep::Attribution as i32)),
        _ => None,
    }
}

impl Handler for Orchestrator {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let Some(ev) = event.event() else {
            return Ok(());
        };
        let meta = event.meta().clone();
        let at = meta
            .occurred_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or(event.recorded_at);
        // Slots are judged at the event's own time, so a replay or a late consumer decides the
        // same as the moment it happened.
        let now = at;
        let tx = &mut *ctx.tx;
        match ev {
            Event::ConnectionConnected(c) => {
                let facts = ConnectionFacts {
                    workspace_id: meta.workspace_id.clone(),
                    provider: c.provider,
                    connected: true,
                };
                ensure_integration(tx, &meta.integration_id, &facts, now).await?;
                set_connected(tx, &meta.integration_id, c.provider, now).await?;
            }
            Event::ConnectionReconnected(c) => {
                let facts = ConnectionFacts {
                    workspace_id: meta.workspace_id.clone(),
                    provider: c.provider,
                    connected: true,
                };
                ensure_integration(tx, &meta.integration_id, &facts, now).await?;
                set_connected(tx, &meta.integration_id, c.provider, now).await?;
            }
            Event::ConnectionDisconnected(d) => {
                let facts = ConnectionFacts {
                    workspace_id: meta.workspace_id.clone(),
                    provider: d.provider,
                    connected: false,
                };
                ensure_integration(tx, &meta.integration_id, &facts, now).await?;
                set_disconnected(tx, &meta.integration_id, d).await?;
            }
            Event::SyncScheduleSet(s) => {
                // A new time applies from the next slot: changing it never fires a catch-up.
                if let Ok(sched) = DailySchedule::parse(&s.local_time, &s.time_zone) {
                    sqlx::query(
                        "UPDATE sync_integrations SET schedule_local_time = $2, schedule_time_zone = $3, \
                         handled_slot = GREATEST(handled_slot, $4), catch_up_at = NULL, updated_at = now() \
                         WHERE integration_id = $1",
                    )
                    .bind(&meta.integration_id)
                    .bind(sched.local_time_string())
                    .bind(sched.zone_name())
                    .bind(sched.last_slot_at_or_before(now))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Event::SyncRequested(r) => {
                sqlx::query(
                    "INSERT INTO sync_runs (sync_run_id, integration_id, workspace_id, provider, trigger, state, requested_at) \
                     SELECT $1, $2, $3, COALESCE((SELECT provider FROM sync_integrations WHERE integration_id = $2), 0), $4, 'requested', $5 \
                     ON CONFLICT (sync_run_id) DO UPDATE SET requested_at = EXCLUDED.requested_at",
                )
                .bind(&r.sync_run_id)
                .bind(&meta.integration_id)
                .bind(&meta.workspace_id)
                .bind(r.trigger)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE sync_integrations SET last_attempt_at = $2, last_outcome = 'running', \
                     active_run_id = COALESCE(active_run_id, $3), updated_at = now() WHERE integration_id = $1",
                )
                .bind(&meta.integration_id)
                .bind(at)
                .bind(&r.sync_run_id)
                .execute(&mut *tx)
                .await?;
            }
            Event::SyncStarted(s) => {
                sqlx::query(
                    "UPDATE sync_runs SET state = 'running', started_at = COALESCE(started_at, $2) \
                     WHERE sync_run_id = $1 AND state IN ('requested', 'running')",
                )
                .bind(&s.sync_run_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            Event::SyncCompleted(c) => {
                finish(tx, &c.sync_run_id, "completed", at, None).await?;
            }
            Event::SyncFailed(f) => {
                finish(
                    tx,
                    &f.sync_run_id,
                    if f.kind == FailureKind::Authorization as i32 {
                        "interrupted"
                    } else {
                        "failed"
                    },
                    at,
                    Some(f),
                )
                .await?;
            }
            _ => {}
        }
        if let Some((run, step)) = step_of(event) {
            let completed = !matches!(ev, Event::SyncStepStarted(_));
            let records: i64 = match ev {
                Event::PullCompleted(p) => p.counts.iter().map(|c| c.records as i64).sum(),
                Event::CompaniesResolved(c) => c.organizations as i64,
                Event::AccountsMatched(m) => m.matched as i64,
                _ => 0,
            };
            sqlx::query(
                "INSERT INTO sync_run_steps (sync_run_id, step, started_at, completed_at, records) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (sync_run_id, step) DO UPDATE SET \
                   completed_at = COALESCE(EXCLUDED.completed_at, sync_run_steps.completed_at), \
                   records = GREATEST(sync_run_steps.records, EXCLUDED.records)",
            )
            .bind(&run)
            .bind(step)
            .bind(at)
            .bind(completed.then_some(at))
            .bind(records)
            .execute(&mut *tx)
            .await?;
            if !completed {
                sqlx::query(
                    "UPDATE sync_runs SET state = 'running', current_step = $2, started_at = COALESCE(started_at, $3) \
                     WHERE sync_run_id = $1 AND state IN ('requested', 'running')",
                )
                .bind(&run)
                .bind(step)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            // The last step of the cycle: numbers are in place, so the run is complete.
            if let Event::AttributionUpdated(a) = ev {
                let open: Option<String> = sqlx::query_scalar(
                    "SELECT integration_id FROM sync_runs WHERE sync_run_id = $1 AND state IN ('requested', 'running')",
                )
                .bind(&a.sync_run_id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(integration_id) = open {
                    let counts = step_counts(tx, &a.sync_run_id).await?;
                    let done = ctx
                        .new_event(Event::SyncCompleted(SyncCompleted {
                            sync_run_id: a.sync_run_id.clone(),
                            counts,
                        }))
                        .integration(integration_id);
                    ctx.emit(
                        format!("syncrun-{}", a.sync_run_id),
                        ExpectedVersion::Any,
                        vec![done],
                    );
                }
            }
        }
        let tx = &mut *ctx.tx;
        if !meta.workspace_id.is_empty() {
            notify(tx, &meta.workspace_id).await?;
        }
        Ok(())
    }
}

async fn step_counts(
    conn: &mut PgConnection,
    run: &str,
) -> Result<Vec<rp_platform::contracts::events::v1::ObjectCount>, sqlx::Error> {
    // The per-object counts of the run's pulls, from its PullCompleted events in the log.
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE stream_id = $1 AND event_type = 'PullCompleted' ORDER BY version",
    )
    .bind(format!("syncrun-{run}"))
    .fetch_all(&mut *conn)
    .await?;
    Ok(payloads
        .iter()
        .filter_map(|p| Envelope::decode(p.as_slice()).ok())
        .filter_map(|e| match e.event {
            Some(Event::PullCompleted(p)) => Some(p.counts),
            _ => None,
        })
        .flatten()
        .collect())
}

async fn set_connected(
    conn: &mut PgConnection,
    integration_id: &str,
    provider: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // Reconnecting does not replay the days it was disconnected: the schedule resumes from the
    // next slot (the connector's checkpoints make that sync pull everything since the last one).
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT schedule_local_time, schedule_time_zone FROM sync_integrations WHERE integration_id = $1",
    )
    .bind(integration_id)
    .fetch_optional(&mut *conn)
    .await?;
    let slot = row
        .and_then(|(t, z)| DailySchedule::parse(&t, &z).ok())
        .map(|s| s.last_slot_at_or_before(now));
    sqlx::query(
        "UPDATE sync_integrations SET connected = true, provider = $2, disconnect_reason = 0, provider_message = '', \
         handled_slot = GREATEST(handled_slot, $3), catch_up_at = NULL, updated_at = now() WHERE integration_id = $1",
    )
    .bind(integration_id)
    .bind(provider)
    .bind(slot)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn set_disconnected(
    conn: &mut PgConnection,
    integration_id: &str,
    d: &ConnectionDisconnected,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_integrations SET connected = false, provider = $2, disconnect_reason = $3, provider_message = $4, \
         catch_up_at = NULL, updated_at = now() WHERE integration_id = $1",
    )
    .bind(integration_id)
    .bind(d.provider)
    .bind(d.reason)
    .bind(&d.provider_message)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn finish(
    conn: &mut PgConnection,
    run: &str,
    state: &str,
    at: DateTime<Utc>,
    failure: Option<&SyncFailed>,
) -> Result<(), sqlx::Error> {
    let integration: Option<String> = sqlx::query_scalar(
        "UPDATE sync_runs SET state = $2, finished_at = $3, \
             failure_kind = $4, failure_message = $5, failure_location = $6, next_attempt_at = $7, current_step = COALESCE($8, current_step) \
         WHERE sync_run_id = $1 AND state IN ('requested', 'running') RETURNING integration_id",
    )
    .bind(run)
    .bind(state)
    .bind(at)
    .bind(failure.map_or(0, |f| f.kind))
    .bind(failure.map_or("", |f| f.message.as_str()))
    .bind(failure.map_or("", |f| f.location.as_str()))
    .bind(failure.and_then(|f| f.next_attempt_at.as_ref()).and_then(from_timestamp))
    .bind(failure.map(|f| f.step).filter(|s| *s != 0))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(integration) = integration else {
        return Ok(());
    };
    let outcome = match failure {
        None => "completed".to_string(),
        Some(f) => format!("{state}: {}", failure_kind_name(f.kind)),
    };
    sqlx::query(
        "UPDATE sync_integrations SET last_outcome = $2, \
             last_success_at = CASE WHEN $3 THEN $4 ELSE last_success_at END, \
             active_run_id = CASE WHEN active_run_id = $5 THEN NULL ELSE active_run_id END, updated_at = now() \
         WHERE integration_id = $1",
    )
    .bind(&integration)
    .bind(outcome)
    .bind(failure.is_none())
    .bind(at)
    .bind(run)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub fn failure_kind_name(kind: i32) -> &'static str {
    match FailureKind::try_from(kind) {
        Ok(FailureKind::ProviderOutage) => "provider_outage",
        Ok(FailureKind::BadPayload) => "bad_payload",
        Ok(FailureKind::Authorization) => "authorization",
        Ok(FailureKind::RateLimited) => "rate_limited",
        Ok(FailureKind::Internal) => "internal",
        _ => "unknown",
    }
}

pub fn disconnect_reason_words(reason: i32, provider: i32) -> String {
    let p = provider_name(provider);
    match DisconnectReason::try_from(reason) {
        Ok(DisconnectReason::UserRequested) => "Disconnected by a user of this workspace".into(),
        Ok(DisconnectReason::AuthorizationRevoked) => format!("Access was revoked in {p}"),
        Ok(DisconnectReason::AuthorizationExpired) => format!("The authorization with {p} expired"),
        _ => String::new(),
    }
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the scheduler looks (default 30 s).
    pub tick: Duration,
    /// How late a slot may be noticed and still run as scheduled (default 15 min).
    pub on_time_grace: ChronoDuration,
    /// Catch-up syncs after downtime are spread over this (default 15 min).
    pub catch_up_spread: ChronoDuration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(30),
            on_time_grace: ChronoDuration::minutes(15),
            catch_up_spread: ChronoDuration::minutes(15),
        }
    }
}

/// The daily scheduler.
pub struct Scheduler<C: Clock> {
    pub pool: PgPool,
    pub clock: Arc<C>,
    pub config: SchedulerConfig,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub started: Vec<String>,
    pub joined: Vec<String>,
    pub deferred: usize,
}

impl<C: Clock> Scheduler<C> {
    /// Runs until cancelled, ticking every `config.tick`.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut every = tokio::time::interval(self.config.tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = every.tick() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduler tick failed; will retry at the next tick");
            }
        }
    }

    /// Looks at every connected integration once, at the clock's now.
    pub async fn tick(&self) -> Result<TickReport, RequestError> {
        let now = self.clock.now();
        type DueRow = (
            String,
            String,
            String,
            String,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<DueRow> = sqlx::query_as(
            "SELECT integration_id, workspace_id, schedule_local_time, schedule_time_zone, handled_slot, catch_up_at \
             FROM sync_integrations WHERE connected ORDER BY integration_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut report = TickReport::default();
        for (integration_id, workspace_id, t, z, handled, catch_up_at) in rows {
            let Ok(sched) = DailySchedule::parse(&t, &z) else {
                continue;
            };
            let jitter = schedule::jitter_for(&workspace_id, self.config.catch_up_spread);
            let (slot, trigger) = match schedule::due(
                &sched,
                handled,
                now,
                self.config.on_time_grace,
                jitter,
            ) {
                Due::No => continue,
                Due::OnTime { slot } => (slot, SyncTrigger::Scheduled),
                Due::CatchUp { slot, at } => {
                    let at = match catch_up_at {
                        Some(a) => a,
                        None => {
                            sqlx::query("UPDATE sync_integrations SET catch_up_at = $2 WHERE integration_id = $1 AND catch_up_at IS NULL")
                                .bind(&integration_id)
                                .bind(at)
                                .execute(&self.pool)
                                .await?;
                            at
                        }
                    };
                    if now < at {
                        report.deferred += 1;
                        continue;
                    }
                    (slot, SyncTrigger::CatchUp)
                }
            };
            let mut tx = self.pool.begin().await?;
            // Exactly once per slot, whatever the number of replicas: lock, re-check, mark.
            let still_due: Option<bool> = sqlx::query_scalar(
                "SELECT connected AND (handled_slot IS NULL OR handled_slot < $2) FROM sync_integrations \
                 WHERE integration_id = $1 FOR UPDATE",
            )
            .bind(&integration_id)
            .bind(slot)
            .fetch_optional(&mut *tx)
            .await?;
            if still_due != Some(true) {
                continue;
            }
            sqlx::query("UPDATE sync_integrations SET handled_slot = $2, catch_up_at = NULL WHERE integration_id = $1")
                .bind(&integration_id)
                .bind(slot)
                .execute(&mut *tx)
                .await?;
            let req = SyncRequest {
                integration_id: integration_id.clone(),
                caller_workspace: None,
                trigger,
                requested_by: "scheduler".into(),
                scheduled_for: Some(slot),
            };
            match request_sync_in(&mut tx, &req, now).await {
                Ok(r) => {
                    tx.commit().await?;
                    if r.joined_running {
                        report.joined.push(r.sync_run_id);
                    } else {
                        tracing::info!(integration_id, sync_run_id = %r.sync_run_id, trigger = ?trigger, "scheduled sync requested");
                        report.started.push(r.sync_run_id);
                    }
                }
                Err(RequestError::Disconnected { .. }) | Err(RequestError::NotFound(_)) => {
                    // The log says it is not connected (the projection is behind): skip the slot.
                    tx.commit().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
