//! The sync run's concurrency claims, raced in the style of disintegrate's tests: two simulated
//! replicas (each its own connection pool, scheduler and orchestrator consumer) take Sync Now
//! requests, the daily slot and run completions for the same integrations at the same moments,
//! day after day. Whatever the interleaving: one run per integration at a time, the slot handled
//! once, and no run left running once the work is done.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use connector::sync::handlers::{Orchestrator, SyncRequest, request_sync};
use connector::sync::schedule::{Clock, ManualClock};
use connector::sync::scheduler::{Scheduler, SchedulerConfig};
use rp_platform::consumer::{self, ConsumerConfig, Ordering};
use rp_platform::contracts::events::v1::{
    AttributionUpdated, ConnectionConnected, Provider, SyncScheduleSet, SyncStarted, SyncTrigger,
    envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, ReadFilter, RecordedEvent};
use rp_platform::ids::{IntegrationId, SyncRunId, WorkspaceId};
use rp_platform::relay::Relay;
use rp_platform::testing::{TestEnv, eventually};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);
const INTEGRATIONS: usize = 6;
const DAYS: i64 = 3;
const SYNC_NOWS_PER_REPLICA: usize = 3;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Replica {
    pool: PgPool,
    scheduler: Arc<Scheduler<ManualClock>>,
}

async fn append(
    env: &TestEnv,
    ws: WorkspaceId,
    id: IntegrationId,
    stream: &str,
    e: Event,
    at: DateTime<Utc>,
) {
    let corr = match &e {
        Event::SyncStarted(s) => s.sync_run_id.clone(),
        Event::AttributionUpdated(a) => a.sync_run_id.clone(),
        _ => String::new(),
    };
    let mut ev = NewEvent::new(ws.to_string(), e).integration(id.to_string());
    ev.occurred_at = at;
    if !corr.is_empty() {
        ev = ev.correlation(corr);
    }
    env.store
        .append(stream, ExpectedVersion::Any, vec![ev])
        .await
        .unwrap();
}

/// Every run event of the log, in log order.
async fn log(env: &TestEnv) -> Vec<RecordedEvent> {
    let filter = ReadFilter {
        event_types: vec![
            "SyncRequested".into(),
            "SyncCompleted".into(),
            "SyncFailed".into(),
        ],
        workspace_id: None,
    };
    env.store.read_all(0, 100_000, &filter).await.unwrap()
}

/// The pipeline reports for `run` as the downstream services would: started, then attribution.
async fn finish_pipeline(
    env: &TestEnv,
    ws: WorkspaceId,
    id: IntegrationId,
    run: &str,
    at: DateTime<Utc>,
) {
    let stream = SyncRunId::parse(run).unwrap().run_stream();
    append(
        env,
        ws,
        id,
        &stream,
        Event::SyncStarted(SyncStarted {
            sync_run_id: run.into(),
            ..Default::default()
        }),
        at,
    )
    .await;
    append(
        env,
        ws,
        id,
        &stream,
        Event::AttributionUpdated(AttributionUpdated {
            sync_run_id: run.into(),
            as_of: None,
        }),
        at,
    )
    .await;
}

async fn sync_nows(
    replicas: &[Replica],
    ids: &[IntegrationId],
    now: DateTime<Utc>,
) -> Vec<tokio::task::JoinHandle<(IntegrationId, SyncRunId)>> {
    let mut tasks = Vec::new();
    for r in replicas {
        for id in ids {
            for _ in 0..SYNC_NOWS_PER_REPLICA {
                let (pool, id) = (r.pool.clone(), *id);
                tasks.push(tokio::spawn(async move {
                    let req = SyncRequest {
                        integration: id,
                        caller_workspace: None,
                        trigger: SyncTrigger::Manual,
                        requested_by: "race".into(),
                        scheduled_for: None,
                    };
                    (
                        id,
                        request_sync(&pool, &req, now).await.unwrap().sync_run_id,
                    )
                }));
            }
        }
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_now_the_daily_slot_and_completions_race_on_two_replicas() {
    let env = TestEnv::new().await;
    sqlx::migrate!("./migrations")
        .set_ignore_missing(true)
        .run(&env.pool)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone());
    let c = cancel.clone();
    tasks.push(tokio::spawn(async move {
        let _ = relay.run(c).await;
    }));
    let start = utc("2026-12-01T08:50:00Z");
    let clock = ManualClock::new(start);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let pool = rp_platform::db::connect(&env.database_url, 10)
            .await
            .unwrap();
        let (js, bus, p, c) = (
            env.js.clone(),
            env.bus.clone(),
            pool.clone(),
            cancel.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let cfg = ConsumerConfig::new("sync-orchestrator", Ordering::PerWorkspace)
                .event_types(connector::sync::handlers::EVENT_TYPES);
            let _ = consumer::run(js, bus, p, cfg, Arc::new(Orchestrator), c).await;
        }));
        let scheduler = Arc::new(Scheduler {
            pool: pool.clone(),
            clock: Arc::new(clock.clone()),
            config: SchedulerConfig::default(),
        });
        replicas.push(Replica { pool, scheduler });
    }

    // Integrations of two workspaces, each due at 09:00 UTC.
    let workspaces = [
        WorkspaceId::new(uuid::Uuid::new_v4()),
        WorkspaceId::new(uuid::Uuid::new_v4()),
    ];
    let mut ids = Vec::new();
    let mut owner = BTreeMap::new();
    for i in 0..INTEGRATIONS {
        let ws = workspaces[i % 2];
        let id = IntegrationId::generate();
        let stream = id.connection_stream();
        append(
            &env,
            ws,
            id,
            &stream,
            Event::ConnectionConnected(ConnectionConnected {
                provider: Provider::Hubspot as i32,
                ..Default::default()
            }),
            start,
        )
        .await;
        append(
            &env,
            ws,
            id,
            &stream,
            Event::SyncScheduleSet(SyncScheduleSet {
                local_time: "09:00".into(),
                time_zone: "UTC".into(),
                next_scheduled_sync_at: None,
            }),
            start,
        )
        .await;
        ids.push(id);
        owner.insert(id, ws);
    }
    eventually(WAIT, "the integrations known to the scheduler", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_integrations WHERE connected AND schedule_local_time = '09:00'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        (n == INTEGRATIONS as i64).then_some(())
    })
    .await;

    let mut slots_fired = 0;
    for day in 0..DAYS {
        let slot = utc("2026-12-01T09:00:00Z") + ChronoDuration::days(day);
        let now = slot + ChronoDuration::seconds(5);
        clock.set(now);
        // Both schedulers and every Sync Now at once.
        let ticks: Vec<_> = replicas
            .iter()
            .map(|r| {
                let s = r.scheduler.clone();
                tokio::spawn(async move { s.tick().await.unwrap() })
            })
            .collect();
        let nows = sync_nows(&replicas, &ids, now).await;
        let mut runs_of: BTreeMap<IntegrationId, BTreeSet<SyncRunId>> = BTreeMap::new();
        for t in nows {
            let (id, run) = t.await.unwrap();
            runs_of.entry(id).or_default().insert(run);
        }
        for t in ticks {
            let report = t.await.unwrap();
            slots_fired += report.started.len() + report.joined.len();
            for run in report.started.into_iter().chain(report.joined) {
                let id = ids
                    .iter()
                    .copied()
                    .find(|i| runs_of.get(i).is_some_and(|r| r.contains(&run)))
                    .unwrap_or_else(|| {
                        panic!("the slot's run {run} is not the run every Sync Now of its integration got")
                    });
                assert!(runs_of[&id].contains(&run));
            }
        }
        for id in &ids {
            assert_eq!(
                runs_of[id].len(),
                1,
                "day {day}: one run of {id}, whoever asked: {:?}",
                runs_of[id]
            );
        }

        // Completions on the orchestrators while both replicas keep asking.
        let mut finishing = Vec::new();
        for (id, runs) in &runs_of {
            let run = runs.iter().next().unwrap().as_str();
            finishing.push(finish_pipeline(&env, owner[id], *id, run, now));
        }
        let later = now + ChronoDuration::minutes(1);
        let (_, racing) = tokio::join!(
            futures::future::join_all(finishing),
            sync_nows(&replicas, &ids, later)
        );
        let mut second: BTreeMap<IntegrationId, BTreeSet<SyncRunId>> = BTreeMap::new();
        for t in racing {
            let (id, run) = t.await.unwrap();
            second.entry(id).or_default().insert(run);
        }
        // A request during the completion joined the finishing run or started one fresh run.
        for (id, runs) in &second {
            let fresh: Vec<_> = runs.iter().filter(|r| !runs_of[id].contains(r)).collect();
            assert!(
                fresh.len() <= 1,
                "day {day}: at most one new run of {id}: {runs:?}"
            );
            for r in fresh {
                finish_pipeline(&env, owner[id], *id, r.as_str(), later).await;
            }
        }
        // Everything asked for finishes; nothing is left running.
        eventually(
            WAIT,
            "every run finished and no integration busy",
            || async {
                let live: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM sync_runs WHERE state IN ('requested', 'running')",
                )
                .fetch_one(&env.pool)
                .await
                .unwrap();
                let busy: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM sync_integrations WHERE active_run_id IS NOT NULL",
                )
                .fetch_one(&env.pool)
                .await
                .unwrap();
                (live == 0 && busy == 0).then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        slots_fired,
        INTEGRATIONS * DAYS as usize,
        "each integration's slot handled once a day, by one replica"
    );

    // The log: per integration, a run is requested only once the one before it has finished.
    let mut open: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut requested = 0;
    for e in log(&env).await {
        let integration = e.meta().integration_id.clone();
        match e.event() {
            Some(Event::SyncRequested(r)) => {
                requested += 1;
                let before = open.insert(integration.clone(), Some(r.sync_run_id.clone()));
                assert!(
                    before.flatten().is_none(),
                    "{integration}: run {} requested while another was live",
                    r.sync_run_id
                );
            }
            Some(Event::SyncCompleted(c)) => {
                assert_eq!(
                    open.get(&integration).cloned().flatten().as_deref(),
                    Some(c.sync_run_id.as_str())
                );
                open.insert(integration, None);
            }
            Some(Event::SyncFailed(f)) => panic!("no run should fail here: {f:?}"),
            _ => {}
        }
    }
    assert!(
        open.values().all(Option::is_none),
        "no run left running: {open:?}"
    );
    assert!(requested >= INTEGRATIONS * DAYS as usize);
    let _ = clock.now();
    cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
    env.cleanup().await;
}
