//! Sync orchestration against real PostgreSQL and NATS: the daily schedule (with an injectable
//! clock), catch-up after downtime, Sync Now and its join semantics under concurrency, the sync
//! run state machine and its history, connection health over gRPC, Watch, and auth.

use chrono::{DateTime, Utc};
use connector::sync::api::SyncApi;
use connector::sync::handlers::Orchestrator;
use connector::sync::schedule::ManualClock;
use connector::sync::scheduler::{Scheduler, SchedulerConfig};
use rp_platform::consumer::{self, ConsumerConfig, Ordering};
use rp_platform::contracts::api::v1::{
    ConnectionStatus, GetConnectionHealthRequest, GetSyncRunRequest, ListSyncRunsRequest,
    SetSyncScheduleRequest, SyncNowRequest, sync_client::SyncClient,
};
use rp_platform::contracts::events::v1::{
    AccountsMatched, AttributionUpdated, CompaniesResolved, ConnectionConnected,
    ConnectionDisconnected, DisconnectReason, EventDeadLettered, FailureKind, ObjectCount,
    ObjectType, Provider, PullCompleted, SyncFailed, SyncStarted, SyncStep, SyncStepStarted,
    SyncTrigger, envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, ReadFilter};
use rp_platform::relay::Relay;
use rp_platform::testing::{TestEnv, eventually};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(30);

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    env: TestEnv,
    clock: ManualClock,
    cancel: CancellationToken,
    workspace: String,
    key: String,
    client: SyncClient<Channel>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl World {
    async fn new(now: &str) -> Self {
        let env = TestEnv::new().await;
        sqlx::migrate!("./migrations")
            .set_ignore_missing(true)
            .run(&env.pool)
            .await
            .unwrap();
        let clock = ManualClock::new(utc(now));
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone());
        let c = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let _ = relay.run(c).await;
        }));
        let (js, bus, pool, c) = (
            env.js.clone(),
            env.bus.clone(),
            env.pool.clone(),
            cancel.clone(),
        );
        let orchestrator = Arc::new(Orchestrator);
        tasks.push(tokio::spawn(async move {
            let cfg = ConsumerConfig::new("sync-orchestrator", Ordering::PerWorkspace)
                .event_types(connector::sync::handlers::EVENT_TYPES);
            let _ = consumer::run(js, bus, pool, cfg, orchestrator, c).await;
        }));
        let api = SyncApi::new(env.pool.clone(), Arc::new(clock.clone()));
        let serving = rp_platform::grpc::serve(
            "127.0.0.1:0".parse().unwrap(),
            cancel.clone(),
            rp_platform::grpc::Services::new().service(api.into_server()),
        )
        .await
        .unwrap();
        let addr = serving.local_addr();
        tasks.push(tokio::spawn(async move {
            let _ = serving.wait().await;
        }));
        let (ws, key) = rp_platform::testing::workspace_with_key(&env, "growth").await;
        let client = SyncClient::connect(format!("http://{addr}")).await.unwrap();
        Self {
            env,
            clock,
            cancel,
            workspace: ws,
            key,
            client,
            tasks,
        }
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        rp_platform::testing::authed(&self.key, msg)
    }

    /// A connected integration (as the connector's OAuth callback would record it).
    async fn connect(&self, provider: Provider) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.append(
            &format!("connection-{id}"),
            &id,
            Event::ConnectionConnected(ConnectionConnected {
                provider: provider as i32,
                ..Default::default()
            }),
        )
        .await;
        self.wait_health(&id, |h| h.status == ConnectionStatus::Connected as i32)
            .await;
        id
    }

    async fn append(&self, stream: &str, integration: &str, e: Event) {
        let corr = match &e {
            Event::SyncStarted(s) => s.sync_run_id.clone(),
            Event::SyncStepStarted(s) => s.sync_run_id.clone(),
            Event::PullCompleted(s) => s.sync_run_id.clone(),
            Event::CompaniesResolved(s) => s.sync_run_id.clone(),
            Event::AccountsMatched(s) => s.sync_run_id.clone(),
            Event::AttributionUpdated(s) => s.sync_run_id.clone(),
            Event::SyncFailed(s) => s.sync_run_id.clone(),
            // The dead-lettered event's correlation: the test names the run in `consumer`'s
            // place below.
            Event::EventDeadLettered(d) => d.event_id.clone(),
            _ => String::new(),
        };
        let mut ev = NewEvent::new(self.workspace.clone(), e).integration(integration);
        ev.occurred_at = rp_platform::contracts::from_timestamp(
            &rp_platform::contracts::timestamp(connector::sync::schedule::Clock::now(&self.clock)),
        )
        .unwrap_or(ev.occurred_at);
        if !corr.is_empty() {
            ev = ev.correlation(corr);
        }
        self.env
            .store
            .append(stream, ExpectedVersion::Any, vec![ev])
            .await
            .unwrap();
    }

    async fn health(&self) -> Vec<rp_platform::contracts::api::v1::IntegrationHealth> {
        self.client
            .clone()
            .get_connection_health(self.req(GetConnectionHealthRequest {
                workspace_id: self.workspace.clone(),
            }))
            .await
            .unwrap()
            .into_inner()
            .integrations
    }

    async fn wait_health<F>(
        &self,
        id: &str,
        pred: F,
    ) -> rp_platform::contracts::api::v1::IntegrationHealth
    where
        F: Fn(&rp_platform::contracts::api::v1::IntegrationHealth) -> bool,
    {
        eventually(WAIT, "integration health", || async {
            self.health()
                .await
                .into_iter()
                .find(|h| h.integration_id == id && pred(h))
        })
        .await
    }

    async fn sync_requests(
        &self,
    ) -> Vec<(String, rp_platform::contracts::events::v1::SyncRequested)> {
        let filter = ReadFilter {
            event_types: vec!["SyncRequested".into()],
            workspace_id: None,
        };
        self.env
            .store
            .read_all(0, 1000, &filter)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event() {
                Some(Event::SyncRequested(r)) => Some((e.meta().integration_id.clone(), r.clone())),
                _ => None,
            })
            .collect()
    }

    fn scheduler(&self) -> Scheduler<ManualClock> {
        Scheduler {
            pool: self.env.pool.clone(),
            clock: Arc::new(self.clock.clone()),
            config: SchedulerConfig::default(),
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.env.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_sync_fires_at_the_integrations_own_local_time_once() {
    let w = World::new("2026-11-28T12:00:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    let set = w
        .client
        .clone()
        .set_sync_schedule(w.req(SetSyncScheduleRequest {
            integration_id: id.clone(),
            local_time: "06:00".into(),
            time_zone: "Europe/Berlin".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    // 06:00 in Berlin in November is 05:00 UTC; the next one is tomorrow's.
    assert_eq!(
        set.next_scheduled_sync_at.unwrap().seconds,
        utc("2026-11-29T05:00:00Z").timestamp()
    );
    let s = w.scheduler();

    w.clock.set(utc("2026-11-29T04:59:30Z"));
    assert!(s.tick().await.unwrap().started.is_empty(), "not yet");
    w.clock.set(utc("2026-11-29T05:00:20Z"));
    let report = s.tick().await.unwrap();
    assert_eq!(report.started.len(), 1);
    assert!(s.tick().await.unwrap().started.is_empty(), "once per slot");
    let reqs = w.sync_requests().await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, id);
    assert_eq!(reqs[0].1.trigger, SyncTrigger::Scheduled as i32);
    assert_eq!(
        reqs[0].1.scheduled_for.unwrap().seconds,
        utc("2026-11-29T05:00:00Z").timestamp()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_a_missed_sync_runs_once_with_jitter_and_disconnected_ones_are_skipped() {
    let w = World::new("2026-11-20T12:00:00Z").await;
    let a = w.connect(Provider::Hubspot).await;
    let b = w.connect(Provider::Linkedin).await;
    w.append(
        &format!("connection-{b}"),
        &b,
        Event::ConnectionDisconnected(ConnectionDisconnected {
            provider: Provider::Linkedin as i32,
            reason: DisconnectReason::AuthorizationRevoked as i32,
            provider_message: "The token used in the request has been revoked by the user".into(),
        }),
    )
    .await;
    let hb = w
        .wait_health(&b, |h| h.status == ConnectionStatus::Disconnected as i32)
        .await;
    assert_eq!(hb.disconnect_reason, "Access was revoked in LinkedIn");
    assert!(hb.next_scheduled_sync_at.is_none(), "syncing has stopped");

    // The system was down for days; it comes back.
    w.clock.set(utc("2026-11-29T12:00:00Z"));
    let s = w.scheduler();
    let first = s.tick().await.unwrap();
    let second = s.tick().await.unwrap();
    let total_started = first.started.len() + second.started.len();
    if total_started == 0 {
        assert_eq!(
            first.deferred, 1,
            "a jittered catch-up for the connected one only"
        );
        w.clock.set(utc("2026-11-29T12:16:00Z"));
        assert_eq!(s.tick().await.unwrap().started.len(), 1);
    }
    w.clock.set(utc("2026-11-29T12:30:00Z"));
    assert!(
        s.tick().await.unwrap().started.is_empty(),
        "once, not once per missed day"
    );
    let reqs = w.sync_requests().await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, a);
    assert_eq!(reqs[0].1.trigger, SyncTrigger::CatchUp as i32);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_returns_at_once_and_concurrent_requests_join_one_run() {
    let w = World::new("2026-11-29T09:00:00Z").await;
    let id = w.connect(Provider::Salesforce).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (mut c, r) = (
            w.client.clone(),
            w.req(SyncNowRequest {
                integration_id: id.clone(),
            }),
        );
        handles.push(tokio::spawn(async move {
            c.sync_now(r).await.map(|r| r.into_inner())
        }));
    }
    let mut runs = std::collections::HashSet::new();
    let mut joined = 0;
    for h in handles {
        let r = h.await.unwrap().unwrap();
        runs.insert(r.sync_run_id);
        joined += usize::from(r.joined_running);
    }
    assert_eq!(
        runs.len(),
        1,
        "never two concurrent runs of one integration"
    );
    assert_eq!(joined, 7);
    assert_eq!(w.sync_requests().await.len(), 1);
    let h = w
        .wait_health(&id, |h| !h.running_sync_run_id.is_empty())
        .await;
    assert_eq!(h.last_attempt_outcome, "running");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_step_by_step_to_completion_and_its_history_reads_back() {
    let w = World::new("2026-11-29T09:00:00Z").await;
    let id = w.connect(Provider::Linkedin).await;
    let run = w
        .client
        .clone()
        .sync_now(w.req(SyncNowRequest {
            integration_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .sync_run_id;
    let stream = format!("syncrun-{run}");
    let step = |s: SyncStep| {
        Event::SyncStepStarted(SyncStepStarted {
            sync_run_id: run.clone(),
            step: s as i32,
        })
    };
    w.append(
        &stream,
        &id,
        Event::SyncStarted(SyncStarted {
            sync_run_id: run.clone(),
            provider: Provider::Linkedin as i32,
        }),
    )
    .await;
    w.append(&stream, &id, step(SyncStep::LinkedinPull)).await;
    let h = w
        .wait_health(&id, |h| h.current_step == SyncStep::LinkedinPull as i32)
        .await;
    assert_eq!(h.running_sync_run_id, run);
    w.append(
        &stream,
        &id,
        Event::PullCompleted(PullCompleted {
            sync_run_id: run.clone(),
            step: SyncStep::LinkedinPull as i32,
            counts: vec![ObjectCount {
                object_type: ObjectType::LinkedinEngagement as i32,
                records: 420,
            }],
        }),
    )
    .await;
    w.append(&stream, &id, step(SyncStep::CompanyResolution))
        .await;
    w.append(
        &stream,
        &id,
        Event::CompaniesResolved(CompaniesResolved {
            sync_run_id: run.clone(),
            organizations: 37,
        }),
    )
    .await;
    w.append(&stream, &id, step(SyncStep::Matching)).await;
    w.append(
        &stream,
        &id,
        Event::AccountsMatched(AccountsMatched {
            sync_run_id: run.clone(),
            matched: 30,
            ..Default::default()
        }),
    )
    .await;
    w.append(&stream, &id, step(SyncStep::Attribution)).await;
    w.append(
        &stream,
        &id,
        Event::AttributionUpdated(AttributionUpdated {
            sync_run_id: run.clone(),
            as_of: None,
        }),
    )
    .await;

    // The orchestrator closes the run: SyncCompleted, last sync time shown, nothing running.
    let h = w
        .wait_health(&id, |h| h.last_attempt_outcome == "completed")
        .await;
    assert!(h.last_successful_sync_at.is_some());
    assert!(h.running_sync_run_id.is_empty());
    let r = w
        .client
        .clone()
        .get_sync_run(w.req(GetSyncRunRequest {
            sync_run_id: run.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state, "completed");
    assert_eq!(r.trigger, SyncTrigger::Manual as i32);
    let steps: Vec<(i32, u64, bool)> = r
        .steps
        .iter()
        .map(|s| (s.step, s.records, s.completed_at.is_some()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (SyncStep::LinkedinPull as i32, 420, true),
            (SyncStep::CompanyResolution as i32, 37, true),
            (SyncStep::Matching as i32, 30, true),
            (SyncStep::Attribution as i32, 0, true),
        ]
    );
    let log = w.env.store.read_stream(&stream, 1, 100).await.unwrap();
    let completed = log
        .iter()
        .find(|e| e.event_type() == "SyncCompleted")
        .expect("SyncCompleted in the run's stream");
    assert_eq!(completed.meta().correlation_id, run, "one causal chain");

    // A second run fails on an outage: history keeps both, newest first, paged.
    let run2 = w
        .client
        .clone()
        .sync_now(w.req(SyncNowRequest {
            integration_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!run2.joined_running);
    w.append(
        &format!("syncrun-{}", run2.sync_run_id),
        &id,
        Event::SyncFailed(SyncFailed {
            sync_run_id: run2.sync_run_id.clone(),
            kind: FailureKind::ProviderOutage as i32,
            step: SyncStep::LinkedinPull as i32,
            message: "LinkedIn is temporarily unavailable".into(),
            ..Default::default()
        }),
    )
    .await;
    let h = w
        .wait_health(&id, |h| h.last_attempt_outcome == "failed: provider_outage")
        .await;
    assert!(
        h.last_successful_sync_at.is_some(),
        "the last successful sync is still shown"
    );
    let page1 = w
        .client
        .clone()
        .list_sync_runs(w.req(ListSyncRunsRequest {
            integration_id: id.clone(),
            page_size: 1,
            page_token: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page1.runs[0].sync_run_id, run2.sync_run_id);
    assert_eq!(page1.runs[0].state, "failed");
    let page2 = w
        .client
        .clone()
        .list_sync_runs(w.req(ListSyncRunsRequest {
            integration_id: id.clone(),
            page_size: 1,
            page_token: page1.next_page_token,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.runs[0].sync_run_id, run);
    assert!(page2.next_page_token.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_on_a_disconnected_integration_says_to_reconnect() {
    let w = World::new("2026-11-29T09:00:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    w.append(
        &format!("connection-{id}"),
        &id,
        Event::ConnectionDisconnected(ConnectionDisconnected {
            provider: Provider::Hubspot as i32,
            reason: DisconnectReason::UserRequested as i32,
            ..Default::default()
        }),
    )
    .await;
    let err = w
        .client
        .clone()
        .sync_now(w.req(SyncNowRequest {
            integration_id: id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("HubSpot is disconnected") && err.message().contains("reconnect"),
        "{}",
        err.message()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_other_workspaces_and_bad_arguments_get_clear_errors() {
    let w = World::new("2026-11-29T09:00:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    let mut c = w.client.clone();
    let no_key = c
        .get_connection_health(GetConnectionHealthRequest {
            workspace_id: w.workspace.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_key.code(), Code::Unauthenticated);
    let other = c
        .get_connection_health(w.req(GetConnectionHealthRequest {
            workspace_id: uuid::Uuid::new_v4().to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    // A key of another workspace cannot Sync Now this integration: to it, the integration does
    // not exist (issue 15.4: ids of other workspaces cannot be probed).
    let (_, other_key) = rp_platform::testing::workspace_with_key(&w.env, "starter").await;
    let mut r = tonic::Request::new(SyncNowRequest {
        integration_id: id.clone(),
    });
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {other_key}").parse().unwrap(),
    );
    assert_eq!(c.sync_now(r).await.unwrap_err().code(), Code::NotFound);
    let bad_time = c
        .set_sync_schedule(w.req(SetSyncScheduleRequest {
            integration_id: id.clone(),
            local_time: "6 am".into(),
            time_zone: "UTC".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_time.code(), Code::InvalidArgument);
    assert!(
        bad_time.message().contains("local_time"),
        "{}",
        bad_time.message()
    );
    let bad_zone = c
        .set_sync_schedule(w.req(SetSyncScheduleRequest {
            integration_id: id.clone(),
            local_time: "06:00".into(),
            time_zone: "Moon/Base".into(),
        }))
        .await
        .unwrap_err();
    assert!(bad_zone.message().contains("time_zone"));
    let bad_id = c
        .sync_now(w.req(SyncNowRequest {
            integration_id: "hubspot".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    let unknown = c
        .sync_now(w.req(SyncNowRequest {
            integration_id: uuid::Uuid::new_v4().to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_page = c
        .list_sync_runs(w.req(ListSyncRunsRequest {
            integration_id: id.clone(),
            page_size: 500,
            page_token: String::new(),
        }))
        .await
        .unwrap_err();
    assert!(bad_page.message().contains("page_size"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_pushes_health_when_it_changes() {
    let w = World::new("2026-11-29T09:00:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    let mut stream = w
        .client
        .clone()
        .watch_connection_health(w.req(GetConnectionHealthRequest {
            workspace_id: w.workspace.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.integrations.len(), 1);
    assert!(first.integrations[0].running_sync_run_id.is_empty());
    let run = w
        .client
        .clone()
        .sync_now(w.req(SyncNowRequest { integration_id: id }))
        .await
        .unwrap()
        .into_inner();
    let update = tokio::time::timeout(WAIT, async {
        loop {
            let h = stream.message().await.unwrap().unwrap();
            if h.integrations[0].running_sync_run_id == run.sync_run_id {
                return h;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(update.integrations[0].last_attempt_outcome, "running");
    w.stop().await;
}

// ---- The watchdog (issue 14) ----------------------------------------------------------------

impl World {
    /// Sync Now; the run id.
    async fn sync_now(&self, id: &str) -> String {
        self.client
            .clone()
            .sync_now(self.req(SyncNowRequest {
                integration_id: id.into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .sync_run_id
    }

    /// The run's SyncStarted and its step `step` started, now.
    async fn at_step(&self, id: &str, run: &str, step: SyncStep) {
        let stream = format!("syncrun-{run}");
        self.append(
            &stream,
            id,
            Event::SyncStarted(SyncStarted {
                sync_run_id: run.into(),
                provider: Provider::Hubspot as i32,
            }),
        )
        .await;
        self.append(
            &stream,
            id,
            Event::SyncStepStarted(SyncStepStarted {
                sync_run_id: run.into(),
                step: step as i32,
            }),
        )
        .await;
        self.wait_health(id, |h| h.current_step == step as i32)
            .await;
    }

    async fn failures(&self, run: &str) -> Vec<SyncFailed> {
        self.env
            .store
            .read_stream(&format!("syncrun-{run}"), 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event() {
                Some(Event::SyncFailed(f)) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_never_completes_is_failed_as_stalled_once_and_the_next_sync_starts_afresh() {
    let w = World::new("2026-12-01T09:00:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    let run = w.sync_now(&id).await;
    // The CRM pull completed, matching started, and the matcher never reports.
    w.at_step(&id, &run, SyncStep::Matching).await;
    let s = w.scheduler();
    w.clock.set(utc("2026-12-01T09:19:00Z"));
    assert!(
        s.tick().await.unwrap().stalled.is_empty(),
        "within the limit"
    );
    w.clock.set(utc("2026-12-01T09:21:00Z"));
    assert_eq!(
        s.tick().await.unwrap().stalled,
        vec![rp_platform::ids::SyncRunId::parse(&run).unwrap()]
    );
    let h = w
        .wait_health(&id, |h| h.running_sync_run_id.is_empty())
        .await;
    assert_eq!(h.last_attempt_outcome, "failed: stalled", "{h:?}");
    let f = w.failures(&run).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, FailureKind::Stalled as i32);
    assert_eq!(f[0].step, SyncStep::Matching as i32);
    assert!(
        f[0].message.contains("no progress at matching"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].next_attempt_at.is_some(),
        "names the next scheduled sync"
    );
    // Once: later ticks find nothing live.
    w.clock.set(utc("2026-12-01T10:30:00Z"));
    assert!(s.tick().await.unwrap().stalled.is_empty());
    assert_eq!(w.failures(&run).await.len(), 1);
    // Sync Now starts a fresh run instead of joining the dead one.
    let fresh = w.sync_now(&id).await;
    assert_ne!(fresh, run);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_event_of_a_run_fails_the_run_at_once_with_the_reason() {
    let w = World::new("2026-12-01T09:00:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    let run = w.sync_now(&id).await;
    w.at_step(&id, &run, SyncStep::CrmPull).await;
    // The matcher gave up on the run's PullCompleted (as the consumer runtime tells it).
    w.append(
        &format!("deadletters-{}", w.workspace),
        &id,
        Event::EventDeadLettered(EventDeadLettered {
            consumer: "matcher".into(),
            event_id: run.clone(),
            event_type: "PullCompleted".into(),
            error: "sync run id is not a UUID".into(),
            position: 1,
        }),
    )
    .await;
    let h = w
        .wait_health(&id, |h| h.running_sync_run_id.is_empty())
        .await;
    assert_eq!(h.last_attempt_outcome, "failed: stalled", "{h:?}");
    let f = w.failures(&run).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].message
            .contains("matcher service could not handle PullCompleted (sync run id is not a UUID)"),
        "{}",
        f[0].message
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stalled_at_the_daily_slot_is_failed_and_the_slot_starts_a_fresh_run() {
    let w = World::new("2026-12-01T05:30:00Z").await;
    let id = w.connect(Provider::Hubspot).await;
    w.client
        .clone()
        .set_sync_schedule(w.req(SetSyncScheduleRequest {
            integration_id: id.clone(),
            local_time: "06:00".into(),
            time_zone: "UTC".into(),
        }))
        .await
        .unwrap();
    w.clock.set(utc("2026-12-01T05:35:00Z"));
    let run = w.sync_now(&id).await;
    w.at_step(&id, &run, SyncStep::Matching).await;
    // The slot: the run is 25 minutes old (under the 3 h that used to count as alive), and
    // idle for longer than matching may take.
    w.clock.set(utc("2026-12-01T06:00:20Z"));
    let report = w.scheduler().tick().await.unwrap();
    assert_eq!(
        report.stalled,
        vec![rp_platform::ids::SyncRunId::parse(&run).unwrap()]
    );
    assert!(report.joined.is_empty(), "{report:?}");
    assert_eq!(report.started.len(), 1, "{report:?}");
    assert_ne!(report.started[0].to_string(), run);
    w.stop().await;
}
