//! Pulls: the worker that runs pull jobs, and what every pull does around the provider calls.
//!
//! * The SyncRequested consumer only records a job (handlers.rs). A worker per process claims
//!   runnable jobs (`FOR UPDATE SKIP LOCKED`, woken by NOTIFY, polling as a fallback) under a
//!   lease it renews; a worker that dies leaves a lease that runs out, and another worker takes
//!   the job over (`CONNECTOR_PULL_LEASE`, 10 s, renewed every `CONNECTOR_PULL_HEARTBEAT`, 3 s;
//!   each claim has its own owner, so a holder that was taken over cannot renew). One job per
//!   integration runs at a time (a unique index on running jobs).
//! * Whoever runs a job continues where its last append left it: each RecordsPulled of a page
//!   walk records the page cursor in the same transaction ([`progress`]), and finished objects
//!   are skipped. A fault of ours (the database away) is retried within the run for
//!   `CONNECTOR_PULL_RETRY_FOR` (2 min) before the run fails as internal.
//! * A pull appends as it goes, each append in its own short transaction that also renews the
//!   lease and checks the connection is still connected (so a pull whose lease was taken over,
//!   or whose connection was disconnected meanwhile, stops writing): SyncStarted, SyncStepStarted,
//!   RecordsPulled batches, CheckpointAdvanced once the batches it covers are in the log, and a
//!   last event (PullCompleted or CompaniesResolved) in the transaction that ends the job, or
//!   SyncFailed.
//! * Every event of a run carries the SyncRequested's correlation id and its event id as
//!   causation, and is appended inside a span whose parent is the SyncRequested's trace: one sync
//!   is one trace.
//! * Stopping a pull at any point (shutdown, lost lease, failure) leaves nothing half-written:
//!   each append is atomic, and checkpoints only move after their batches.
//!
//! | file | what |
//! |---|---|
//! | `worker` | [`PullWorker`]: claims jobs and runs them |
//! | `run` | [`Run`]: one job's appends, token, checkpoints, retries and ending |
//! | `progress` | where a running job is, so a successor continues from the last appended page |
//! | `linkedin`, `crm` | what a LinkedIn, HubSpot or Salesforce pull fetches and appends |

pub mod crm;
pub mod linkedin;
pub mod progress;
mod run;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rp_platform::eventlog::EventStore;
use sqlx::PgPool;

use crate::clients::Clients;
use crate::clock::ProviderClock;
use crate::domain::IntegrationId;
use crate::domain::plans::Plans;
use crate::vault::Vault;

pub(crate) use run::with_token;
pub use run::{Run, RunError, execute_job};
pub use worker::PullWorker;

/// When the next scheduled sync of an integration is due: what a SyncFailed for a provider
/// outage or a used-up limit tells the user. The scheduler (schedule.rs) provides the real one.
pub trait NextScheduledSync: Send + Sync + 'static {
    fn next_scheduled_sync(
        &self,
        integration: IntegrationId,
    ) -> BoxFuture<'_, Option<DateTime<Utc>>>;
}

/// No schedule known: `next_attempt_at` is left unset.
#[derive(Debug, Default)]
pub struct NoSchedule;

impl NextScheduledSync for NoSchedule {
    fn next_scheduled_sync(&self, _: IntegrationId) -> BoxFuture<'_, Option<DateTime<Utc>>> {
        Box::pin(async { None })
    }
}

/// The scheduler's answer (sync/store.rs), from the orchestration projection.
pub struct FromSchedules {
    pub pool: PgPool,
}

impl NextScheduledSync for FromSchedules {
    fn next_scheduled_sync(
        &self,
        integration: IntegrationId,
    ) -> BoxFuture<'_, Option<DateTime<Utc>>> {
        Box::pin(async move {
            match crate::sync::store::next_scheduled_sync(&self.pool, integration, Utc::now()).await
            {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the next scheduled sync");
                    None
                }
            }
        })
    }
}

/// Everything a pull needs, shared by the jobs of one process.
pub struct PullContext {
    pub pool: PgPool,
    pub store: EventStore,
    pub clients: Clients,
    pub vault: Arc<Vault>,
    pub clock: ProviderClock,
    pub plans: Plans,
    pub signpost_margin: chrono::Duration,
    pub schedule: Arc<dyn NextScheduledSync>,
    /// A job not renewed this long is another worker's to take over.
    pub lease: Duration,
    /// How often a running job renews its lease.
    pub heartbeat: Duration,
    /// How long a job retries faults of ours (the database) before failing as internal.
    pub retry_for: Duration,
    pub max_attempts: i32,
}
