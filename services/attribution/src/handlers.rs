//! Events in, events out.
//!
//! * WorkspaceCreated stores the plan (which lookback windows the numbers have).
//! * RecordsPulled (engagement rows, deals, pipelines, names) is staged: syncs run per
//!   integration and can overlap, so a sync's records are applied only when that sync completes,
//!   and another sync completing meanwhile never shows half of them.
//! * ConnectionReconnected for another account (`previous_external_account_id` set) is staged
//!   like a batch that belongs to no sync: applied, in log order, with the next sync that
//!   completes, it drops what the previous account gave (CRM: companies, deals, pipelines;
//!   LinkedIn: engagement), so the dashboard shows the new account only from that sync on.
//! * SyncFailed ends a sync: its staged records are applied with the next completed sync (its
//!   checkpoints moved, so they will not be pulled again).
//! * AccountsMatched applies the matcher's changes to the matches. A sync's matching result can
//!   come in several parts (appended together); the last one (`remaining_parts == 0`) completes
//!   the sync's matching step, so the attribution step runs then: it applies the sync's records,
//!   computes a complete new set of numbers as of that event's time, switches the workspace's
//!   dashboard to it, and emits SyncStepStarted (attribution) and AttributionUpdated on
//!   `syncrun-<run>`, all in one transaction. A manual decision's AccountsMatched has no sync
//!   run: it updates the matches only; the numbers switch at the next completed sync.
//!
//! [`apply`] is everything but the emitting, so a rebuild replays the log through the very same
//! code ([`crate::rebuild`]).

use crate::config::Settings;
use crate::domain::metrics;
use crate::store;
use chrono::{DateTime, SubsecRound, Utc};
use rp_platform::consumer::{Handler, HandlerContext, HandlerError};
use rp_platform::contracts::events::v1::{
    AttributionUpdated, Provider, RecordsPulled, SyncStep, SyncStepStarted, envelope::Event,
};
use rp_platform::contracts::{from_timestamp, timestamp};
use rp_platform::eventlog::{self, ExpectedVersion, ReadError, RecordedEvent};
use rp_platform::ids::SyncRunId;
use sqlx::PgConnection;
use std::sync::Arc;
use tracing::Instrument;

/// The durable consumer's name (and the key of its processed marks).
pub const CONSUMER: &str = "attribution";

/// The events the projection is made of.
pub const EVENT_TYPES: &[&str] = &[
    "WorkspaceCreated",
    "RecordsPulled",
    "SyncFailed",
    "AccountsMatched",
    "ConnectionReconnected",
];

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("attribution projection: {0}")]
    Database(#[from] sqlx::Error),
    /// A staged batch in the log cannot be decoded: retrying will not help.
    #[error("reading staged records: {0}")]
    Corrupt(ReadError),
}

impl From<ReadError> for ApplyError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Database(e) => ApplyError::Database(e),
            corrupt @ ReadError::Corrupt { .. } => ApplyError::Corrupt(corrupt),
        }
    }
}

impl From<ApplyError> for HandlerError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Database(e) => HandlerError::Database(e),
            ApplyError::Corrupt(e) => HandlerError::Reject(e.to_string()),
        }
    }
}

/// A sync's numbers were switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    pub sync_run_id: SyncRunId,
    pub as_of: DateTime<Utc>,
    pub version: i64,
}

/// The time an event happened, as the log recorded it (never the wall clock): replaying the log
/// gives the same time. To the microsecond, which is what the projection keeps (`timestamptz`):
/// the as-of time AttributionUpdated announces is then the one the API serves.
pub fn event_time(event: &RecordedEvent) -> DateTime<Utc> {
    event
        .meta()
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap_or(event.recorded_at)
        .trunc_subsecs(6)
}

/// Applies one event to the projection; returns what was switched when it completed a sync's
/// matching step. Bad records are skipped (and logged), never fatal.
pub async fn apply(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    settings: &Settings,
) -> Result<Option<Switched>, ApplyError> {
    // The projection is keyed by the workspace as the event names it (any non-empty id).
    let ws = event.workspace_id().trim();
    if ws.is_empty() {
        return Ok(None);
    }
    match event.event() {
        Some(Event::WorkspaceCreated(w)) => {
            store::set_plan(conn, ws, &w.plan).await?;
            if !w.plan.trim().is_empty() && !settings.plans.knows(&w.plan) {
                tracing::warn!(workspace_id = ws, plan = %w.plan, "plan not in RP_PLANS: the first plan's windows apply");
            }
        }
        Some(Event::RecordsPulled(r)) => {
            let run = run_of(event, &r.sync_run_id);
            store::stage_records(conn, ws, event.position, run.as_ref()).await?;
        }
        Some(Event::ConnectionReconnected(c)) if !c.previous_external_account_id.is_empty() => {
            store::stage_records(conn, ws, event.position, None).await?;
        }
        Some(Event::SyncFailed(f)) => {
            if let Some(run) = run_of(event, &f.sync_run_id) {
                store::end_run(conn, ws, &run).await?;
            }
        }
        Some(Event::AccountsMatched(m)) => {
            store::ensure_workspace(conn, ws).await?;
            let skipped = store::apply_match_changes(conn, ws, &m.changes).await?;
            if skipped > 0 {
                tracing::warn!(workspace_id = ws, sync_run_id = %m.sync_run_id, skipped, "match changes without a kind or ids skipped");
            }
            if let (0, Some(run)) = (m.remaining_parts, run_of(event, &m.sync_run_id)) {
                let as_of = event_time(event);
                let span = tracing::info_span!("attribution.switch", workspace_id = ws, sync_run_id = %run);
                return switch(conn, ws, run, as_of, settings)
                    .instrument(span)
                    .await
                    .map(Some);
            }
        }
        _ => {}
    }
    Ok(None)
}

/// The sync run an event names: `None` when it names none (empty), or when the id is not one
/// (see [`SyncRunId::parse`]; logged), which is handled as naming none.
fn run_of(event: &RecordedEvent, raw: &str) -> Option<SyncRunId> {
    if raw.trim().is_empty() {
        return None;
    }
    SyncRunId::parse(raw)
        .inspect_err(|why| {
            tracing::warn!(position = event.position, event_type = event.event_type(), problem = %why, "sync run id refused: handled as naming no run");
        })
        .ok()
}

/// Applies one batch of records to the "now" tables.
async fn apply_records(
    conn: &mut PgConnection,
    ws: &str,
    r: &RecordsPulled,
) -> Result<(), sqlx::Error> {
    if !r.engagement.is_empty() {
        let skipped = store::upsert_engagement(conn, ws, &r.engagement).await?;
        if skipped > 0 {
            tracing::warn!(workspace_id = ws, sync_run_id = %r.sync_run_id, skipped, "engagement rows without ids or a YYYY-MM-DD date skipped");
        }
    }
    store::upsert_organizations(conn, ws, &r.organizations).await?;
    store::upsert_companies(conn, ws, &r.companies).await?;
    if !r.deals.is_empty() {
        for (deal, why) in store::apply_deals(conn, ws, &r.deals).await? {
            tracing::warn!(workspace_id = ws, deal_id = %deal, problem = %why, "deal amount not usable: the deal counts without an amount");
        }
    }
    store::replace_pipelines(conn, ws, &r.pipelines).await?;
    Ok(())
}

/// Staged batches read back from the log at a time.
const READ_BACK: usize = 20;

/// Computes the workspace's numbers as of `as_of` for every window of its plan, writes them as a
/// new version and points the workspace at it.
async fn switch(
    conn: &mut PgConnection,
    ws: &str,
    run: SyncRunId,
    as_of: DateTime<Utc>,
    settings: &Settings,
) -> Result<Switched, ApplyError> {
    let (plan, last_version) = store::lock_workspace(conn, ws).await?;
    let staged = store::take_staged(conn, ws, &run).await?;
    for positions in staged.chunks(READ_BACK) {
        for e in eventlog::read_positions_in(conn, positions).await? {
            if e.workspace_id() != ws {
                continue;
            }
            match e.event() {
                Some(Event::RecordsPulled(r)) => apply_records(conn, ws, r).await?,
                Some(Event::ConnectionReconnected(c)) => {
                    let side = if c.provider == Provider::Linkedin as i32 {
                        store::AccountSide::Linkedin
                    } else {
                        store::AccountSide::Crm
                    };
                    let dropped = store::forget_account(conn, ws, side).await?;
                    tracing::info!(workspace_id = ws, ?side, dropped, previous = %c.previous_external_account_id, "the previous account's records leave the dashboard");
                }
                _ => {}
            }
        }
    }
    store::end_run(conn, ws, &run).await?;
    let windows = settings.plans.windows(plan.as_deref()).to_vec();
    let longest = windows.iter().copied().max().unwrap_or(1);
    let loaded = store::load(
        conn,
        ws,
        store::At::Now,
        store::Scope::All,
        as_of.date_naive(),
        longest,
    )
    .await?;
    let numbers = metrics::compute(
        &loaded.inputs,
        as_of.date_naive(),
        &windows,
        settings.half_life,
    );
    let version = last_version + 1;
    store::write_version(
        conn,
        &store::NewVersion {
            workspace_id: ws,
            version,
            sync_run_id: &run,
            as_of,
            half_life_days: settings.half_life.as_days(),
            windows: &windows,
        },
        &loaded,
        &numbers,
    )
    .await?;
    store::switch_to(conn, ws, version).await?;
    tracing::info!(
        version,
        batches = staged.len(),
        windows = ?windows,
        deals = loaded.inputs.deals.len(),
        engagement_rows = loaded.inputs.engagement.len(),
        "dashboard numbers switched"
    );
    Ok(Switched {
        sync_run_id: run,
        as_of,
        version,
    })
}

/// The attribution consumer.
pub struct Attribution {
    settings: Arc<Settings>,
}

impl Attribution {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Handler for Attribution {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let Some(done) = apply(&mut ctx.tx, event, &self.settings).await? else {
            return Ok(());
        };
        let run = done.sync_run_id;
        let started = ctx.new_event(Event::SyncStepStarted(SyncStepStarted {
            sync_run_id: run.to_string(),
            step: SyncStep::Attribution as i32,
        }));
        let updated = ctx.new_event(Event::AttributionUpdated(AttributionUpdated {
            sync_run_id: run.to_string(),
            as_of: Some(timestamp(done.as_of)),
        }));
        ctx.emit(
            run.run_stream(),
            ExpectedVersion::Any,
            vec![started, updated],
        );
        Ok(())
    }
}
