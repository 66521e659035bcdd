//! The sync run's commands and the orchestrator: load the run, decide, append, project.
//!
//! * [`request_sync`] (Sync Now and the scheduler) locks the integration's row, loads its active
//!   run from the log, asks [`decide`] and appends what it says; the projection is written in
//!   the same transaction, so the caller reads its own request at once.
//! * [`Orchestrator`] consumes the run's events (and the connection's): it folds each run event
//!   into the run loaded from the log up to that event, writes the projection from the result,
//!   and closes the run (SyncCompleted) when the attribution step reports.

use super::domain::{self, Command, ConnectionFacts, Refusal, SyncRun};
use super::schedule::DailySchedule;
use super::store::{self, RunOwner};
use chrono::{DateTime, Utc};
use rp_platform::consumer::{Handler, HandlerContext, HandlerError};
use rp_platform::contracts::events::v1::{SyncTrigger, envelope::Event};
use rp_platform::eventlog::{
    self, AppendError, ExpectedVersion, NewEvent, ReadError, RecordedEvent,
};
use rp_platform::ids::{IntegrationId, SyncRunId, WorkspaceId};
use sqlx::{PgConnection, PgPool};

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
    "EventDeadLettered",
];

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no integration {0}")]
    NotFound(IntegrationId),
    #[error("integration {0} belongs to another workspace")]
    OtherWorkspace(IntegrationId),
    #[error("{provider} is disconnected: reconnect it on the Connections page to sync again")]
    Disconnected { provider: &'static str },
    /// Not expected for a request (the run model answers a request with a join or events).
    #[error("the sync was not requested: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Who asks for a sync.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub integration: IntegrationId,
    /// `Some(ws)`: the caller acts for this workspace only.
    pub caller_workspace: Option<WorkspaceId>,
    pub trigger: SyncTrigger,
    pub requested_by: String,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// The run a request started or joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub sync_run_id: SyncRunId,
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
    let (workspace, facts) = store::connection_facts(conn, req.integration)
        .await?
        .ok_or(RequestError::NotFound(req.integration))?;
    if req.caller_workspace.is_some_and(|w| w != workspace) {
        return Err(RequestError::OtherWorkspace(req.integration));
    }
    if !facts.connected {
        return Err(RequestError::Disconnected {
            provider: facts.provider_name(),
        });
    }
    store::ensure_integration(conn, req.integration, workspace, &facts, now).await?;
    let active = match store::lock_active_run(conn, req.integration).await? {
        Some(run) => store::load_run(conn, &run, i64::MAX).await?.after,
        None => SyncRun::default(),
    };
    let new_run = SyncRunId::generate();
    let command = Command::Request {
        new_run: new_run.clone(),
        trigger: req.trigger,
        requested_by: req.requested_by.clone(),
        scheduled_for: req.scheduled_for,
    };
    let events = match domain::decide(&active, command, now) {
        Ok(events) => events,
        Err(Refusal::Running { run }) => {
            return Ok(Requested {
                sync_run_id: run,
                joined_running: true,
            });
        }
        Err(other) => return Err(RequestError::Refused(other)),
    };
    let owner = RunOwner {
        integration: &req.integration.to_string(),
        workspace: &workspace.to_string(),
        provider: facts.provider.map_or(0, |p| p.to_event() as i32),
    };
    store::set_active_run(conn, req.integration, &new_run).await?;
    for event in events {
        let Some(run) = domain::run_of(&event).and_then(|r| SyncRunId::parse(r).ok()) else {
            continue;
        };
        let expected = if run == new_run {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Any
        };
        let mut new = NewEvent::new(workspace.to_string(), event)
            .integration(req.integration.to_string())
            .correlation(run.to_string());
        new.occurred_at = now;
        eventlog::append_in(conn, &run.run_stream(), expected, vec![new]).await?;
        // The page shows the request (and the abandoned run's end) at once, not when the
        // projection catches up; the orchestrator's later pass changes nothing.
        let loaded = store::load_run(conn, &run, i64::MAX).await?;
        store::project_run(conn, owner, &loaded.before, &loaded.after).await?;
    }
    store::notify(conn, owner.workspace).await?;
    Ok(Requested {
        sync_run_id: new_run,
        joined_running: false,
    })
}

/// The orchestrator: keeps the run and health projection, and closes completed runs.
pub struct Orchestrator;

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
        // Slots are judged at the event's own time, so a replay or a late consumer decides the
        // same as the moment it happened.
        let at = store::occurred_at(event);
        let integration = IntegrationId::parse(&meta.integration_id).ok();
        match (ev, integration) {
            (Event::ConnectionConnected(c), Some(id)) => {
                connected(ctx, id, &meta.workspace_id, c.provider, at).await?
            }
            (Event::ConnectionReconnected(c), Some(id)) => {
                connected(ctx, id, &meta.workspace_id, c.provider, at).await?
            }
            (Event::ConnectionDisconnected(d), Some(id)) => {
                if let Ok(ws) = WorkspaceId::parse(&meta.workspace_id) {
                    let facts = ConnectionFacts {
                        provider: rp_platform::provider::Provider::from_event(d.provider),
                        connected: false,
                    };
                    store::ensure_integration(&mut ctx.tx, id, ws, &facts, at).await?;
                }
                store::set_disconnected(&mut ctx.tx, id, d).await?;
            }
            // A consumer gave up on an event of a run: its step can never complete.
            (Event::EventDeadLettered(d), _) => {
                if let Ok(run) = SyncRunId::parse(&meta.correlation_id) {
                    super::watchdog::fail_dead_lettered(
                        &mut ctx.tx,
                        &run,
                        &d.consumer,
                        &d.event_type,
                        &d.error,
                        at,
                    )
                    .await
                    .map_err(|e| HandlerError::Retry(e.to_string()))?;
                }
            }
            (Event::SyncScheduleSet(s), Some(id)) => {
                if let Ok(schedule) = DailySchedule::parse(&s.local_time, &s.time_zone) {
                    store::set_schedule(&mut ctx.tx, id, &schedule, at).await?;
                }
            }
            _ => {}
        }
        if let Some(run) = domain::run_of(ev).and_then(|r| SyncRunId::parse(r).ok()) {
            project(ctx, event, &run).await?;
        }
        if !meta.workspace_id.is_empty() {
            store::notify(&mut ctx.tx, &meta.workspace_id).await?;
        }
        Ok(())
    }
}

async fn connected(
    ctx: &mut HandlerContext,
    id: IntegrationId,
    workspace: &str,
    provider: i32,
    at: DateTime<Utc>,
) -> Result<(), HandlerError> {
    if let Ok(ws) = WorkspaceId::parse(workspace) {
        let facts = ConnectionFacts {
            provider: rp_platform::provider::Provider::from_event(provider),
            connected: true,
        };
        store::ensure_integration(&mut ctx.tx, id, ws, &facts, at).await?;
    }
    store::set_connected(&mut ctx.tx, id, provider, at).await?;
    Ok(())
}

/// Folds a run event into its run (as the log holds it up to that event), writes the
/// projection, and closes the run when the attribution step has reported.
async fn project(
    ctx: &mut HandlerContext,
    event: &RecordedEvent,
    run: &SyncRunId,
) -> Result<(), HandlerError> {
    let up_to = if event.stream_id == run.run_stream() {
        event.version
    } else {
        i64::MAX
    };
    let loaded = store::load_run(&mut ctx.tx, run, up_to)
        .await
        .map_err(read_error)?;
    // The run's own first event says where it belongs; the event at hand may name less.
    let meta = event.meta();
    let integration = if loaded.integration.is_empty() {
        meta.integration_id.clone()
    } else {
        loaded.integration.clone()
    };
    let workspace = if loaded.workspace.is_empty() {
        meta.workspace_id.clone()
    } else {
        loaded.workspace.clone()
    };
    let provider = store::integration_provider(&mut ctx.tx, &integration).await?;
    let owner = RunOwner {
        integration: &integration,
        workspace: &workspace,
        provider,
    };
    store::project_run(&mut ctx.tx, owner, &loaded.before, &loaded.after).await?;
    // The last step of the cycle: the numbers are in place, so the run is complete.
    if matches!(event.event(), Some(Event::AttributionUpdated(_))) {
        let latest = store::load_run(&mut ctx.tx, run, i64::MAX)
            .await
            .map_err(read_error)?
            .after;
        if let Ok(events) = domain::decide(&latest, Command::Complete, store::occurred_at(event)) {
            let done: Vec<NewEvent> = events
                .into_iter()
                .map(|e| ctx.new_event(e).integration(integration.clone()))
                .collect();
            ctx.emit(run.run_stream(), ExpectedVersion::Any, done);
        }
    }
    Ok(())
}

fn read_error(e: ReadError) -> HandlerError {
    match e {
        ReadError::Database(e) => HandlerError::from(e),
        corrupt @ ReadError::Corrupt { .. } => HandlerError::Reject(corrupt.to_string()),
    }
}
