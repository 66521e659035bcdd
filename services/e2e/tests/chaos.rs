//! `make chaos` (issue 14): real faults during a sync, against the real processes, and proof that
//! the system recovers from each.
//!
//! First a reference run, undisturbed: the sandbox's data (the typical workspace scaled down ten
//! times, see [`DATA`]), LinkedIn and HubSpot connected through OAuth, Sync Now on both, both
//! runs to completion; every dashboard number of every window and model is recorded, and so are
//! the projections' record counts (which must equal the sandbox's truth where it has one).
//!
//! Then each fault, each round on a fresh system with the same data (so the reference is the
//! oracle), injected during a sync (Sync Now on both integrations) at a point chosen by watching
//! the event log, never by sleeping:
//!
//! * `kill -9` of each service (connector, matcher, attribution, notification), restarted at
//!   once, [`KILL_ROUNDS`] rounds each, at random points of the cycle (the k-th event of the
//!   cycle, k drawn from the events of the reference cycle the service handles, one third of them
//!   per round so early, middle and late points all come up; `CHAOS_SEED` repeats a draw);
//! * nats-server restarted (SIGTERM, then started again on the same port and store) mid-pull: the
//!   system runs on its own nats-server with a file-backed stream, as in production;
//! * PostgreSQL restarted (`pg_ctl stop -m fast`, then start) mid-pull: the system runs on its
//!   own PostgreSQL cluster (initdb into a temporary directory);
//! * PostgreSQL unreachable for [`LONG_OUTAGE`], longer than the consumers' retry schedule and the
//!   connector's pull retry bound (both shortened by configuration: [`SHORT_RETRIES`]), through a
//!   proxy that is cut: first from every service (the whole database away: the pull outlasts its
//!   bound), then from the consuming services only (matcher, attribution, notification) while the
//!   connector goes on pulling and publishing, so that their deliveries outlast their schedule;
//! * a HubSpot outage mid-pull (the sandbox answers 503) until the run has failed, then over; the
//!   user syncs again, as the bell tells them;
//! * `rp events replay` of the workspace's log so far, mid-sync, with a one-second duplicate
//!   window so that the replayed events do reach the consumers again.
//!
//! After each fault: every run has finished: completed, or failed/interrupted with a
//! notification in the bell; failed runs are synced again as a user would (Sync Now) until they
//! complete; then no run is left running, no interruption is left open in the bell, the
//! projections' record counts equal the reference's (and the sandbox's truth), and every
//! dashboard number of every window and model equals the reference's.
//!
//! Prints a table (fault, rounds, time to recover from the injection to every run completed,
//! result) and the totals; fails if any fault failed. `CHAOS_ONLY=kill-matcher,nats-restart`
//! runs some faults only. The binaries must be built first (`cargo build --workspace --bins`).

use e2e::faults::{DbProxy, PrivateNats, PrivatePostgres};
use e2e::{MODELS, SandboxData, Sizes, System};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{FailureKind, envelope::Event};
use rp_platform::eventlog::ReadFilter;
use rp_platform::testing::{EnvOptions, StorageType, TestEnv, eventually};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PLAN: &str = "growth";
/// The growth plan's lookback windows (`RP_PLANS`' default).
const WINDOWS: [u32; 3] = [30, 90, 180];

/// The typical workspace (`Sizes::TYPICAL`: 50,000 companies, 200,000 contacts, 20,000 deals,
/// 5,000 engaged organizations, a year of engagement) scaled down ten times, the year kept: a
/// debug build syncs it in seconds (the typical one takes over a minute there,
/// docs/benchmarks.md), so that a fault lands in a sync that is still running and the suite
/// stays within minutes. Same seed everywhere, so the reference run is every fault's oracle.
const DATA: SandboxData = SandboxData {
    seed: 14,
    sizes: Sizes {
        companies: 5_000,
        contacts: 20_000,
        deals: 2_000,
        engaged_orgs: 500,
        days: 365,
    },
    hubspot_rate_limit: false,
};

/// Rounds of `kill -9` per service.
const KILL_ROUNDS: usize = 3;

/// How long the database stays unreachable in the long outage: past the shortened consumer
/// schedule ([`SHORT_RETRIES`]: 3 deliveries, each failing only after the pool's 10 s wait for a
/// connection, ~31 s in all) and the shortened pull retry bound (5 s). The length of the fault,
/// not a wait for something to happen.
const LONG_OUTAGE: Duration = Duration::from_secs(40);

/// `RP_CONSUMER_MAX_DELIVER` in the long outage.
const SHORT_MAX_DELIVER: u64 = 3;

/// The consumers' retry schedule and the connector's pull retry bound, shortened for the long
/// database outage (`RP_CONSUMER_*`, `CONNECTOR_PULL_RETRY_FOR`; defaults 6 deliveries over
/// 1 s, 5 s, 30 s, 2 min, 5 min, and 2 min).
const SHORT_RETRIES: [(&str, &str); 3] = [
    ("RP_CONSUMER_MAX_DELIVER", "3"),
    ("RP_CONSUMER_RETRY_DELAYS", "200ms,500ms"),
    ("CONNECTOR_PULL_RETRY_FOR", "5s"),
];

/// The sync watchdog's limits, shortened from 20-30 minutes (docs/sync.md), so that a run whose
/// work a fault lost is failed (STALLED, with a notification) within about a minute and a half
/// (the limit plus the scheduler's 30 s tick) instead of hanging the suite.
const STALL_LIMITS: [(&str, &str); 4] = [
    ("CONNECTOR_STALL_REQUESTED", "60s"),
    ("CONNECTOR_STALL_PULL", "60s"),
    ("CONNECTOR_STALL_MATCHING", "60s"),
    ("CONNECTOR_STALL_ATTRIBUTION", "60s"),
];

/// How long one run may take to finish after a fault (the watchdog needs up to ~90 s).
const RUN_LIMIT: Duration = Duration::from_secs(180);
/// How many times the user syncs an integration again after a failed run.
const MAX_RESYNCS: usize = 3;
/// One round, start to stop, at most.
const ROUND_LIMIT: Duration = Duration::from_secs(240);
/// No round starts after this much of the suite (typically ~7 min): with [`ROUND_LIMIT`], the
/// suite ends within 16 minutes whatever happens.
const SUITE_BUDGET: Duration = Duration::from_secs(720);
/// Waits for things that follow at once (a notification after a failure, a trigger event).
const WAIT: Duration = Duration::from_secs(120);

// ---- the faults ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill(&'static str),
    /// The notification service killed the moment a run's SyncFailed is in the log (a HubSpot
    /// outage failed it): the one failure it must tell.
    KillNotificationAsARunFails,
    NatsRestart,
    PostgresRestart,
    PostgresUnreachable,
    ProviderOutage,
    Replay,
}

impl Fault {
    fn all() -> Vec<Fault> {
        let mut v: Vec<Fault> = e2e::SERVICES.iter().map(|s| Fault::Kill(s)).collect();
        v.extend([
            Fault::KillNotificationAsARunFails,
            Fault::NatsRestart,
            Fault::PostgresRestart,
            Fault::PostgresUnreachable,
            Fault::ProviderOutage,
            Fault::Replay,
        ]);
        v
    }

    fn name(self) -> String {
        match self {
            Fault::Kill(s) => format!("kill-{s}"),
            Fault::KillNotificationAsARunFails => "kill-notification-on-failure".into(),
            Fault::NatsRestart => "nats-restart".into(),
            Fault::PostgresRestart => "postgres-restart".into(),
            Fault::PostgresUnreachable => "postgres-unreachable".into(),
            Fault::ProviderOutage => "hubspot-outage".into(),
            Fault::Replay => "replay".into(),
        }
    }

    fn describe(self) -> String {
        match self {
            Fault::Kill(s) => format!("kill -9 {s}, restarted"),
            Fault::KillNotificationAsARunFails => {
                "kill -9 notification as a run fails (HubSpot 503), restarted".into()
            }
            Fault::NatsRestart => "nats-server restart (SIGTERM; SIGKILL), mid-pull".into(),
            Fault::PostgresRestart => {
                "PostgreSQL restart (pg_ctl stop -m fast; -m immediate), mid-pull".into()
            }
            Fault::PostgresUnreachable => format!(
                "PostgreSQL unreachable {} s, > retry schedules (from all; from the consumers)",
                LONG_OUTAGE.as_secs()
            ),
            Fault::ProviderOutage => "HubSpot 503 outage mid-pull, then Sync Now".into(),
            Fault::Replay => "rp events replay of the log so far, mid-pull".into(),
        }
    }

    fn rounds(self) -> usize {
        match self {
            Fault::Kill(_) => KILL_ROUNDS,
            Fault::NatsRestart | Fault::PostgresRestart | Fault::PostgresUnreachable => 2,
            _ => 1,
        }
    }

    /// The event types of the cycle the service consumes or appends: where killing it
    /// interrupts its work.
    fn busy_with(self, event_type: &str) -> bool {
        match self {
            Fault::Kill("matcher") => matches!(
                event_type,
                "RecordsPulled"
                    | "PullCompleted"
                    | "CompaniesResolved"
                    | "SyncStepStarted"
                    | "AccountsMatched"
            ),
            Fault::Kill("attribution") => matches!(
                event_type,
                "RecordsPulled" | "AccountsMatched" | "SyncStepStarted" | "AttributionUpdated"
            ),
            Fault::Kill("notification") => matches!(
                event_type,
                "SyncRequested" | "SyncStarted" | "SyncCompleted" | "SyncFailed"
            ),
            Fault::Kill(_) => true,
            // Mid-pull: the events most of the cycle is made of, and where a fault of the
            // infrastructure meets appends, relaying and consuming at once.
            _ => event_type == "RecordsPulled",
        }
    }
}

// ---- the reference ------------------------------------------------------------------------------

/// What the undisturbed run shows: the oracle of every fault.
struct Reference {
    dashboards: Vec<api::Dashboard>,
    counts: BTreeMap<&'static str, i64>,
    /// The cycle's event types in log order (both runs), to pick kill points from.
    cycle: Vec<&'static str>,
    took: Duration,
}

/// A started system with both integrations connected and the infrastructure it runs on.
struct Setup {
    s: System,
    linkedin: String,
    hubspot: String,
    infra: Infra,
}

enum Infra {
    Shared,
    Nats(PrivateNats),
    Postgres(PrivatePostgres),
    Proxy(DbProxy),
}

impl Setup {
    /// A fresh system for round `r` of `fault` (none: the reference).
    async fn start(fault: Option<Fault>, r: usize) -> Self {
        let mut vars: Vec<(String, String)> = STALL_LIMITS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut connector: Vec<(String, String)> = Vec::new();
        let (env, infra) = match fault {
            Some(Fault::NatsRestart) => {
                let nats = PrivateNats::start().await;
                let env = TestEnv::with(EnvOptions {
                    nats_url: nats.url(),
                    storage: StorageType::File,
                    ..EnvOptions::default()
                })
                .await;
                (env, Infra::Nats(nats))
            }
            Some(Fault::PostgresRestart) => {
                let pg = PrivatePostgres::start().await;
                let env = TestEnv::with(EnvOptions {
                    database_server_url: pg.server_url(),
                    ..EnvOptions::default()
                })
                .await;
                (env, Infra::Postgres(pg))
            }
            Some(Fault::PostgresUnreachable) => {
                let env = TestEnv::new().await;
                let proxy = DbProxy::start(&env.database_url).await;
                vars.push(("DATABASE_URL".into(), proxy.url(&env.database_url)));
                if r == 1 {
                    // The connector reaches the database directly: only the consumers are cut.
                    connector.push(("DATABASE_URL".into(), env.database_url.clone()));
                }
                vars.extend(
                    SHORT_RETRIES
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                (env, Infra::Proxy(proxy))
            }
            Some(Fault::Replay) => {
                let env = TestEnv::with(EnvOptions {
                    dedup_window: Duration::from_secs(1),
                    ..EnvOptions::default()
                })
                .await;
                (env, Infra::Shared)
            }
            _ => (TestEnv::new().await, Infra::Shared),
        };
        let s = System::start_on(env, PLAN, &DATA, &vars, &connector).await;
        let linkedin = s.connect(api::Provider::Linkedin).await;
        let hubspot = s.connect(api::Provider::Hubspot).await;
        // No scheduled sync while the scenario runs: the daily slots (LinkedIn 02:00-03:59 UTC,
        // CRMs 04:00-05:59 by default) are moved twelve hours away.
        let away = (chrono::Utc::now() + chrono::Duration::hours(12))
            .format("%H:%M")
            .to_string();
        for id in [&linkedin, &hubspot] {
            s.sync
                .clone()
                .set_sync_schedule(s.req(api::SetSyncScheduleRequest {
                    integration_id: id.to_string(),
                    local_time: away.clone(),
                    time_zone: "UTC".into(),
                }))
                .await
                .unwrap_or_else(|e| panic!("SetSyncSchedule: {e}"));
        }
        Self {
            s,
            linkedin,
            hubspot,
            infra,
        }
    }

    /// Stops every process, drops the database and stream, then the private servers.
    async fn stop(self) {
        self.s.stop().await;
        drop(self.infra);
    }

    /// The log's head: the cycle's events come after it.
    async fn head(&self) -> i64 {
        self.s
            .env
            .store
            .head_position()
            .await
            .unwrap_or_else(|e| panic!("the log's head: {e}"))
    }

    /// Sync Now on LinkedIn, then HubSpot: both run at once. Their run ids.
    async fn sync_both(&self) -> [(String, String); 2] {
        let li = self.s.sync_now(&self.linkedin).await.sync_run_id;
        let hs = self.s.sync_now(&self.hubspot).await.sync_run_id;
        [(self.linkedin.clone(), li), (self.hubspot.clone(), hs)]
    }
}

/// The workspace's events after `after`, as (position, type, HubSpot-run batch?), in log order.
async fn events_after(s: &System, after: i64) -> Vec<(i64, &'static str, String)> {
    let mut out = Vec::new();
    let mut from = after;
    loop {
        let page = s
            .env
            .store
            .read_all(
                from,
                500,
                &ReadFilter {
                    workspace_id: Some(s.workspace_id.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("reading the event log: {e}"));
        let Some(last) = page.last().map(|e| e.position) else {
            return out;
        };
        for e in &page {
            let run = match e.event() {
                Some(Event::RecordsPulled(r)) => r.sync_run_id.clone(),
                _ => String::new(),
            };
            out.push((e.position, e.event_type(), run));
        }
        from = last;
    }
}

async fn reference() -> Reference {
    let setup = Setup::start(None, 0).await;
    let base = setup.head().await;
    let started = Instant::now();
    let runs = setup.sync_both().await;
    for (_, run) in &runs {
        let r = finished(&setup.s, run).await;
        assert_eq!(r.state, "completed", "the undisturbed run: {r:?}");
    }
    let took = started.elapsed();
    let dashboards = numbers(&setup.s).await;
    let counts = counts(&setup.s).await;
    let truth = truth_counts(&setup.s).await;
    for (k, want) in &truth {
        assert_eq!(
            counts.get(k),
            Some(want),
            "the undisturbed run's {k} against the sandbox's truth"
        );
    }
    let cycle: Vec<&'static str> = events_after(&setup.s, base)
        .await
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert!(
        dashboards
            .iter()
            .any(|d| d.deal_counts.as_ref().is_some_and(|c| c.total > 0)),
        "the reference dashboard has deals"
    );
    println!(
        "reference: both syncs completed in {:.1} s, {} events; projections {counts:?}; \
         redeliveries {:?}",
        took.as_secs_f64(),
        cycle.len(),
        redeliveries(&setup.s).await
    );
    setup.stop().await;
    Reference {
        dashboards,
        counts,
        cycle,
        took,
    }
}

// ---- what is read of the system -----------------------------------------------------------------

/// Every dashboard number, for every window of the plan and every model.
async fn numbers(s: &System) -> Vec<api::Dashboard> {
    s.dashboards(&WINDOWS).await
}

/// The projections' record counts for the workspace.
async fn counts(s: &System) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for (name, sql) in [
        (
            "matcher companies",
            "SELECT count(*) FROM matcher_crm WHERE workspace_id = $1 AND NOT deleted",
        ),
        (
            "matcher linkedin companies",
            "SELECT count(*) FROM matcher_linkedin WHERE workspace_id = $1",
        ),
        (
            "matcher matches",
            "SELECT count(*) FROM matcher_matches WHERE workspace_id = $1",
        ),
        (
            "matcher reviews",
            "SELECT count(*) FROM matcher_reviews WHERE workspace_id = $1",
        ),
        (
            "attribution deals",
            "SELECT count(*) FROM attribution_deals WHERE workspace_id = $1 AND valid_to IS NULL",
        ),
        (
            "attribution companies",
            "SELECT count(*) FROM attribution_companies WHERE workspace_id = $1",
        ),
        (
            "attribution organizations",
            "SELECT count(*) FROM attribution_organizations WHERE workspace_id = $1",
        ),
        (
            "attribution engagement rows",
            "SELECT count(*) FROM attribution_engagement WHERE workspace_id = $1",
        ),
        (
            "attribution stages",
            "SELECT count(*) FROM attribution_stages WHERE workspace_id = $1",
        ),
        (
            "attribution matches",
            "SELECT count(*) FROM attribution_matches WHERE workspace_id = $1 AND valid_to IS NULL",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(&s.workspace_id)
            .fetch_one(&s.env.pool)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.insert(name, n);
    }
    out
}

/// What the sandbox holds, under the names of the projections that must hold as many.
async fn truth_counts(s: &System) -> BTreeMap<&'static str, i64> {
    let t = s
        .sandbox_admin(
            reqwest::Method::GET,
            "/truth?include=companies,deals",
            Value::Null,
        )
        .await;
    let len = |k: &str| {
        t[k].as_array()
            .map(|a| i64::try_from(a.len()).unwrap_or(i64::MAX))
            .unwrap_or_else(|| panic!("/admin/truth has no {k}"))
    };
    let companies = len("companies");
    BTreeMap::from([
        ("matcher companies", companies),
        ("attribution companies", companies),
        ("attribution deals", len("deals")),
    ])
}

/// The run once it has finished, whichever way (within [`RUN_LIMIT`]).
async fn finished(s: &System, run: &str) -> api::SyncRun {
    s.finished_run_as(s.api_key(), run, RUN_LIMIT).await
}

async fn runs_of(s: &System, integration: &str) -> Vec<api::SyncRun> {
    s.sync
        .clone()
        .list_sync_runs(s.req(api::ListSyncRunsRequest {
            integration_id: integration.into(),
            page_size: 100,
            page_token: String::new(),
        }))
        .await
        .unwrap_or_else(|e| panic!("ListSyncRuns: {e}"))
        .into_inner()
        .runs
}

fn interruption(n: &api::Notification, integration: &str) -> bool {
    n.integration_id == integration && n.kind == api::NotificationKind::SyncInterrupted as i32
}

// ---- one round ----------------------------------------------------------------------------------

/// What one round measured.
struct Round {
    recover: Duration,
    note: String,
}

/// Waits for the cycle's `k`-th event (1-based) after `base`; returns the count of events seen
/// then and the type of the k-th (or of the last, when both runs finished before the cycle had
/// `k` events: the runs interleave differently each time).
async fn at_event(
    s: &System,
    base: i64,
    k: usize,
    runs: &[(String, String); 2],
) -> (usize, &'static str) {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut from = base;
    let deadline = Instant::now() + WAIT;
    loop {
        let new = events_after(s, from).await;
        if let Some((p, _, _)) = new.last() {
            from = *p;
        }
        seen.extend(new.into_iter().map(|(_, t, _)| t));
        if seen.len() >= k {
            return (seen.len(), seen[k - 1]);
        }
        let mut done = true;
        for (_, run) in runs {
            let state = s
                .sync
                .clone()
                .get_sync_run(s.req(api::GetSyncRunRequest {
                    sync_run_id: run.clone(),
                }))
                .await
                .map(|r| r.into_inner().state)
                .unwrap_or_default();
            done &= matches!(state.as_str(), "completed" | "failed" | "interrupted");
        }
        if let (true, Some(last)) = (done, seen.last()) {
            return (seen.len(), last);
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for the cycle's event {k} ({} seen)",
            seen.len()
        );
        // Polling the log, as `eventually` does.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the HubSpot run has appended its first batch of records; returns the count of
/// the cycle's events then.
async fn first_hubspot_batch(s: &System, base: i64, hubspot_run: &str) -> usize {
    eventually(WAIT, "the HubSpot run's first RecordsPulled", || async {
        let events = events_after(s, base).await;
        events
            .iter()
            .any(|(_, t, run)| *t == "RecordsPulled" && run == hubspot_run)
            .then_some(events.len())
    })
    .await
}

/// Waits until `run`'s SyncFailed is in the log.
async fn run_failed(s: &System, base: i64, run: &str) {
    eventually(WAIT, "the run's SyncFailed in the log", || async {
        let page = s
            .env
            .store
            .read_all(
                base,
                100_000,
                &ReadFilter {
                    workspace_id: Some(s.workspace_id.clone()),
                    event_types: vec!["SyncFailed".into()],
                },
            )
            .await
            .ok()?;
        page.iter()
            .any(|e| matches!(e.event(), Some(Event::SyncFailed(f)) if f.sync_run_id == run))
            .then_some(())
    })
    .await
}

/// Runs round `r` of `fault`; `point` is where (the cycle's k-th event) the fault is injected.
async fn round(fault: Fault, r: usize, point: usize, reference: Arc<Reference>) -> Round {
    let mut setup = Setup::start(Some(fault), r).await;
    let base = setup.head().await;
    let runs = setup.sync_both().await;
    let hubspot_run = runs[1].1.clone();
    let of = reference.cycle.len();
    let (injected, what) = match fault {
        Fault::Kill(service) => {
            let (n, t) = at_event(&setup.s, base, point, &runs).await;
            setup.s.kill_service(service).await;
            let t0 = Instant::now();
            setup.s.start_service(service, &[]).await;
            (t0, format!("killed after event {n}/{of} ({t})"))
        }
        Fault::KillNotificationAsARunFails => {
            let n = first_hubspot_batch(&setup.s, base, &hubspot_run).await;
            outage(&setup.s, true).await;
            let t0 = Instant::now();
            run_failed(&setup.s, base, &hubspot_run).await;
            setup.s.kill_service("notification").await;
            outage(&setup.s, false).await;
            setup.s.start_service("notification", &[]).await;
            (
                t0,
                format!("503 from event {n}; killed as the run's SyncFailed was appended"),
            )
        }
        Fault::NatsRestart => {
            let (n, t) = at_event(&setup.s, base, point, &runs).await;
            let Infra::Nats(nats) = &mut setup.infra else {
                unreachable!()
            };
            let t0 = Instant::now();
            let how = if r == 0 {
                nats.restart().await;
                "SIGTERM"
            } else {
                nats.crash_and_restart().await;
                "SIGKILL"
            };
            (
                t0,
                format!(
                    "{how} after event {n}/{of} ({t}), back after {:.1} s",
                    t0.elapsed().as_secs_f64()
                ),
            )
        }
        Fault::PostgresRestart => {
            let (n, t) = at_event(&setup.s, base, point, &runs).await;
            let Infra::Postgres(pg) = &setup.infra else {
                unreachable!()
            };
            let t0 = Instant::now();
            let mode = if r == 0 { "fast" } else { "immediate" };
            pg.stop(mode).await;
            pg.start_again().await;
            (
                t0,
                format!(
                    "stop -m {mode} after event {n}/{of} ({t}), back after {:.1} s",
                    t0.elapsed().as_secs_f64()
                ),
            )
        }
        Fault::PostgresUnreachable => {
            let (n, t) = at_event(&setup.s, base, point, &runs).await;
            let Infra::Proxy(proxy) = &setup.infra else {
                unreachable!()
            };
            proxy.cut();
            let t0 = Instant::now();
            tokio::time::sleep(LONG_OUTAGE).await;
            proxy.restore().await;
            let from = if r == 0 {
                "every service"
            } else {
                "the consumers"
            };
            (
                t0,
                format!(
                    "cut from {from} after event {n}/{of} ({t}) for {} s, {} connections dropped",
                    LONG_OUTAGE.as_secs(),
                    proxy.dropped()
                ),
            )
        }
        Fault::ProviderOutage => {
            let n = first_hubspot_batch(&setup.s, base, &hubspot_run).await;
            outage(&setup.s, true).await;
            let t0 = Instant::now();
            // The outage lasts until the run it hit has ended (it cannot complete meanwhile).
            let r = finished(&setup.s, &hubspot_run).await;
            outage(&setup.s, false).await;
            (
                t0,
                format!(
                    "503 from event {n} until the run was {} ({:.1} s)",
                    r.state,
                    t0.elapsed().as_secs_f64()
                ),
            )
        }
        Fault::Replay => {
            let (n, t) = at_event(&setup.s, base, point, &runs).await;
            let head = setup.head().await;
            let t0 = Instant::now();
            let out = setup
                .s
                .rp(&[
                    "--json",
                    "events",
                    "replay",
                    "--from",
                    "0",
                    "--to",
                    &head.to_string(),
                    "--workspace",
                    &setup.s.workspace_id,
                ])
                .await;
            let number = |k: &str| {
                out[k]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .or_else(|| out[k].as_u64())
                    .unwrap_or_else(|| panic!("rp events replay printed no {k}: {out}"))
            };
            let (published, duplicates) = (number("published"), number("duplicates"));
            assert!(
                published > duplicates,
                "the replay reached the consumers: {published} published, {duplicates} dropped as duplicates"
            );
            (
                t0,
                format!(
                    "replayed positions 1..={head} after event {n}/{of} ({t}): {published} published, \
                     {} delivered again, {duplicates} dropped as duplicates",
                    published - duplicates
                ),
            )
        }
    };

    // Every run finishes; a failed one is synced again, as the bell tells the user.
    let mut resyncs = Vec::new();
    for (integration, first) in &runs {
        let mut run = first.clone();
        let mut attempts = 0;
        loop {
            let r = finished(&setup.s, &run).await;
            if r.state == "completed" {
                break;
            }
            let told = eventually(WAIT, "a notification of the interrupted sync", || async {
                setup
                    .s
                    .notifications_list()
                    .await
                    .into_iter()
                    .find(|n| interruption(n, integration))
            })
            .await;
            resyncs.push(format!(
                "{} {} ({:?}: {}; bell: {:?})",
                provider_name(r.provider),
                r.state,
                FailureKind::try_from(r.failure_kind).unwrap_or_default(),
                r.failure_message,
                told.title
            ));
            attempts += 1;
            assert!(
                attempts <= MAX_RESYNCS,
                "{integration}: still failing after {MAX_RESYNCS} syncs again: {r:?}"
            );
            run = setup.s.sync_now(integration).await.sync_run_id;
        }
    }
    let recover = injected.elapsed();

    check(&setup, &reference).await;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&setup.s.env.pool)
        .await
        .unwrap_or_else(|e| panic!("dead letters: {e}"));
    let again = redeliveries(&setup.s).await;
    if fault == Fault::PostgresUnreachable && r == 1 {
        // The premise: some delivery outlasted the consumers' schedule (its last attempt failed
        // and the dead letter could not be written either, so it came back).
        assert!(
            again.values().any(|n| *n >= SHORT_MAX_DELIVER),
            "the outage did not outlast the consumers' retry schedule: redeliveries {again:?}"
        );
    }
    let mut note = what;
    if !again.is_empty() {
        let list: Vec<String> = again.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = write!(note, "; redelivered: {}", list.join(", "));
    }
    if dead > 0 {
        let _ = write!(note, "; {dead} dead letters");
    }
    if resyncs.is_empty() {
        note.push_str("; both runs completed");
    } else {
        let _ = write!(note, "; synced again after: {}", resyncs.join(", "));
    }
    setup.stop().await;
    Round { recover, note }
}

/// Deliveries beyond the first, per consumer (none listed: none): each durable's deliveries
/// (JetStream's consumer sequence) less the messages its filter holds. What a fault made the
/// consumers do again.
async fn redeliveries(s: &System) -> BTreeMap<&'static str, u64> {
    let (js, stream) = (&s.env.js, &s.env.bus.stream);
    let mut out = BTreeMap::new();
    for name in [
        "connector",
        "sync-orchestrator",
        "matcher",
        "attribution",
        "notification",
    ] {
        for p in 0..s.env.bus.partitions {
            let info: Value = js
                .request(format!("CONSUMER.INFO.{stream}.{name}-p{p}"), &json!({}))
                .await
                .unwrap_or_else(|e| panic!("consumer info {name}-p{p}: {e}"));
            let Some(filter) = info["config"]["filter_subject"].as_str() else {
                assert_eq!(
                    info["error"]["err_code"],
                    json!(10014),
                    "consumer info {name}-p{p}: {info}"
                );
                continue; // no such consumer
            };
            let delivered = info["delivered"]["consumer_seq"].as_u64().unwrap_or(0);
            let held: Value = js
                .request(
                    format!("STREAM.INFO.{stream}"),
                    &json!({ "subjects_filter": filter }),
                )
                .await
                .unwrap_or_else(|e| panic!("stream info: {e}"));
            let messages: u64 = held["state"]["subjects"]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            let again = delivered.saturating_sub(messages);
            if again > 0 {
                *out.entry(name).or_default() += again;
            }
        }
    }
    out
}

/// Starts (`on`) or ends HubSpot's outage: every API call answers 503.
async fn outage(s: &System, on: bool) {
    if on {
        s.sandbox_admin(
            reqwest::Method::PUT,
            "/providers/hubspot/outage",
            json!({"mode": "503"}),
        )
        .await;
    } else {
        s.sandbox_admin(
            reqwest::Method::DELETE,
            "/providers/hubspot/outage",
            Value::Null,
        )
        .await;
    }
}

fn provider_name(p: i32) -> &'static str {
    match api::Provider::try_from(p) {
        Ok(api::Provider::Linkedin) => "LinkedIn",
        Ok(api::Provider::Hubspot) => "HubSpot",
        Ok(api::Provider::Salesforce) => "Salesforce",
        _ => "?",
    }
}

/// After recovery: no run left running, every failed run told in the bell and no interruption
/// left open, the projections and every dashboard number as in the reference.
async fn check(setup: &Setup, reference: &Reference) {
    let s = &setup.s;
    let health = s
        .sync
        .clone()
        .get_connection_health(s.req(api::GetConnectionHealthRequest {
            workspace_id: s.workspace_id.clone(),
        }))
        .await
        .unwrap_or_else(|e| panic!("GetConnectionHealth: {e}"))
        .into_inner();
    for h in &health.integrations {
        assert!(
            h.running_sync_run_id.is_empty() && h.last_attempt_outcome == "completed",
            "no run left running, the last one completed: {h:?}"
        );
        assert_eq!(
            h.status,
            api::ConnectionStatus::Connected as i32,
            "still connected: {h:?}"
        );
    }
    let notifications = s.notifications_list().await;
    for integration in [&setup.linkedin, &setup.hubspot] {
        let runs = runs_of(s, integration).await;
        let unfinished: Vec<_> = runs
            .iter()
            .filter(|r| !matches!(r.state.as_str(), "completed" | "failed" | "interrupted"))
            .collect();
        assert!(
            unfinished.is_empty(),
            "runs left unfinished: {unfinished:?}"
        );
        let failed: Vec<_> = runs.iter().filter(|r| r.state != "completed").collect();
        let told = notifications
            .iter()
            .filter(|n| interruption(n, integration))
            .count();
        assert!(
            failed.is_empty() || told > 0,
            "failed runs {failed:?} with no notification in the bell: {notifications:?}"
        );
        assert!(
            told <= failed.len(),
            "{told} interruptions in the bell for {} failed runs (one told twice?): {notifications:?}",
            failed.len()
        );
    }
    // The completions close every interruption, each with one "resolved" notification.
    eventually(WAIT, "every interruption in the bell resolved", || async {
        let all = s.notifications_list().await;
        let count =
            |kind: api::NotificationKind| all.iter().filter(|n| n.kind == kind as i32).count();
        let open = all
            .iter()
            .filter(|n| n.kind == api::NotificationKind::SyncInterrupted as i32)
            .any(|n| n.resolved_at.is_none());
        (!open
            && count(api::NotificationKind::Resolved)
                == count(api::NotificationKind::SyncInterrupted))
        .then_some(())
    })
    .await;

    let counts = counts(s).await;
    let truth = truth_counts(s).await;
    let mut diffs = Vec::new();
    for (k, want) in &reference.counts {
        let got = counts.get(k).copied().unwrap_or(-1);
        if got != *want {
            diffs.push(format!("{k}: {got}, reference {want}"));
        }
    }
    for (k, want) in &truth {
        let got = counts.get(k).copied().unwrap_or(-1);
        if got != *want {
            diffs.push(format!("{k}: {got}, sandbox truth {want}"));
        }
    }
    assert!(diffs.is_empty(), "projections differ: {}", diffs.join("; "));

    let dashboards = numbers(s).await;
    if dashboards != reference.dashboards {
        let mut differing = Vec::new();
        for (i, (got, want)) in dashboards.iter().zip(&reference.dashboards).enumerate() {
            if got != want {
                differing.push(format!(
                    "window {} model {:?}",
                    WINDOWS[i / MODELS.len()],
                    MODELS[i % MODELS.len()]
                ));
            }
        }
        panic!(
            "dashboard numbers differ from the reference in {}: first got {:#?}\nreference {:#?}",
            differing.join(", "),
            dashboards
                .iter()
                .zip(&reference.dashboards)
                .find(|(g, w)| g != w)
                .map(|(g, _)| g),
            dashboards
                .iter()
                .zip(&reference.dashboards)
                .find(|(g, w)| g != w)
                .map(|(_, w)| w),
        );
    }
}

// ---- the suite ----------------------------------------------------------------------------------

/// xorshift64*: reproducible kill points without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        usize::try_from(x % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// The kill point of round `r` (of `rounds`): a random event of the cycle the service handles,
/// within the r-th part of those events, as its 1-based index in the cycle.
fn kill_point(fault: Fault, r: usize, rounds: usize, cycle: &[&str], rng: &mut Rng) -> usize {
    let busy: Vec<usize> = cycle
        .iter()
        .enumerate()
        .filter(|(_, t)| fault.busy_with(t))
        .map(|(i, _)| i + 1)
        .collect();
    assert!(!busy.is_empty(), "{fault:?} handles no event of the cycle");
    let lo = busy.len() * r / rounds;
    let hi = (busy.len() * (r + 1) / rounds).max(lo + 1);
    busy[lo + rng.below(hi - lo)]
}

struct Row {
    fault: Fault,
    rounds: Vec<Result<Round, String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "make chaos: minutes of real faults against the real processes"]
async fn the_system_recovers_from_real_faults_during_a_sync() {
    let started = Instant::now();
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let only: Option<Vec<String>> = std::env::var("CHAOS_ONLY")
        .ok()
        .map(|s| s.split(',').map(|f| f.trim().to_string()).collect());
    println!(
        "chaos: seed {seed} (CHAOS_SEED={seed} repeats the kill points); data {:?}; {}",
        DATA.sizes,
        rp_platform::testing::machine()
    );
    let reference = Arc::new(reference().await);
    let mut rng = Rng(seed);

    let mut rows = Vec::new();
    for fault in Fault::all() {
        if only.as_ref().is_some_and(|o| !o.contains(&fault.name())) {
            continue;
        }
        let mut row = Row {
            fault,
            rounds: Vec::new(),
        };
        for r in 0..fault.rounds() {
            if started.elapsed() > SUITE_BUDGET {
                println!(
                    "{} round {}: not run, the suite's budget is spent",
                    fault.name(),
                    r + 1
                );
                row.rounds.push(Err(format!(
                    "not run: no round starts after {} s",
                    SUITE_BUDGET.as_secs()
                )));
                continue;
            }
            let point = kill_point(fault, r, fault.rounds(), &reference.cycle, &mut rng);
            let task = tokio::spawn(round(fault, r, point, reference.clone()));
            let abort = task.abort_handle();
            let outcome = match tokio::time::timeout(ROUND_LIMIT, task).await {
                Ok(Ok(round)) => Ok(round),
                Ok(Err(e)) if e.is_panic() => {
                    let p = e.into_panic();
                    Err(p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into()))
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => {
                    abort.abort();
                    Err(format!("did not recover within {ROUND_LIMIT:?}"))
                }
            };
            match &outcome {
                Ok(round) => println!(
                    "{} round {}: recovered in {:.1} s; {}",
                    fault.name(),
                    r + 1,
                    round.recover.as_secs_f64(),
                    round.note
                ),
                Err(e) => println!("{} round {}: FAILED: {e}", fault.name(), r + 1),
            }
            row.rounds.push(outcome);
        }
        rows.push(row);
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n| fault | rounds | time to recover (s, per round) | result |\n|---|---:|---|---|"
    );
    let (mut passed, mut failed) = (0, 0);
    for row in &rows {
        let times: Vec<String> = row
            .rounds
            .iter()
            .map(|r| match r {
                Ok(r) => format!("{:.1}", r.recover.as_secs_f64()),
                Err(_) => "—".into(),
            })
            .collect();
        let errors: Vec<String> = row
            .rounds
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("round {}: {}", i + 1, first_line(e)))
            })
            .collect();
        let result = if errors.is_empty() {
            passed += 1;
            "passed".to_string()
        } else {
            failed += 1;
            format!("FAILED: {}", errors.join("; "))
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {result} |",
            row.fault.describe(),
            row.rounds.len(),
            times.join(" / ")
        );
    }
    println!("{table}");
    println!(
        "reference cycle {:.1} s; suite {:.0} s\n{passed} passed, {failed} failed",
        reference.took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(failed, 0, "{failed} of {} faults failed", rows.len());
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}
