//! One scenario per statement of the help page (`shared/product/sync-schedule-and-connection-
//! health.md`), across the real service processes (connector, matcher, attribution,
//! notification) with real PostgreSQL, NATS and the provider sandbox. The daily schedule is
//! driven by a scheduler on an injectable clock against the same database, instead of waiting.

use base64::Engine;
use chrono::{DateTime, Utc};
use connector::runs::{Scheduler, SchedulerConfig};
use connector::schedule::ManualClock;
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::api::v1::{
    attribution_client::AttributionClient, connections_client::ConnectionsClient,
    notifications_client::NotificationsClient, sync_client::SyncClient,
};
use rp_platform::contracts::from_timestamp;
use rp_platform::eventlog::ReadFilter;
use rp_platform::testing::{ServiceProcess, TestEnv, eventually};
use sandbox::{Provider as SbProvider, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(90);
const APP: &str = "http://app.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A workspace binary built beside this test (`cargo test --workspace` builds every binary).
fn bin(name: &str) -> String {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

struct System {
    env: TestEnv,
    sandbox: Sandbox,
    processes: Vec<ServiceProcess>,
    ws: String,
    key: String,
    connections: ConnectionsClient<Channel>,
    sync: SyncClient<Channel>,
    notifications: NotificationsClient<Channel>,
    attribution: AttributionClient<Channel>,
    http: reqwest::Client,
}

impl System {
    async fn start() -> Self {
        let env = TestEnv::new().await;
        // The sandbox's data is dated relative to today, as the dashboard's windows are.
        let sandbox = Sandbox::spawn(SandboxConfig {
            anchor: Some(Utc::now().date_naive()),
            ..SandboxConfig::for_tests()
        })
        .await
        .expect("sandbox");
        let (cg, ch, mg, ag, ng) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let token_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut connector_env: Vec<(String, String)> = vec![
            ("CONNECTOR_GRPC_ADDR".into(), format!("127.0.0.1:{cg}")),
            ("CONNECTOR_HTTP_ADDR".into(), format!("127.0.0.1:{ch}")),
            (
                "CONNECTOR_REDIRECT_URL".into(),
                format!("http://127.0.0.1:{ch}/oauth/callback"),
            ),
            ("CONNECTOR_TOKEN_KEYS".into(), format!("k1:{token_key}")),
            ("CONNECTOR_TOKEN_KEY_ID".into(), "k1".into()),
            (
                "CONNECTOR_PROVIDER_CLOCK_URL".into(),
                format!("{}/clock", sandbox.admin_url()),
            ),
            ("CONNECTOR_PROVIDER_RETRY_DELAY".into(), "5ms".into()),
            ("CONNECTOR_PULL_POLL".into(), "100ms".into()),
            ("RP_APP_BASE_URL".into(), APP.into()),
        ];
        for (p, prefix) in [
            (SbProvider::Linkedin, "LINKEDIN"),
            (SbProvider::Hubspot, "HUBSPOT"),
            (SbProvider::Salesforce, "SALESFORCE"),
        ] {
            let c = sandbox.client(p);
            connector_env.push((format!("{prefix}_API_BASE"), sandbox.url(p)));
            connector_env.push((format!("{prefix}_AUTH_BASE"), sandbox.url(p)));
            connector_env.push((format!("{prefix}_CLIENT_ID"), c.client_id.clone()));
            connector_env.push((format!("{prefix}_CLIENT_SECRET"), c.client_secret.clone()));
        }
        let as_refs = |v: &Vec<(String, String)>| {
            v.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        let spawn = |name: &str, vars: Vec<(String, String)>| {
            let refs: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ServiceProcess::spawn(&bin(name), &env, &refs)
        };
        let processes = vec![
            spawn("connector", as_refs(&connector_env)),
            spawn(
                "matcher",
                vec![("MATCHER_GRPC_ADDR".into(), format!("127.0.0.1:{mg}"))],
            ),
            spawn(
                "attribution",
                vec![("ATTRIBUTION_GRPC_ADDR".into(), format!("127.0.0.1:{ag}"))],
            ),
            spawn(
                "notification",
                vec![
                    ("NOTIFICATION_GRPC_ADDR".into(), format!("127.0.0.1:{ng}")),
                    ("RP_APP_BASE_URL".into(), APP.into()),
                ],
            ),
        ];
        let (ws, key) = rp_platform::testing::workspace_with_key(&env, "growth").await;
        let channel = |port: u16| async move {
            eventually(WAIT, "a service's gRPC server", || async move {
                Channel::from_shared(format!("http://127.0.0.1:{port}"))
                    .ok()?
                    .connect()
                    .await
                    .ok()
            })
            .await
        };
        let (c, m, a, n) = (
            channel(cg).await,
            channel(mg).await,
            channel(ag).await,
            channel(ng).await,
        );
        let _ = m;
        Self {
            env,
            sandbox,
            processes,
            ws,
            key,
            connections: ConnectionsClient::new(c.clone()),
            sync: SyncClient::new(c),
            notifications: NotificationsClient::new(n),
            attribution: AttributionClient::new(a),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http"),
        }
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        rp_platform::testing::authed(&self.key, msg)
    }

    /// Clicks Connect and completes the OAuth flow (the sandbox consents at once).
    async fn connect(&self, provider: api::Provider) -> String {
        let started = self
            .connections
            .clone()
            .start_connect(self.req(api::StartConnectRequest {
                workspace_id: self.ws.clone(),
                provider: provider as i32,
            }))
            .await
            .expect("StartConnect")
            .into_inner();
        self.complete_oauth(&started.authorize_url).await;
        self.health_of(&started.integration_id, |h| {
            h.status == api::ConnectionStatus::Connected as i32
        })
        .await;
        started.integration_id
    }

    async fn complete_oauth(&self, authorize_url: &str) {
        let mut url = authorize_url.to_string();
        for _ in 0..4 {
            if url.starts_with(APP) {
                assert!(
                    url.contains("/workspace/connections"),
                    "lands on the Connections page: {url}"
                );
                return;
            }
            let resp = self.http.get(&url).send().await.expect("OAuth hop");
            url = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("no redirect from {url}"))
                .to_string();
        }
        panic!("the OAuth flow did not land on the app");
    }

    async fn health(&self) -> Vec<api::IntegrationHealth> {
        self.sync
            .clone()
            .get_connection_health(self.req(api::GetConnectionHealthRequest {
                workspace_id: self.ws.clone(),
            }))
            .await
            .expect("health")
            .into_inner()
            .integrations
    }

    async fn health_of<F: Fn(&api::IntegrationHealth) -> bool>(
        &self,
        id: &str,
        pred: F,
    ) -> api::IntegrationHealth {
        eventually(WAIT, "the integration's health", || async {
            self.health()
                .await
                .into_iter()
                .find(|h| h.integration_id == id && pred(h))
        })
        .await
    }

    async fn sync_now(&self, id: &str) -> api::SyncNowResponse {
        self.sync
            .clone()
            .sync_now(self.req(api::SyncNowRequest {
                integration_id: id.into(),
            }))
            .await
            .expect("SyncNow")
            .into_inner()
    }

    async fn finished_run(&self, run: &str) -> api::SyncRun {
        eventually(WAIT, "the sync run to finish", || async {
            let r = self
                .sync
                .clone()
                .get_sync_run(self.req(api::GetSyncRunRequest {
                    sync_run_id: run.into(),
                }))
                .await
                .ok()?
                .into_inner();
            matches!(r.state.as_str(), "completed" | "failed" | "interrupted").then_some(r)
        })
        .await
    }

    async fn notifications(&self) -> Vec<api::Notification> {
        self.notifications
            .clone()
            .list(self.req(api::ListNotificationsRequest {
                workspace_id: self.ws.clone(),
                page_size: 100,
                ..Default::default()
            }))
            .await
            .expect("notifications")
            .into_inner()
            .notifications
    }

    async fn dashboard(&self, window_days: u32) -> Option<api::Dashboard> {
        self.attribution
            .clone()
            .get_dashboard(self.req(api::GetDashboardRequest {
                workspace_id: self.ws.clone(),
                window_days,
                model: api::AttributionModel::Linear as i32,
            }))
            .await
            .ok()
            .map(|r| r.into_inner())
            .filter(|d| d.as_of.is_some())
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.sandbox.admin_url());
        let resp = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .expect("sandbox admin");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn requests(&self, provider: &str) -> Vec<Value> {
        let v = self
            .admin(
                reqwest::Method::GET,
                &format!("/requests?provider={provider}"),
                json!({}),
            )
            .await;
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    fn scheduler(&self, clock: &ManualClock) -> Scheduler<ManualClock> {
        Scheduler {
            pool: self.env.pool.clone(),
            clock: Arc::new(clock.clone()),
            config: SchedulerConfig::default(),
        }
    }

    async fn stop(self) {
        for p in self.processes {
            let status = p.terminate(Duration::from_secs(30)).await;
            assert!(
                status.success(),
                "a service did not stop cleanly: {status:?}"
            );
        }
        self.sandbox.shutdown().await;
        self.env.cleanup().await;
    }
}

fn t(ts: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.as_ref().and_then(from_timestamp)
}

/// "Sync Now ... runs in the background and the dashboard updates once it completes";
/// "You can see the last sync time on the Connections page"; the fixed sequence of steps;
/// "syncs ... automatically on a daily schedule" at the integration's own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_and_the_daily_schedule_run_the_whole_cycle_and_update_the_numbers() {
    let s = System::start().await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    let linkedin = s.connect(api::Provider::Linkedin).await;
    assert!(
        s.dashboard(30).await.is_none(),
        "no numbers before the first completed sync"
    );

    // Sync Now answers at once with a run id; the run goes on in the background.
    let crm = s.sync_now(&hubspot).await;
    assert!(!crm.joined_running);
    let again = s.sync_now(&hubspot).await;
    if again.joined_running {
        assert_eq!(
            again.sync_run_id, crm.sync_run_id,
            "a second click joins the running sync"
        );
    }
    let run = s.finished_run(&crm.sync_run_id).await;
    assert_eq!(run.state, "completed", "{run:?}");
    let steps: Vec<i32> = run.steps.iter().map(|s| s.step).collect();
    use rp_platform::contracts::events::v1::SyncStep;
    assert_eq!(
        steps,
        vec![
            SyncStep::CrmPull as i32,
            SyncStep::Matching as i32,
            SyncStep::Attribution as i32
        ]
    );
    assert!(run.steps[0].records > 0);

    let li = s.sync_now(&linkedin).await;
    let run = s.finished_run(&li.sync_run_id).await;
    assert_eq!(run.state, "completed", "{run:?}");
    let steps: Vec<i32> = run.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        vec![
            SyncStep::LinkedinPull as i32,
            SyncStep::CompanyResolution as i32,
            SyncStep::Matching as i32,
            SyncStep::Attribution as i32
        ]
    );

    // The last sync time shows, and the numbers reflect the completed cycle.
    let h = s
        .health_of(&linkedin, |h| h.last_successful_sync_at.is_some())
        .await;
    assert_eq!(h.last_attempt_outcome, "completed");
    assert!(h.next_scheduled_sync_at.is_some());
    let d30 = eventually(WAIT, "the dashboard", || async {
        s.dashboard(30)
            .await
            .filter(|d| d.sync_run_id == li.sync_run_id)
    })
    .await;
    let companies = d30.companies.expect("company numbers");
    assert!(
        companies.engaged_companies > 0 && companies.matched_companies > 0,
        "{companies:?}"
    );
    // As of the cycle that produced them: the attribution step, the last step before completion.
    let (as_of, finished) = (
        t(&d30.as_of).expect("as_of"),
        t(&run.finished_at).expect("finished_at"),
    );
    assert!(
        as_of <= finished && finished - as_of < chrono::Duration::seconds(60),
        "{as_of} vs {finished}"
    );

    // One sync is one causal chain across services: every event of the run shares its correlation.
    let chain = s
        .env
        .store
        .read_all(
            0,
            100_000,
            &ReadFilter {
                workspace_id: Some(s.ws.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("log");
    let run_events: Vec<_> = chain
        .iter()
        .filter(|e| e.meta().correlation_id == li.sync_run_id)
        .collect();
    let types: HashSet<&str> = run_events.iter().map(|e| e.event_type()).collect();
    for ty in [
        "SyncRequested",
        "SyncStarted",
        "RecordsPulled",
        "CompaniesResolved",
        "AccountsMatched",
        "AttributionUpdated",
        "SyncCompleted",
    ] {
        assert!(types.contains(ty), "{ty} is in the run's chain: {types:?}");
    }
    let traces: HashSet<&str> = run_events
        .iter()
        .filter_map(|e| rp_platform::telemetry::trace_id_of_traceparent(&e.meta().traceparent))
        .collect();
    assert_eq!(traces.len(), 1, "one trace per sync across services");

    // The daily schedule fires at the integration's own time.
    let set = s
        .sync
        .clone()
        .set_sync_schedule(s.req(api::SetSyncScheduleRequest {
            integration_id: hubspot.clone(),
            local_time: "06:30".into(),
            time_zone: "America/New_York".into(),
        }))
        .await
        .expect("SetSyncSchedule")
        .into_inner();
    let slot = t(&set.next_scheduled_sync_at).expect("next slot");
    let clock = ManualClock::new(slot - chrono::Duration::seconds(30));
    let scheduler = s.scheduler(&clock);
    assert!(
        scheduler.tick().await.expect("tick").started.is_empty(),
        "not before its time"
    );
    clock.set(slot + chrono::Duration::seconds(5));
    let fired = scheduler.tick().await.expect("tick");
    assert_eq!(fired.started.len(), 1, "{fired:?}");
    let run = s.finished_run(&fired.started[0]).await;
    assert_eq!(run.state, "completed");
    assert_eq!(
        run.trigger,
        rp_platform::contracts::events::v1::SyncTrigger::Scheduled as i32
    );
    assert!(
        s.notifications().await.is_empty(),
        "nothing went wrong: no notification"
    );
    s.stop().await;
}

/// "Disconnected: the authorization has expired or been revoked, and syncing has stopped";
/// "notifications ... when ... a connection is disconnected ... which integration was affected and
/// a link directly to the Connections page"; "Disconnecting stops future syncs but does not
/// delete historical data"; "Reconnect ... resumes incremental sync from the last successful
/// point, so previously synced records are not re-pulled".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_access_disconnects_and_notifies_disconnect_keeps_history_reconnect_resumes() {
    let s = System::start().await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    let first = s
        .finished_run(&s.sync_now(&hubspot).await.sync_run_id)
        .await;
    assert_eq!(first.state, "completed");

    // Access revoked in HubSpot (and the current token expired): the next sync disconnects.
    s.admin(
        reqwest::Method::POST,
        "/providers/hubspot/grants/revoke",
        json!({}),
    )
    .await;
    s.admin(
        reqwest::Method::POST,
        "/providers/hubspot/tokens/expire",
        json!({}),
    )
    .await;
    let run = s
        .finished_run(&s.sync_now(&hubspot).await.sync_run_id)
        .await;
    assert_eq!(run.state, "interrupted", "{run:?}");
    let h = s
        .health_of(&hubspot, |h| {
            h.status == api::ConnectionStatus::Disconnected as i32
        })
        .await;
    assert!(
        h.disconnect_reason.contains("revoked"),
        "{}",
        h.disconnect_reason
    );
    assert!(h.next_scheduled_sync_at.is_none(), "syncing has stopped");
    let n = eventually(WAIT, "the disconnection notification", || async {
        s.notifications()
            .await
            .into_iter()
            .find(|n| n.kind == api::NotificationKind::ConnectionDisconnected as i32)
    })
    .await;
    assert_eq!(n.provider, "HubSpot");
    assert_eq!(n.integration_id, hubspot);
    assert_eq!(n.link, format!("{APP}/workspace/connections"));
    let err = s
        .sync
        .clone()
        .sync_now(s.req(api::SyncNowRequest {
            integration_id: hubspot.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "Sync Now says to reconnect: {}",
        err.message()
    );

    // While disconnected the schedule does not fire, and the history is still there.
    let clock = ManualClock::new(Utc::now() + chrono::Duration::days(2));
    assert!(
        s.scheduler(&clock)
            .tick()
            .await
            .expect("tick")
            .started
            .is_empty()
    );
    let runs = s
        .sync
        .clone()
        .list_sync_runs(s.req(api::ListSyncRunsRequest {
            integration_id: hubspot.clone(),
            ..Default::default()
        }))
        .await
        .expect("history")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 2);
    assert!(
        s.dashboard(30).await.is_some(),
        "numbers stay after a disconnection"
    );

    // Reconnect: the OAuth flow again; the next sync resumes from the checkpoint.
    let re = s
        .connections
        .clone()
        .reconnect(s.req(api::ReconnectRequest {
            workspace_id: s.ws.clone(),
            integration_id: hubspot.clone(),
        }))
        .await
        .expect("Reconnect")
        .into_inner();
    assert_eq!(re.integration_id, hubspot, "the same integration");
    s.complete_oauth(&re.authorize_url).await;
    s.health_of(&hubspot, |h| {
        h.status == api::ConnectionStatus::Connected as i32
    })
    .await;
    let resolved = eventually(WAIT, "the resolving notification", || async {
        s.notifications()
            .await
            .into_iter()
            .find(|n| n.kind == api::NotificationKind::Resolved as i32)
    })
    .await;
    assert_eq!(resolved.resolves_notification_id, n.notification_id);

    let before = s.requests("hubspot").await.len();
    let run = s
        .finished_run(&s.sync_now(&hubspot).await.sync_run_id)
        .await;
    assert_eq!(run.state, "completed", "{run:?}");
    let after = s.requests("hubspot").await;
    let listed_pages = after[before..]
        .iter()
        .filter(|r| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/crm/v3/objects/"))
        })
        .count();
    assert_eq!(
        listed_pages, 0,
        "no full listing after a reconnect: only changes since the checkpoint"
    );
    s.stop().await;
}

/// "If a sync is interrupted, Revenue Proven updates the connection status and sends you a
/// notification"; "For provider outages, Revenue Proven retries automatically on the next
/// scheduled sync".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_interrupts_notifies_is_retried_at_the_next_scheduled_sync_and_resolves() {
    let s = System::start().await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.admin(
        reqwest::Method::PUT,
        "/providers/hubspot/outage",
        json!({"mode": "503"}),
    )
    .await;
    let run = s
        .finished_run(&s.sync_now(&hubspot).await.sync_run_id)
        .await;
    assert_eq!(run.state, "failed");
    assert_eq!(
        run.failure_kind,
        rp_platform::contracts::events::v1::FailureKind::ProviderOutage as i32
    );
    let retry_at = t(&run.next_attempt_at).expect("the next attempt is the next scheduled sync");
    let h = s
        .health_of(&hubspot, |h| {
            h.last_attempt_outcome == "failed: provider_outage"
        })
        .await;
    assert_eq!(
        h.status,
        api::ConnectionStatus::Connected as i32,
        "an outage does not disconnect"
    );
    assert_eq!(t(&h.next_scheduled_sync_at), Some(retry_at));
    let n = eventually(WAIT, "the interruption notification", || async {
        s.notifications()
            .await
            .into_iter()
            .find(|n| n.kind == api::NotificationKind::SyncInterrupted as i32)
    })
    .await;
    assert_eq!(n.provider, "HubSpot");
    assert_eq!(n.link, format!("{APP}/workspace/connections"));

    // The provider recovers; at the next scheduled sync the retry succeeds and the incident ends.
    s.admin(
        reqwest::Method::DELETE,
        "/providers/hubspot/outage",
        json!({}),
    )
    .await;
    let clock = ManualClock::new(retry_at + chrono::Duration::seconds(5));
    let fired = s.scheduler(&clock).tick().await.expect("tick");
    assert_eq!(fired.started.len(), 1, "{fired:?}");
    let run = s.finished_run(&fired.started[0]).await;
    assert_eq!(run.state, "completed", "{run:?}");
    let resolved = eventually(WAIT, "the resolving notification", || async {
        s.notifications()
            .await
            .into_iter()
            .find(|r| r.kind == api::NotificationKind::Resolved as i32)
    })
    .await;
    assert_eq!(resolved.resolves_notification_id, n.notification_id);
    let interruptions = s
        .notifications()
        .await
        .into_iter()
        .filter(|n| n.kind == api::NotificationKind::SyncInterrupted as i32)
        .count();
    assert_eq!(interruptions, 1, "one notification per incident");
    s.stop().await;
}
