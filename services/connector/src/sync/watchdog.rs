//! The sync watchdog: no run stays "running" once its work has stopped.
//!
//! * Every scheduler tick, before the slots are looked at, [`sweep`] looks at each live run:
//!   one that has made no progress (no event of its own, no batch pulled) for longer than its
//!   state's limit ([`StallLimits`]) is failed as `STALLED` through the run's own model
//!   ([`domain::stalled`], then [`Command::Fail`]), so a slot that comes meanwhile starts a fresh
//!   run instead of joining a dead one, and the notification service tells the user once.
//! * An event of a live run that a consumer gave up on (EventDeadLettered, correlated with the
//!   run) fails the run at once with the consumer's reason ([`fail_dead_lettered`], called by
//!   the orchestrator).
//!
//! Either way the run's pull job is ended too, so that no worker takes it over afterwards.

use super::domain::{self, Command, Failure, StallLimits, SyncRun};
use super::schedule::DailySchedule;
use super::store::{self, RunOwner};
use chrono::{DateTime, Utc};
use rp_platform::eventlog::{self, AppendError, ExpectedVersion, NewEvent, ReadError};
use rp_platform::ids::{IntegrationId, SyncRunId};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// A live run as the projection knows it.
struct Live {
    integration: IntegrationId,
    workspace: String,
    provider: i32,
    run: SyncRunId,
    schedule: Option<DailySchedule>,
}

async fn live_runs(pool: &PgPool) -> Result<Vec<Live>, sqlx::Error> {
    let rows: Vec<(String, String, i32, String, String, String)> = sqlx::query_as(
        "SELECT integration_id, workspace_id, provider, active_run_id, schedule_local_time, \
                schedule_time_zone \
         FROM sync_integrations WHERE active_run_id IS NOT NULL ORDER BY integration_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(i, workspace, provider, run, t, z)| {
            Some(Live {
                integration: IntegrationId::parse(&i).ok()?,
                workspace,
                provider,
                run: SyncRunId::parse(&run).ok()?,
                schedule: DailySchedule::parse(&t, &z).ok(),
            })
        })
        .collect())
}

/// When the run last made progress: its latest event, or its latest pulled batch, at the time
/// the event says it happened (the clock the watchdog's `now` comes from).
async fn last_progress(
    conn: &mut PgConnection,
    run: &SyncRunId,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(occurred_at) FROM events WHERE stream_id = $1 OR stream_id = $2")
        .bind(run.run_stream())
        .bind(run.records_stream())
        .fetch_one(conn)
        .await
}

/// Fails every live run that has stalled; returns them.
pub async fn sweep(
    pool: &PgPool,
    now: DateTime<Utc>,
    limits: &StallLimits,
) -> Result<Vec<SyncRunId>, WatchdogError> {
    let mut stopped = Vec::new();
    for live in live_runs(pool).await? {
        let mut tx = pool.begin().await?;
        // Under the integration's lock, as every command: a completion or another replica's
        // watchdog meanwhile is seen here.
        if store::lock_active_run(&mut tx, live.integration).await? != Some(live.run.clone()) {
            continue;
        }
        let run = store::load_run(&mut tx, &live.run, i64::MAX).await?.after;
        let Some(last) = last_progress(&mut tx, &live.run).await? else {
            continue;
        };
        let next = live.schedule.as_ref().map(|s| s.next_slot_after(now));
        let Some(failure) = domain::stalled(&run, last, now, limits, next) else {
            continue;
        };
        tracing::warn!(integration_id = %live.integration, sync_run_id = %live.run, step = ?failure.step, idle_minutes = (now - last).num_minutes(), "sync watchdog: the run made no progress; failing it as stalled");
        let owner = RunOwner {
            integration: &live.integration.to_string(),
            workspace: &live.workspace,
            provider: live.provider,
        };
        if fail_in(&mut tx, owner, &live.run, &run, failure, now).await? {
            stopped.push(live.run.clone());
        }
        tx.commit().await?;
    }
    Ok(stopped)
}

/// Fails the run one of whose events `consumer` dead-lettered, if it is live: the step that
/// event belonged to can never complete. In the caller's transaction.
pub async fn fail_dead_lettered(
    conn: &mut PgConnection,
    run_id: &SyncRunId,
    consumer: &str,
    event_type: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, WatchdogError> {
    let named = store::load_run(conn, run_id, i64::MAX).await?.integration;
    let Ok(integration) = IntegrationId::parse(&named) else {
        return Ok(false);
    };
    if store::lock_active_run(conn, integration).await? != Some(run_id.clone()) {
        return Ok(false);
    }
    // Read again under the lock: a completion meanwhile is seen.
    let loaded = store::load_run(conn, run_id, i64::MAX).await?;
    let schedule: Option<(String, String)> = sqlx::query_as(
        "SELECT schedule_local_time, schedule_time_zone FROM sync_integrations WHERE integration_id = $1",
    )
    .bind(integration.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let next = schedule
        .and_then(|(t, z)| DailySchedule::parse(&t, &z).ok())
        .map(|s| s.next_slot_after(now));
    let Some(failure) = domain::dead_lettered(&loaded.after, consumer, event_type, error, next)
    else {
        return Ok(false);
    };
    tracing::warn!(integration_id = %integration, sync_run_id = %run_id, consumer, event_type, "an event of the run was dead-lettered: failing the run");
    let provider = store::integration_provider(conn, &loaded.integration).await?;
    let owner = RunOwner {
        integration: &loaded.integration,
        workspace: &loaded.workspace,
        provider,
    };
    fail_in(conn, owner, run_id, &loaded.after, failure, now).await
}

/// Appends the run's SyncFailed (as the run model decides), writes the projection, and ends
/// the run's pull job. False when the model refuses (the run finished meanwhile).
async fn fail_in(
    conn: &mut PgConnection,
    owner: RunOwner<'_>,
    run_id: &SyncRunId,
    run: &SyncRun,
    failure: Failure,
    now: DateTime<Utc>,
) -> Result<bool, WatchdogError> {
    let Ok(events) = domain::decide(run, Command::Fail(failure), now) else {
        return Ok(false);
    };
    let new: Vec<NewEvent> = events
        .into_iter()
        .map(|e| {
            let mut n = NewEvent::new(owner.workspace.to_string(), e)
                .integration(owner.integration.to_string())
                .correlation(run_id.to_string());
            n.occurred_at = now;
            n
        })
        .collect();
    eventlog::append_in(conn, &run_id.run_stream(), ExpectedVersion::Any, new).await?;
    let loaded = store::load_run(conn, run_id, i64::MAX).await?;
    store::project_run(conn, owner, &loaded.before, &loaded.after).await?;
    // No worker may take the pull over afterwards (a worker still holding it loses its lease
    // at its next renewal and stops).
    sqlx::query(
        "UPDATE pull_jobs SET state = 'failed', outcome = 'stalled', finished_at = now(), \
             lease_owner = NULL, lease_until = NULL \
         WHERE sync_run_id = $1 AND state IN ('queued', 'running')",
    )
    .bind(run_id.to_string())
    .execute(&mut *conn)
    .await?;
    store::notify(conn, owner.workspace).await?;
    Ok(true)
}
