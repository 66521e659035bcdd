//! The sync run's metrics (docs/metrics.md): runs by provider, trigger and outcome, their
//! durations and their steps', failures by kind, and the live runs' age at their current step.
//!
//! The projection ([`super::store::project_run`]) sees every transition of a run and reports it
//! here: [`observe`] says, purely, what a transition means (a run ended, a step completed);
//! [`Observation::already_projected`] drops what the projection's rows already showed, and
//! [`record`] counts the rest. So a run's end and a step's completion are counted once however
//! many times their transition is projected (Sync Now projects an abandoned run's end and the
//! orchestrator again later; an event of another stream re-projects the run's latest
//! transition). A transaction that rolls back after projecting (and is retried) can count a
//! transition twice; that is rare and only inflates a counter by one.
//!
//! Labels: provider (`linkedin`, `hubspot`, `salesforce`, `unknown`), trigger, outcome
//! (`completed`, `failed`, `interrupted`), step and failure kind, each from a closed set. Never a
//! workspace, integration or run id.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rp_platform::contracts::events::v1::{SyncStep, SyncTrigger};
use rp_platform::metrics::{
    Counter, Family, Gauge, GaugeF64, Histogram, Labels, enum_label, register, slow_buckets,
};
use rp_platform::provider::Provider;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::domain::{RunState, SyncRun};

/// The sync run's families.
pub struct SyncMetrics {
    /// `provider`, `trigger`, `outcome`.
    pub runs: Family<Labels<3>, Counter>,
    /// `provider`, `outcome`: from the request to the end.
    pub run_seconds: Family<Labels<2>, Histogram>,
    /// `provider`, `step`: from the step's start to its completion.
    pub step_seconds: Family<Labels<2>, Histogram>,
    /// `provider`, `kind`: runs that ended failed or interrupted.
    pub failures: Family<Labels<2>, Counter>,
    /// Runs requested or running now.
    pub live_runs: Gauge,
    /// `step`: the longest any live run at that step has gone since the step started (or, between
    /// steps, since its last step completed, or since it started or was requested).
    pub live_step_age: Family<Labels<1>, GaugeF64>,
}

static METRICS: LazyLock<SyncMetrics> = LazyLock::new(|| {
    let m = SyncMetrics {
        runs: Family::default(),
        run_seconds: Family::new_with_constructor(|| Histogram::new(slow_buckets())),
        step_seconds: Family::new_with_constructor(|| Histogram::new(slow_buckets())),
        failures: Family::default(),
        live_runs: Gauge::default(),
        live_step_age: Family::default(),
    };
    register(
        "rp_sync_runs",
        "Sync runs that ended, by provider, trigger and outcome",
        m.runs.clone(),
    );
    register(
        "rp_sync_run_duration_seconds",
        "Sync runs' time from request to end, by provider and outcome",
        m.run_seconds.clone(),
    );
    register(
        "rp_sync_step_duration_seconds",
        "Sync steps' time from start to completion, by provider and step",
        m.step_seconds.clone(),
    );
    register(
        "rp_sync_failures",
        "Sync runs that ended failed or interrupted, by provider and failure kind",
        m.failures.clone(),
    );
    register(
        "rp_sync_live_runs",
        "Sync runs requested or running now",
        m.live_runs.clone(),
    );
    register(
        "rp_sync_live_step_age_seconds",
        "The longest any live run at this step has been at it (since the step started, or its last step completed, or it started)",
        m.live_step_age.clone(),
    );
    m
});

/// The sync run's families.
pub fn metrics() -> &'static SyncMetrics {
    &METRICS
}

/// Registers the families and makes every failure kind's series exist at 0 for every provider,
/// so an alert on a counter's increase sees its first failure.
pub fn init() {
    let m = metrics();
    for p in Provider::ALL {
        for kind in failure_kinds() {
            let _ = m
                .failures
                .get_or_create(&[("provider", p.slug().into()), ("kind", kind)]);
        }
    }
}

fn failure_kinds() -> impl Iterator<Item = String> {
    use rp_platform::contracts::events::v1::FailureKind;
    (1..64)
        .map_while(|n| FailureKind::try_from(n).ok())
        .map(kind_label)
}

fn kind_label(k: rp_platform::contracts::events::v1::FailureKind) -> String {
    enum_label(k.as_str_name(), "FAILURE_KIND_")
}

/// A provider as its label: its slug, `unknown` when the event number names none.
pub fn provider_label(provider: i32) -> String {
    Provider::from_event(provider)
        .map_or("unknown", |p| p.slug())
        .to_string()
}

pub fn step_label(step: SyncStep) -> String {
    enum_label(step.as_str_name(), "SYNC_STEP_")
}

fn trigger_label(trigger: SyncTrigger) -> String {
    enum_label(trigger.as_str_name(), "SYNC_TRIGGER_")
}

/// What one transition of a run means for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The run ended with this transition.
    pub ended: Option<Ended>,
    /// Steps that completed with this transition, and how long each took (seconds).
    pub steps: Vec<(SyncStep, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub outcome: &'static str,
    pub trigger: String,
    /// From the request (or start) to the end, when both are known.
    pub seconds: Option<f64>,
    /// Failed or interrupted: why.
    pub kind: Option<String>,
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0) as f64) / 1000.0
}

impl Observation {
    /// Nothing to count.
    pub fn is_empty(&self) -> bool {
        self.ended.is_none() && self.steps.is_empty()
    }

    /// Drops what the projection already showed before this transition was written: the run
    /// in `state` (its row's state name, if it had a row), these steps completed.
    pub fn already_projected(mut self, state: Option<&str>, completed: &[SyncStep]) -> Self {
        if state.is_some_and(is_finished_name) {
            self.ended = None;
        }
        self.steps.retain(|(s, _)| !completed.contains(s));
        self
    }
}

/// Whether a projected state name (`RunState::name`) is a finished run's.
fn is_finished_name(name: &str) -> bool {
    use rp_platform::contracts::events::v1::FailureKind;
    [
        RunState::Completed,
        RunState::Failed(FailureKind::Unspecified),
        RunState::Interrupted(FailureKind::Unspecified),
    ]
    .iter()
    .any(|s| s.name() == name)
}

/// What the transition `before` → `after` means.
pub fn observe(before: &SyncRun, after: &SyncRun) -> Observation {
    let ended = (!before.state.is_finished() && after.state.is_finished()).then(|| Ended {
        outcome: after.state.name(),
        trigger: trigger_label(after.trigger),
        seconds: after
            .requested_at
            .or(after.started_at)
            .zip(after.finished_at)
            .map(|(from, to)| seconds(from, to)),
        kind: match after.state {
            RunState::Failed(k) | RunState::Interrupted(k) => Some(kind_label(k)),
            _ => None,
        },
    });
    let steps = after
        .steps
        .iter()
        .filter_map(|s| {
            let done = s.completed_at?;
            let was_done = before
                .steps
                .iter()
                .any(|b| b.step == s.step && b.completed_at.is_some());
            (!was_done).then(|| (s.step, seconds(s.started_at, done)))
        })
        .collect();
    Observation { ended, steps }
}

/// Counts what [`observe`] found, for a run of `provider` (its event number).
pub fn record(provider: i32, o: &Observation) {
    let m = metrics();
    let provider = provider_label(provider);
    for (step, secs) in &o.steps {
        m.step_seconds
            .get_or_create(&[("provider", provider.clone()), ("step", step_label(*step))])
            .observe(*secs);
    }
    let Some(end) = &o.ended else { return };
    m.runs
        .get_or_create(&[
            ("provider", provider.clone()),
            ("trigger", end.trigger.clone()),
            ("outcome", end.outcome.to_string()),
        ])
        .inc();
    if let Some(secs) = end.seconds {
        m.run_seconds
            .get_or_create(&[
                ("provider", provider.clone()),
                ("outcome", end.outcome.to_string()),
            ])
            .observe(secs);
    }
    if let Some(kind) = &end.kind {
        m.failures
            .get_or_create(&[("provider", provider), ("kind", kind.clone())])
            .inc();
    }
}

/// How often the live runs are counted.
pub const LIVE_REFRESH: Duration = Duration::from_secs(15);

/// Keeps `rp_sync_live_runs` and `rp_sync_live_step_age_seconds` from the projection, every
/// [`LIVE_REFRESH`] until `cancel` (each connector replica reports the same values).
pub async fn watch_live_runs(pool: PgPool, cancel: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(LIVE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Err(e) = refresh_live_runs(&pool).await {
            tracing::warn!(error = %e, "cannot count the live sync runs; will try again");
        }
    }
}

/// Reads the live runs once and sets the gauges.
pub async fn refresh_live_runs(pool: &PgPool) -> Result<(), sqlx::Error> {
    // Only the integrations' active runs: a small table, joined by primary key.
    let rows: Vec<(i32, f64)> = sqlx::query_as(
        "SELECT r.current_step, EXTRACT(EPOCH FROM now() - COALESCE( \
             (SELECT max(COALESCE(s.completed_at, s.started_at)) FROM sync_run_steps s \
              WHERE s.sync_run_id = r.sync_run_id), \
             r.started_at, r.requested_at))::float8 \
         FROM sync_integrations i JOIN sync_runs r ON r.sync_run_id = i.active_run_id \
         WHERE r.state IN ('requested', 'running')",
    )
    .fetch_all(pool)
    .await?;
    let m = metrics();
    m.live_runs.set(rows.len() as i64);
    let mut oldest: Vec<(SyncStep, f64)> = (0..64)
        .map_while(|n| SyncStep::try_from(n).ok())
        .map(|s| (s, 0.0))
        .collect();
    for (step, age) in rows {
        let step = SyncStep::try_from(step).unwrap_or(SyncStep::Unspecified);
        if let Some(slot) = oldest.iter_mut().find(|(s, _)| *s == step) {
            slot.1 = slot.1.max(age.max(0.0));
        }
    }
    for (step, age) in oldest {
        m.live_step_age
            .get_or_create(&[("step", step_label(step))])
            .set(age);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::domain::{Failure, StepProgress};
    use rp_platform::contracts::events::v1::FailureKind;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn running() -> SyncRun {
        SyncRun {
            state: RunState::Running(SyncStep::LinkedinPull),
            trigger: SyncTrigger::Manual,
            requested_at: Some(at(0)),
            started_at: Some(at(1)),
            steps: vec![StepProgress {
                step: SyncStep::LinkedinPull,
                started_at: at(1),
                completed_at: None,
                records: 0,
            }],
            ..SyncRun::default()
        }
    }

    #[test]
    fn a_completed_step_is_timed_once() {
        let before = running();
        let mut after = before.clone();
        after.steps[0].completed_at = Some(at(31));
        let o = observe(&before, &after);
        assert_eq!(o.steps, vec![(SyncStep::LinkedinPull, 30.0)]);
        assert_eq!(o.ended, None);
        // The next transition does not time it again, nor does projecting this one again.
        assert_eq!(observe(&after, &after).steps, vec![]);
        assert!(
            o.already_projected(Some("running"), &[SyncStep::LinkedinPull])
                .is_empty()
        );
    }

    #[test]
    fn a_completed_run_is_counted_with_its_trigger_and_duration() {
        let before = running();
        let mut after = before.clone();
        after.state = RunState::Completed;
        after.finished_at = Some(at(90));
        let o = observe(&before, &after);
        assert_eq!(
            o.ended,
            Some(Ended {
                outcome: "completed",
                trigger: "manual".into(),
                seconds: Some(90.0),
                kind: None,
            })
        );
    }

    #[test]
    fn a_failed_run_names_its_kind_and_is_counted_once() {
        let before = running();
        let mut after = before.clone();
        after.state = RunState::Failed(FailureKind::ProviderOutage);
        after.finished_at = Some(at(10));
        after.failure = Some(Failure {
            kind: FailureKind::ProviderOutage,
            step: SyncStep::LinkedinPull,
            message: "503".into(),
            location: "pull".into(),
            next_attempt_at: None,
        });
        let o = observe(&before, &after);
        let end = o.ended.clone().unwrap();
        assert_eq!(
            (end.outcome, end.kind.as_deref()),
            ("failed", Some("provider_outage"))
        );
        // Projected again (the orchestrator after Sync Now): already counted.
        assert_eq!(o.clone().already_projected(Some("failed"), &[]).ended, None);
        assert!(o.already_projected(Some("running"), &[]).ended.is_some());
        let mut stalled = after.clone();
        stalled.state = RunState::Interrupted(FailureKind::Stalled);
        let end = observe(&before, &stalled).ended.unwrap();
        assert_eq!(
            (end.outcome, end.kind.as_deref()),
            ("interrupted", Some("stalled"))
        );
    }

    #[test]
    fn every_failure_kind_has_a_label() {
        let kinds: Vec<String> = failure_kinds().collect();
        for k in [
            "provider_outage",
            "bad_payload",
            "authorization",
            "rate_limited",
            "internal",
            "api_version",
            "stalled",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
        assert_eq!(provider_label(1), "linkedin");
        assert_eq!(provider_label(0), "unknown");
    }
}
