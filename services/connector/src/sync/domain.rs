//! The sync run as a pure aggregate: its states, the commands it accepts, and how its events
//! move it. No I/O: the handlers load a run from its stream (`syncrun-<id>`), ask [`decide`], and
//! append what it says; the projection folds the same events with [`apply`]. The table in
//! docs/sync.md is this module.

use chrono::{DateTime, Duration, Utc};
use rp_platform::contracts::events::v1::{
    FailureKind, ObjectCount, SyncCompleted, SyncFailed, SyncRequested, SyncStep, SyncTrigger,
    envelope::Event,
};
use rp_platform::contracts::{from_timestamp, timestamp};
use rp_platform::ids::SyncRunId;
use rp_platform::provider::Provider;

/// A run that has not finished after this long is considered abandoned (its process died and
/// nobody resumed it): the next request fails it and starts afresh.
pub const MAX_RUN_AGE: Duration = Duration::hours(3);

/// How long a live run may go without progress before the watchdog interrupts it, per state.
/// Progress is any event of the run (its steps, its pulled batches). The defaults fit the
/// typical workspace with a wide margin: a typical cycle takes about a minute, a pull appends a
/// batch every few seconds even under HubSpot's rate limit, and matching a 1M x 1M workspace
/// takes a few minutes (docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallLimits {
    /// Requested, not yet started: waiting for a pull worker (behind others when many runs
    /// start at once).
    pub requested: Duration,
    /// Pulling (LinkedIn, company resolution, CRM): no batch appended for this long.
    pub pull: Duration,
    pub matching: Duration,
    pub attribution: Duration,
}

impl Default for StallLimits {
    fn default() -> Self {
        Self {
            requested: Duration::minutes(30),
            pull: Duration::minutes(30),
            matching: Duration::minutes(20),
            attribution: Duration::minutes(20),
        }
    }
}

impl StallLimits {
    /// The limit for a run in `state`; `None` for a run that is not live.
    pub fn limit(&self, state: RunState) -> Option<Duration> {
        match state {
            RunState::Requested => Some(self.requested),
            RunState::Running(SyncStep::Matching) => Some(self.matching),
            RunState::Running(SyncStep::Attribution) => Some(self.attribution),
            RunState::Running(_) => Some(self.pull),
            _ => None,
        }
    }
}

/// The watchdog's verdict on a run whose last progress was at `last_progress`: the failure to
/// end it with when it is live and has made no progress for longer than its state's limit.
pub fn stalled(
    run: &SyncRun,
    last_progress: DateTime<Utc>,
    now: DateTime<Utc>,
    limits: &StallLimits,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Option<Failure> {
    let limit = limits.limit(run.state)?;
    let idle = now - last_progress;
    if idle <= limit {
        return None;
    }
    let step = run.state.step();
    let at = match step {
        SyncStep::Unspecified => "before its first step".to_string(),
        s => format!("at {}", step_words(s)),
    };
    Some(Failure {
        kind: FailureKind::Stalled,
        step,
        message: format!(
            "the sync made no progress {at} for {} minutes (the limit is {}); it was stopped so \
             that the next sync starts afresh",
            idle.num_minutes(),
            limit.num_minutes()
        ),
        location: "watchdog".into(),
        next_attempt_at,
    })
}

/// A step in words, for messages.
pub fn step_words(step: SyncStep) -> &'static str {
    match step {
        SyncStep::LinkedinPull => "the LinkedIn pull",
        SyncStep::CompanyResolution => "company resolution",
        SyncStep::CrmPull => "the CRM pull",
        SyncStep::Matching => "matching",
        SyncStep::Attribution => "attribution",
        SyncStep::Unspecified => "an unknown step",
    }
}

/// The failure that ends a run one of whose events a consumer gave up on (dead-lettered): the
/// step that event belonged to can never complete.
pub fn dead_lettered(
    run: &SyncRun,
    consumer: &str,
    event_type: &str,
    error: &str,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Option<Failure> {
    if !run.state.is_live() {
        return None;
    }
    let error: String = error.chars().take(200).collect();
    Some(Failure {
        kind: FailureKind::Stalled,
        step: run.state.step(),
        message: format!(
            "the {consumer} service could not handle {event_type} ({error}); the sync was stopped \
             so that the next one starts afresh"
        ),
        location: format!("dead letter: {consumer}"),
        next_attempt_at,
    })
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Nothing of the run has been seen yet (an empty stream).
    NotRequested,
    Requested,
    /// Running, at this step (`Unspecified` between SyncStarted and the first step).
    Running(SyncStep),
    Completed,
    /// Failed for a reason the next scheduled sync may not have (outage, bad data, ...).
    Failed(FailureKind),
    /// Interrupted because the connection was lost mid-run.
    Interrupted(FailureKind),
}

impl RunState {
    /// Requested or running: the integration's active run.
    pub fn is_live(self) -> bool {
        matches!(self, RunState::Requested | RunState::Running(_))
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed(_) | RunState::Interrupted(_)
        )
    }

    /// The one spelling of a state outside Rust: the projection's `state` column and the API's
    /// `SyncRun.state`.
    pub fn name(self) -> &'static str {
        match self {
            RunState::NotRequested => "not_requested",
            RunState::Requested => "requested",
            RunState::Running(_) => "running",
            RunState::Completed => "completed",
            RunState::Failed(_) => "failed",
            RunState::Interrupted(_) => "interrupted",
        }
    }

    /// The step the run is at (or stopped at), `Unspecified` when none.
    pub fn step(self) -> SyncStep {
        match self {
            RunState::Running(s) => s,
            _ => SyncStep::Unspecified,
        }
    }

    /// The failure kind of a failed or interrupted run.
    pub fn failure_kind(self) -> Option<FailureKind> {
        match self {
            RunState::Failed(k) | RunState::Interrupted(k) => Some(k),
            _ => None,
        }
    }

    /// The Connections page's "last attempt" words: `running` (requested or running),
    /// `completed`, `failed: provider_outage`, `interrupted: authorization`.
    pub fn outcome(self) -> String {
        match self.failure_kind() {
            Some(k) => format!("{}: {}", self.name(), failure_kind_name(k)),
            None if self.is_live() => "running".to_string(),
            None => self.name().to_string(),
        }
    }
}

pub fn failure_kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::ProviderOutage => "provider_outage",
        FailureKind::BadPayload => "bad_payload",
        FailureKind::Authorization => "authorization",
        FailureKind::RateLimited => "rate_limited",
        FailureKind::Internal => "internal",
        FailureKind::ApiVersion => "api_version",
        FailureKind::Stalled => "stalled",
        FailureKind::Unspecified => "unknown",
    }
}

/// Why a run failed, as SyncFailed says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub step: SyncStep,
    pub message: String,
    pub location: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One step of a run: when it started, when it completed, how many records it handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress {
    pub step: SyncStep,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub records: i64,
}

/// A sync run, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: Option<SyncRunId>,
    pub state: RunState,
    pub trigger: SyncTrigger,
    pub requested_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The step a failure stopped at, else the last step started.
    pub last_step: SyncStep,
    pub failure: Option<Failure>,
    pub steps: Vec<StepProgress>,
    /// Per-object counts of the run's pulls (its PullCompleted events).
    pub counts: Vec<ObjectCount>,
}

impl Default for SyncRun {
    fn default() -> Self {
        Self {
            id: None,
            state: RunState::NotRequested,
            trigger: SyncTrigger::Unspecified,
            requested_at: None,
            started_at: None,
            finished_at: None,
            last_step: SyncStep::Unspecified,
            failure: None,
            steps: Vec::new(),
            counts: Vec::new(),
        }
    }
}

/// What a request asks of a run, or of the integration's active run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start a sync (Sync Now, the scheduler), decided against the integration's active run
    /// ([`SyncRun::default`] when it has none): join it if it is live, fail it first if it is
    /// abandoned.
    Request {
        new_run: SyncRunId,
        trigger: SyncTrigger,
        requested_by: String,
        scheduled_for: Option<DateTime<Utc>>,
    },
    /// The last step reported: the run is complete.
    Complete,
    /// The run cannot go on.
    Fail(Failure),
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A run of the integration is live: the request joins it.
    #[error("sync run {run} is already running")]
    Running { run: SyncRunId },
    /// The run has already finished (a duplicate or late command).
    #[error("the sync run has already finished ({})", .0.name())]
    Finished(RunState),
    /// The run was never requested.
    #[error("no such sync run")]
    NotRequested,
}

/// What the command makes happen: the events to append, each to the stream of the run it names
/// (`sync_run_id`). Pure and total.
pub fn decide(run: &SyncRun, command: Command, now: DateTime<Utc>) -> Result<Vec<Event>, Refusal> {
    match command {
        Command::Request {
            new_run,
            trigger,
            requested_by,
            scheduled_for,
        } => {
            let mut events = Vec::new();
            if let (true, Some(active)) = (run.state.is_live(), run.id.as_ref()) {
                let fresh = run.requested_at.is_none_or(|t| now - t < MAX_RUN_AGE);
                if fresh {
                    return Err(Refusal::Running {
                        run: active.clone(),
                    });
                }
                // Abandoned: fail it so its history says so, then start afresh.
                events.push(Event::SyncFailed(SyncFailed {
                    sync_run_id: active.to_string(),
                    kind: FailureKind::Internal as i32,
                    step: run.state.step() as i32,
                    message: format!(
                        "the sync did not finish within {} hours",
                        MAX_RUN_AGE.num_hours()
                    ),
                    ..Default::default()
                }));
            }
            events.push(Event::SyncRequested(SyncRequested {
                sync_run_id: new_run.to_string(),
                trigger: trigger as i32,
                requested_by,
                scheduled_for: scheduled_for.map(timestamp),
            }));
            Ok(events)
        }
        Command::Complete | Command::Fail(_) if run.state.is_finished() => {
            Err(Refusal::Finished(run.state))
        }
        Command::Complete | Command::Fail(_) if run.id.is_none() => Err(Refusal::NotRequested),
        Command::Complete => Ok(vec![Event::SyncCompleted(SyncCompleted {
            sync_run_id: run.id.as_ref().map(ToString::to_string).unwrap_or_default(),
            counts: run.counts.clone(),
        })]),
        Command::Fail(f) => Ok(vec![Event::SyncFailed(SyncFailed {
            sync_run_id: run.id.as_ref().map(ToString::to_string).unwrap_or_default(),
            kind: f.kind as i32,
            step: f.step as i32,
            message: f.message,
            location: f.location,
            next_attempt_at: f.next_attempt_at.map(timestamp),
        })]),
    }
}

/// The step an event reports, and whether it reports the step's completion.
pub fn step_of(event: &Event) -> Option<(SyncStep, bool)> {
    let step = |n: i32| SyncStep::try_from(n).unwrap_or(SyncStep::Unspecified);
    match event {
        Event::SyncStepStarted(s) => Some((step(s.step), false)),
        Event::PullCompleted(p) => Some((step(p.step), true)),
        Event::CompaniesResolved(_) => Some((SyncStep::CompanyResolution, true)),
        // Only the last part of a split result completes the matching step.
        Event::AccountsMatched(m) if m.remaining_parts == 0 => Some((SyncStep::Matching, true)),
        Event::AttributionUpdated(_) => Some((SyncStep::Attribution, true)),
        _ => None,
    }
}

/// The run an event belongs to, if it is one of a run's events.
pub fn run_of(event: &Event) -> Option<&str> {
    let id = match event {
        Event::SyncRequested(e) => &e.sync_run_id,
        Event::SyncStarted(e) => &e.sync_run_id,
        Event::SyncStepStarted(e) => &e.sync_run_id,
        Event::PullCompleted(e) => &e.sync_run_id,
        Event::CompaniesResolved(e) => &e.sync_run_id,
        Event::AccountsMatched(e) => &e.sync_run_id,
        Event::AttributionUpdated(e) => &e.sync_run_id,
        Event::SyncCompleted(e) => &e.sync_run_id,
        Event::SyncFailed(e) => &e.sync_run_id,
        _ => return None,
    };
    (!id.is_empty()).then_some(id.as_str())
}

/// The run after `event`, which happened at `at`. Total: a duplicate changes nothing, a finished
/// run stays finished, and events that arrive before the request still move the run forward.
pub fn apply(mut run: SyncRun, event: &Event, at: DateTime<Utc>) -> SyncRun {
    if run.id.is_none() {
        run.id = run_of(event).and_then(|id| SyncRunId::parse(id).ok());
    }
    if let Some((step, completed)) = step_of(event) {
        let records = match event {
            Event::PullCompleted(p) => p.counts.iter().map(|c| c.records as i64).sum(),
            Event::CompaniesResolved(c) => c.organizations as i64,
            Event::AccountsMatched(m) => m.matched as i64,
            _ => 0,
        };
        match run.steps.iter_mut().find(|s| s.step == step) {
            Some(s) => {
                if completed {
                    s.completed_at = s.completed_at.or(Some(at));
                }
                s.records = s.records.max(records);
            }
            None => run.steps.push(StepProgress {
                step,
                started_at: at,
                completed_at: completed.then_some(at),
                records,
            }),
        }
        if let Event::PullCompleted(p) = event {
            run.counts.extend(p.counts.iter().cloned());
        }
        if !completed && !run.state.is_finished() {
            run.state = RunState::Running(step);
            run.last_step = step;
            run.started_at = run.started_at.or(Some(at));
        }
        return run;
    }
    match event {
        Event::SyncRequested(r) => {
            if run.state == RunState::NotRequested {
                run.state = RunState::Requested;
            }
            if run.requested_at.is_none() {
                run.requested_at = Some(at);
                run.trigger = SyncTrigger::try_from(r.trigger).unwrap_or(SyncTrigger::Unspecified);
            }
        }
        Event::SyncStarted(_) if !run.state.is_finished() => {
            if !matches!(run.state, RunState::Running(_)) {
                run.state = RunState::Running(SyncStep::Unspecified);
            }
            run.started_at = run.started_at.or(Some(at));
        }
        Event::SyncCompleted(_) if !run.state.is_finished() => {
            run.state = RunState::Completed;
            run.finished_at = Some(at);
        }
        Event::SyncFailed(f) if !run.state.is_finished() => {
            let kind = FailureKind::try_from(f.kind).unwrap_or(FailureKind::Internal);
            let step = SyncStep::try_from(f.step).unwrap_or(SyncStep::Unspecified);
            run.state = if kind == FailureKind::Authorization {
                RunState::Interrupted(kind)
            } else {
                RunState::Failed(kind)
            };
            if step != SyncStep::Unspecified {
                run.last_step = step;
            }
            run.finished_at = Some(at);
            run.failure = Some(Failure {
                kind,
                step,
                message: f.message.clone(),
                location: f.location.clone(),
                next_attempt_at: f.next_attempt_at.as_ref().and_then(from_timestamp),
            });
        }
        _ => {}
    }
    run
}

/// What the log says about a connection right now: its last Connection* event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionFacts {
    pub provider: Option<Provider>,
    pub connected: bool,
}

impl ConnectionFacts {
    /// What one event says of the connection: `None` unless it is a Connection* event.
    pub fn of(e: &Event) -> Option<Self> {
        let (provider, connected) = match e {
            Event::ConnectionConnected(c) => (c.provider, true),
            Event::ConnectionReconnected(c) => (c.provider, true),
            Event::ConnectionDisconnected(c) => (c.provider, false),
            _ => return None,
        };
        Some(Self {
            provider: Provider::from_event(provider),
            connected,
        })
    }

    /// Folds a connection stream's events; `None` when it holds no Connection* event.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<Self> {
        events.into_iter().filter_map(Self::of).last()
    }

    /// The provider as people read it.
    pub fn provider_name(&self) -> &'static str {
        self.provider
            .map_or("The integration", Provider::display_name)
    }
}

#[cfg(test)]
mod tests {
    //! Given a run's past events, when one more happens or a command arrives, then this state or
    //! these events: every row of docs/sync.md's table, and the awkward orders.
    use super::*;
    use rp_platform::contracts::events::v1::{
        AccountsMatched, AttributionUpdated, CompaniesResolved, ObjectType, PullCompleted,
        SyncStarted, SyncStepStarted,
    };

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(min)
    }

    const RUN: &str = "run-1";

    fn requested(trigger: SyncTrigger) -> Event {
        Event::SyncRequested(SyncRequested {
            sync_run_id: RUN.into(),
            trigger: trigger as i32,
            ..Default::default()
        })
    }
    fn started() -> Event {
        Event::SyncStarted(SyncStarted {
            sync_run_id: RUN.into(),
            ..Default::default()
        })
    }
    fn step(s: SyncStep) -> Event {
        Event::SyncStepStarted(SyncStepStarted {
            sync_run_id: RUN.into(),
            step: s as i32,
        })
    }
    fn pulled(s: SyncStep, records: u64) -> Event {
        Event::PullCompleted(PullCompleted {
            sync_run_id: RUN.into(),
            step: s as i32,
            counts: vec![ObjectCount {
                object_type: ObjectType::CrmCompany as i32,
                records,
            }],
        })
    }
    fn attribution() -> Event {
        Event::AttributionUpdated(AttributionUpdated {
            sync_run_id: RUN.into(),
            as_of: None,
        })
    }
    fn completed() -> Event {
        Event::SyncCompleted(SyncCompleted {
            sync_run_id: RUN.into(),
            counts: vec![],
        })
    }
    fn failed(kind: FailureKind, s: SyncStep) -> Event {
        Event::SyncFailed(SyncFailed {
            sync_run_id: RUN.into(),
            kind: kind as i32,
            step: s as i32,
            message: "why".into(),
            ..Default::default()
        })
    }

    /// Folds `events`, the i-th at minute i.
    fn given(events: &[Event]) -> SyncRun {
        events
            .iter()
            .enumerate()
            .fold(SyncRun::default(), |run, (i, e)| apply(run, e, t(i as i64)))
    }

    fn request() -> Command {
        Command::Request {
            new_run: SyncRunId::parse("run-2").unwrap(),
            trigger: SyncTrigger::Manual,
            requested_by: "test".into(),
            scheduled_for: None,
        }
    }

    #[test]
    fn the_watchdog_stops_a_live_run_idle_past_its_steps_limit_and_nothing_else() {
        let limits = StallLimits::default();
        let next = Some(t(24 * 60));
        // Matching: 20 minutes without an event of the run.
        let run = given(&[
            requested(SyncTrigger::Manual),
            started(),
            step(SyncStep::Matching),
        ]);
        assert_eq!(
            stalled(&run, t(2), t(22), &limits, next),
            None,
            "20 min is the limit"
        );
        let f = stalled(&run, t(2), t(23), &limits, next).expect("21 min idle");
        assert_eq!(f.kind, FailureKind::Stalled);
        assert_eq!(f.step, SyncStep::Matching);
        assert_eq!(f.next_attempt_at, next);
        assert!(
            f.message.contains("no progress at matching for 21 minutes"),
            "{}",
            f.message
        );
        // The failure ends the run as any failure does: failed, stalled, at its step.
        let ended = apply(
            run.clone(),
            &decide(&run, Command::Fail(f), t(23)).unwrap()[0],
            t(23),
        );
        assert_eq!(ended.state, RunState::Failed(FailureKind::Stalled));
        assert_eq!(ended.state.outcome(), "failed: stalled");
        // A pull has its own limit; a finished run is never stalled.
        let pulling = given(&[requested(SyncTrigger::Manual), step(SyncStep::CrmPull)]);
        assert!(stalled(&pulling, t(1), t(30), &limits, None).is_none());
        assert!(stalled(&pulling, t(1), t(32), &limits, None).is_some());
        let done = given(&[requested(SyncTrigger::Manual), completed()]);
        assert!(stalled(&done, t(0), t(10_000), &limits, None).is_none());
        // Never started: waiting for a worker.
        let waiting = given(&[requested(SyncTrigger::Scheduled)]);
        let f = stalled(&waiting, t(0), t(31), &limits, None).unwrap();
        assert!(f.message.contains("before its first step"), "{}", f.message);
    }

    #[test]
    fn a_dead_lettered_event_of_a_live_run_fails_it_with_the_reason() {
        let run = given(&[requested(SyncTrigger::Manual), step(SyncStep::Matching)]);
        let f = dead_lettered(&run, "matcher", "PullCompleted", "bad id", None).unwrap();
        assert_eq!((f.kind, f.step), (FailureKind::Stalled, SyncStep::Matching));
        assert!(
            f.message
                .contains("matcher service could not handle PullCompleted (bad id)")
        );
        let done = given(&[requested(SyncTrigger::Manual), completed()]);
        assert_eq!(dead_lettered(&done, "matcher", "X", "y", None), None);
    }

    #[test]
    fn a_request_makes_a_requested_run_whatever_its_trigger() {
        for trigger in [
            SyncTrigger::Scheduled,
            SyncTrigger::Manual,
            SyncTrigger::CatchUp,
        ] {
            let run = given(&[requested(trigger)]);
            assert_eq!(run.state, RunState::Requested);
            assert_eq!(run.trigger, trigger);
            assert_eq!(run.requested_at, Some(t(0)));
            assert_eq!(run.id.as_ref().map(SyncRunId::as_str), Some(RUN));
            assert_eq!(run.state.outcome(), "running");
        }
    }

    #[test]
    fn started_and_each_step_make_it_running_at_that_step() {
        let run = given(&[requested(SyncTrigger::Manual), started()]);
        assert_eq!(run.state, RunState::Running(SyncStep::Unspecified));
        assert_eq!(run.started_at, Some(t(1)));
        let run = given(&[
            requested(SyncTrigger::Manual),
            started(),
            step(SyncStep::LinkedinPull),
            pulled(SyncStep::LinkedinPull, 7),
            step(SyncStep::CrmPull),
        ]);
        assert_eq!(run.state, RunState::Running(SyncStep::CrmPull));
        assert_eq!(run.state.name(), "running");
        let li = &run.steps[0];
        assert_eq!(
            (li.step, li.started_at, li.completed_at, li.records),
            (SyncStep::LinkedinPull, t(2), Some(t(3)), 7)
        );
        assert_eq!(run.steps[1].completed_at, None);
    }

    #[test]
    fn completion_reports_complete_their_steps_without_moving_the_state() {
        let run = given(&[
            requested(SyncTrigger::Manual),
            step(SyncStep::CompanyResolution),
            Event::CompaniesResolved(CompaniesResolved {
                sync_run_id: RUN.into(),
                organizations: 4,
            }),
            step(SyncStep::Matching),
            Event::AccountsMatched(AccountsMatched {
                sync_run_id: RUN.into(),
                matched: 3,
                remaining_parts: 1,
                ..Default::default()
            }),
        ]);
        assert_eq!(run.state, RunState::Running(SyncStep::Matching));
        assert_eq!(run.steps[0].records, 4);
        // A split match result completes the step only with its last part.
        assert_eq!(run.steps[1].completed_at, None);
        let run = apply(
            run,
            &Event::AccountsMatched(AccountsMatched {
                sync_run_id: RUN.into(),
                matched: 5,
                remaining_parts: 0,
                ..Default::default()
            }),
            t(9),
        );
        assert_eq!(run.steps[1].completed_at, Some(t(9)));
        assert_eq!(run.steps[1].records, 5);
    }

    #[test]
    fn the_attribution_report_lets_the_run_complete_with_its_pulls_counts() {
        let run = given(&[
            requested(SyncTrigger::Scheduled),
            started(),
            pulled(SyncStep::LinkedinPull, 3),
            pulled(SyncStep::CrmPull, 4),
            attribution(),
        ]);
        let events = decide(&run, Command::Complete, t(10)).unwrap();
        let [Event::SyncCompleted(c)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(c.sync_run_id, RUN);
        assert_eq!(
            c.counts.iter().map(|c| c.records).collect::<Vec<_>>(),
            [3, 4]
        );
        let done = apply(run, &events[0], t(10));
        assert_eq!(done.state, RunState::Completed);
        assert_eq!(done.finished_at, Some(t(10)));
        assert_eq!(done.state.outcome(), "completed");
    }

    #[test]
    fn failures_fail_it_by_kind_and_a_lost_connection_interrupts_it() {
        for kind in [
            FailureKind::ProviderOutage,
            FailureKind::BadPayload,
            FailureKind::RateLimited,
            FailureKind::Internal,
        ] {
            let run = given(&[
                requested(SyncTrigger::Manual),
                step(SyncStep::CrmPull),
                failed(kind, SyncStep::CrmPull),
            ]);
            assert_eq!(run.state, RunState::Failed(kind));
            assert_eq!(run.last_step, SyncStep::CrmPull);
            assert_eq!(
                run.failure.as_ref().map(|f| f.message.as_str()),
                Some("why")
            );
            assert_eq!(
                run.state.outcome(),
                format!("failed: {}", failure_kind_name(kind))
            );
        }
        let run = given(&[
            requested(SyncTrigger::Manual),
            failed(FailureKind::Authorization, SyncStep::Unspecified),
        ]);
        assert_eq!(run.state, RunState::Interrupted(FailureKind::Authorization));
        assert_eq!(run.state.outcome(), "interrupted: authorization");
    }

    #[test]
    fn a_request_while_a_run_is_live_joins_it() {
        for past in [
            vec![requested(SyncTrigger::Scheduled)],
            vec![requested(SyncTrigger::Scheduled), step(SyncStep::CrmPull)],
        ] {
            let active = given(&past);
            assert_eq!(
                decide(&active, request(), t(60)),
                Err(Refusal::Running {
                    run: SyncRunId::parse(RUN).unwrap()
                })
            );
        }
    }

    #[test]
    fn a_request_with_no_live_run_starts_one() {
        for active in [
            SyncRun::default(),
            given(&[requested(SyncTrigger::Manual), completed()]),
            given(&[
                requested(SyncTrigger::Manual),
                failed(FailureKind::ProviderOutage, SyncStep::CrmPull),
            ]),
        ] {
            let events = decide(&active, request(), t(5)).unwrap();
            let [Event::SyncRequested(r)] = events.as_slice() else {
                panic!("{events:?}")
            };
            assert_eq!(r.sync_run_id, "run-2");
            assert_eq!(r.trigger, SyncTrigger::Manual as i32);
        }
    }

    #[test]
    fn an_abandoned_run_is_failed_before_a_new_one_starts() {
        let active = given(&[requested(SyncTrigger::Scheduled), step(SyncStep::CrmPull)]);
        let late = t(0) + MAX_RUN_AGE;
        let events = decide(&active, request(), late).unwrap();
        let [Event::SyncFailed(f), Event::SyncRequested(r)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(f.sync_run_id, RUN);
        assert_eq!(f.kind, FailureKind::Internal as i32);
        assert_eq!(f.step, SyncStep::CrmPull as i32);
        assert!(f.message.contains("did not finish within 3 hours"));
        assert_eq!(r.sync_run_id, "run-2");
        let ended = apply(active, &events[0], late);
        assert_eq!(ended.state, RunState::Failed(FailureKind::Internal));
        // Just under the limit it is still joined.
        let active = given(&[requested(SyncTrigger::Scheduled)]);
        assert!(matches!(
            decide(&active, request(), late - Duration::seconds(1)),
            Err(Refusal::Running { .. })
        ));
    }

    #[test]
    fn duplicates_change_nothing() {
        let once = given(&[requested(SyncTrigger::Manual), step(SyncStep::CrmPull)]);
        let twice = given(&[
            requested(SyncTrigger::Manual),
            requested(SyncTrigger::Scheduled),
            step(SyncStep::CrmPull),
        ]);
        assert_eq!(twice.state, once.state);
        assert_eq!(twice.trigger, SyncTrigger::Manual);
        assert_eq!(twice.requested_at, Some(t(0)));
        let done = given(&[requested(SyncTrigger::Manual), completed()]);
        let again = apply(done.clone(), &completed(), t(9));
        assert_eq!(again, done);
        assert_eq!(
            decide(&done, Command::Complete, t(9)),
            Err(Refusal::Finished(RunState::Completed))
        );
    }

    #[test]
    fn a_finished_run_stays_finished_whatever_arrives_late() {
        let failed_run = given(&[
            requested(SyncTrigger::Manual),
            failed(FailureKind::ProviderOutage, SyncStep::CrmPull),
        ]);
        for late in [
            started(),
            step(SyncStep::Matching),
            attribution(),
            completed(),
            failed(FailureKind::Internal, SyncStep::Attribution),
        ] {
            let after = apply(failed_run.clone(), &late, t(30));
            assert_eq!(after.state, failed_run.state, "after {late:?}");
            assert_eq!(after.failure, failed_run.failure);
        }
        let refused = decide(
            &failed_run,
            Command::Fail(Failure {
                kind: FailureKind::Internal,
                step: SyncStep::Unspecified,
                message: String::new(),
                location: String::new(),
                next_attempt_at: None,
            }),
            t(31),
        );
        assert!(matches!(
            refused,
            Err(Refusal::Finished(RunState::Failed(_)))
        ));
    }

    #[test]
    fn events_before_the_request_still_move_the_run_forward() {
        let run = given(&[started(), requested(SyncTrigger::Manual)]);
        assert_eq!(run.state, RunState::Running(SyncStep::Unspecified));
        assert_eq!(run.requested_at, Some(t(1)));
        assert_eq!(run.started_at, Some(t(0)));
        let run = given(&[completed()]);
        assert_eq!(run.state, RunState::Completed);
    }

    #[test]
    fn commands_on_a_run_never_requested_are_refused() {
        assert_eq!(
            decide(&SyncRun::default(), Command::Complete, t(0)),
            Err(Refusal::NotRequested)
        );
    }

    #[test]
    fn connection_facts_are_the_last_connection_event() {
        use rp_platform::contracts::events::v1::{
            ConnectionConnected, ConnectionDisconnected, SyncScheduleSet,
        };
        let hubspot = rp_platform::contracts::events::v1::Provider::Hubspot as i32;
        let events = [
            Event::ConnectionConnected(ConnectionConnected {
                provider: hubspot,
                ..Default::default()
            }),
            Event::ConnectionDisconnected(ConnectionDisconnected {
                provider: hubspot,
                ..Default::default()
            }),
            Event::SyncScheduleSet(SyncScheduleSet::default()),
        ];
        let facts = ConnectionFacts::fold(&events).unwrap();
        assert!(!facts.connected);
        assert_eq!(facts.provider_name(), "HubSpot");
        assert_eq!(ConnectionFacts::fold(&events[2..]), None);
    }
}
