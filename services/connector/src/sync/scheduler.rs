//! The daily scheduler: a task in every connector replica that requests each connected
//! integration's sync when its slot comes (or once after downtime), exactly once per slot.

use super::domain::StallLimits;
use super::handlers::{RequestError, SyncRequest, request_sync_in};
use super::schedule::{self, Clock, Due, LinkedinState};
use super::store;
use super::watchdog;
use chrono::Duration as ChronoDuration;
use rp_platform::contracts::events::v1::SyncTrigger;
use rp_platform::ids::SyncRunId;
use rp_platform::provider::Provider;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the scheduler looks (default 30 s).
    pub tick: Duration,
    /// How late a slot may be noticed and still run as scheduled (default 15 min).
    pub on_time_grace: ChronoDuration,
    /// Catch-up syncs after downtime are spread over this (default 15 min).
    pub catch_up_spread: ChronoDuration,
    /// How long a CRM slot waits at most for the same workspace's LinkedIn sync (default 3 h).
    pub max_hold: ChronoDuration,
    /// How long a live run may make no progress before the watchdog fails it, per state
    /// (`CONNECTOR_STALL_REQUESTED`, `_PULL`, `_MATCHING`, `_ATTRIBUTION`: 30, 30, 20, 20 min).
    pub stall_limits: StallLimits,
}

impl SchedulerConfig {
    /// The defaults, with the watchdog's limits from the environment.
    pub fn from_env() -> Result<Self, rp_platform::config::ConfigError> {
        let d = StallLimits::default();
        let limit = |var: &str, default: ChronoDuration| {
            let std_default = default.to_std().unwrap_or(Duration::from_secs(1_800));
            rp_platform::config::duration_or(var, std_default).map(|v| {
                ChronoDuration::from_std(v)
                    .unwrap_or(default)
                    .max(ChronoDuration::seconds(1))
            })
        };
        Ok(Self {
            stall_limits: StallLimits {
                requested: limit("CONNECTOR_STALL_REQUESTED", d.requested)?,
                pull: limit("CONNECTOR_STALL_PULL", d.pull)?,
                matching: limit("CONNECTOR_STALL_MATCHING", d.matching)?,
                attribution: limit("CONNECTOR_STALL_ATTRIBUTION", d.attribution)?,
            },
            ..Self::default()
        })
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(30),
            on_time_grace: ChronoDuration::minutes(15),
            catch_up_spread: ChronoDuration::minutes(15),
            max_hold: super::domain::MAX_RUN_AGE,
            stall_limits: StallLimits::default(),
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
    pub started: Vec<SyncRunId>,
    pub joined: Vec<SyncRunId>,
    pub deferred: usize,
    /// CRM slots waiting for their workspace's LinkedIn sync (the daily cycle's order).
    pub held: usize,
    /// Runs the watchdog failed as stalled (before the slots were looked at).
    pub stalled: Vec<SyncRunId>,
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
        let mut report = TickReport::default();
        // Stalled runs first, so that a slot due now starts afresh instead of joining one.
        match watchdog::sweep(&self.pool, now, &self.config.stall_limits).await {
            Ok(stalled) => report.stalled = stalled,
            Err(e) => {
                tracing::warn!(error = %e, "sync watchdog failed; will retry at the next tick")
            }
        }
        let integrations = store::connected_integrations(&self.pool).await?;
        // What each workspace's LinkedIn sync is doing, for the daily cycle's order.
        let mut linkedin: HashMap<&str, LinkedinState> = HashMap::new();
        for i in integrations
            .iter()
            .filter(|i| i.provider == Some(Provider::Linkedin))
        {
            let due = schedule::due(
                &i.schedule,
                i.handled_slot,
                now,
                self.config.on_time_grace,
                ChronoDuration::zero(),
            ) != Due::No;
            let state = linkedin.entry(i.workspace.as_str()).or_default();
            state.due |= due;
            state.running |= i.running;
        }
        for i in &integrations {
            let jitter = schedule::jitter_for(&i.workspace, self.config.catch_up_spread);
            let (slot, trigger) = match schedule::due(
                &i.schedule,
                i.handled_slot,
                now,
                self.config.on_time_grace,
                jitter,
            ) {
                Due::No => continue,
                Due::OnTime { slot } => (slot, SyncTrigger::Scheduled),
                Due::CatchUp { slot, at } => {
                    let at = match i.catch_up_at {
                        Some(a) => a,
                        None => {
                            store::set_catch_up_at(&self.pool, i.integration, at).await?;
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
            let is_crm = matches!(i.provider, Some(Provider::Hubspot | Provider::Salesforce));
            let workspace_linkedin = linkedin.get(i.workspace.as_str()).copied();
            if is_crm && schedule::crm_waits(workspace_linkedin, slot, now, self.config.max_hold) {
                report.held += 1;
                continue;
            }
            let mut tx = self.pool.begin().await?;
            // Exactly once per slot, whatever the number of replicas: lock, re-check, mark.
            if !store::claim_slot(&mut tx, i.integration, slot).await? {
                continue;
            }
            let req = SyncRequest {
                integration: i.integration,
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
                        tracing::info!(integration_id = %i.integration, sync_run_id = %r.sync_run_id, trigger = ?trigger, "scheduled sync requested");
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
