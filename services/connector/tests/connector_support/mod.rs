//! Shared by the connector's service tests: a whole connector (consumer, pull worker, gRPC API,
//! OAuth callback server) in-process against a fresh database and bus (TestEnv) and its own
//! provider sandbox, wired as `main.rs` wires it, plus helpers to drive it like a user would.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use connector::Connector;
use connector::config::{ConnectorConfig, ProviderSettings, ProvidersConfig, PullConfig};
use connector::crypto::KeyRing;
use connector::domain::provider::Secret;
use connector::domain::{IntegrationId, SyncRunId};
use connector::providers::http_client;
use connector::pull::{NextScheduledSync, NoSchedule};
use connector::{callback, handlers, store};
use rp_platform::apikeys;
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::api::v1::connections_client::ConnectionsClient;
use rp_platform::contracts::events::v1::{self as ev, SyncRequested, SyncTrigger, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, RecordedEvent};
use rp_platform::grpc::{self, Services};
use rp_platform::plans::{DEFAULT_PLANS, Plans};
use rp_platform::runtime::Service;
use rp_platform::testing::{TestEnv, eventually};
use sandbox::{Provider as SbProvider, Sandbox, SandboxConfig};
use serde_json::Value;
use tonic::transport::Channel;
use tracing::Instrument;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);

/// The run a test holds by its id string (as events carry it).
pub fn run_id(run: &str) -> SyncRunId {
    SyncRunId::parse(run).expect("a sync run id")
}

pub fn key_b64(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

pub fn sb_provider(p: api::Provider) -> SbProvider {
    match p {
        api::Provider::Hubspot => SbProvider::Hubspot,
        api::Provider::Salesforce => SbProvider::Salesforce,
        _ => SbProvider::Linkedin,
    }
}

/// The configuration a test connector uses: everything pointed at the sandbox, fast retries.
pub fn test_config(sb: &Sandbox, redirect_url: String) -> ConnectorConfig {
    let settings = |p: SbProvider| {
        let c = sb.client(p);
        ProviderSettings {
            api_base: sb.url(p),
            auth_base: sb.url(p),
            client_id: c.client_id.clone(),
            client_secret: Secret::new(c.client_secret.clone()),
        }
    };
    ConnectorConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        redirect_url,
        connections_page: "http://localhost:3000/workspace/connections".into(),
        providers: ProvidersConfig {
            linkedin: settings(SbProvider::Linkedin),
            hubspot: settings(SbProvider::Hubspot),
            salesforce: settings(SbProvider::Salesforce),
            http_timeout: Duration::from_secs(5),
            attempts: 3,
            retry_delay: Duration::from_millis(5),
            linkedin_analytics_cap: connector::providers::linkedin::ANALYTICS_CAP,
            linkedin_api_version: TEST_LINKEDIN_VERSION.into(),
            max_response_bytes: connector::providers::DEFAULT_MAX_RESPONSE_BYTES,
            max_pages: connector::providers::DEFAULT_MAX_PAGES,
            max_retry_after: connector::providers::hubspot::DEFAULT_MAX_RETRY_AFTER,
        },
        keys: KeyRing::parse(&format!("k1:{}", key_b64(7)), "k1").unwrap(),
        oauth_state_ttl: Duration::from_secs(600),
        refresh_margin: Duration::from_secs(60),
        signpost_margin: Duration::from_secs(120),
        provider_clock_url: Some(format!("{}/clock", sb.admin_url())),
        plans: Plans::parse(DEFAULT_PLANS).unwrap(),
        callback_rate: rp_platform::ratelimit::Rate::new(10, 60),
        pull: PullConfig {
            concurrency: 2,
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_secs(3),
            retry_for: Duration::from_secs(120),
            poll: Duration::from_millis(500),
            max_attempts: 3,
        },
    }
}

pub struct Harness {
    pub env: TestEnv,
    pub sb: Sandbox,
    pub svc: Option<Service>,
    pub connector: Arc<Connector>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// No redirects followed: a browser's hops are taken one by one.
    pub http: reqwest::Client,
    pub workspace: Uuid,
    pub api_key: String,
}

/// The `LinkedIn-Version` these tests send: the sandbox runs pinned to 2025-06-30
/// (`SandboxConfig::for_tests`), when LinkedIn's production default (202611) was not released
/// yet and answered 426, as the real API would.
pub const TEST_LINKEDIN_VERSION: &str = "202506";

pub struct Options {
    pub sandbox: SandboxConfig,
    pub plan: &'static str,
    pub tweak: Box<dyn FnOnce(&mut ConnectorConfig) + Send>,
    pub schedule: Arc<dyn NextScheduledSync>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sandbox: SandboxConfig::for_tests(),
            plan: "enterprise",
            tweak: Box::new(|_| {}),
            schedule: Arc::new(NoSchedule),
        }
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Self {
        let env = TestEnv::new().await;
        let sb = Sandbox::spawn(opts.sandbox).await.expect("sandbox starts");
        let mut svc = Service::connect("connector", env.platform_config())
            .await
            .expect("service connects");
        store::migrate(&svc.pool)
            .await
            .expect("connector migrations");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = listener.local_addr().unwrap();
        let mut config = test_config(&sb, format!("http://{http_addr}/oauth/callback"));
        (opts.tweak)(&mut config);
        let schedule = opts.schedule;
        let connector = Arc::new(
            Connector::new(svc.pool.clone(), svc.store.clone(), config, schedule)
                .expect("connector builds"),
        );
        let mut consumer = handlers::consumer_config();
        consumer.ack_wait = Duration::from_secs(5);
        svc.consume(consumer, connector.handler());
        let worker = connector.worker();
        let cancel = svc.cancel.clone();
        svc.spawn(async move { worker.run(cancel).await });
        let serving = grpc::serve(
            "127.0.0.1:0".parse().unwrap(),
            svc.cancel.clone(),
            Services::new().service(connector.grpc_service()),
        )
        .await
        .expect("gRPC serves");
        let grpc_addr = serving.local_addr();
        svc.spawn(async move { serving.wait().await.map_err(Into::into) });
        let http_server =
            callback::serve_listener(listener, connector.http_router(), svc.cancel.clone())
                .unwrap();
        svc.spawn(async move { http_server.task.await?.map_err(Into::into) });

        let (workspace, api_key) = create_workspace(&env, "Acme", opts.plan).await;
        Self {
            env,
            sb,
            svc: Some(svc),
            connector,
            grpc_addr,
            http_addr,
            http: http_client(Duration::from_secs(10)).unwrap(),
            workspace,
            api_key,
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(svc) = self.svc.take() {
            svc.cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(20), svc.wait()).await;
        }
        self.env.cleanup().await;
    }

    pub async fn grpc(&self) -> ConnectionsClient<Channel> {
        ConnectionsClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("gRPC connects")
    }

    /// A request carrying the workspace's API key.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.api_key).parse().unwrap(),
        );
        r
    }

    pub fn ws(&self) -> String {
        self.workspace.to_string()
    }

    /// Follows the provider's authorize URL as a browser would: the sandbox consents at once and
    /// redirects to our callback; returns that callback URL.
    pub async fn follow_authorize(&self, authorize_url: &str) -> String {
        let resp = self.http.get(authorize_url).send().await.unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::FOUND,
            "authorize redirects"
        );
        resp.headers()["location"].to_str().unwrap().to_string()
    }

    /// Calls our callback; returns the Connections page URL it redirects the browser to.
    pub async fn callback(&self, callback_url: &str) -> String {
        let resp = self.http.get(callback_url).send().await.unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::SEE_OTHER,
            "the callback redirects to the Connections page"
        );
        resp.headers()["location"].to_str().unwrap().to_string()
    }

    /// Another workspace of the same system, with its own key: `(workspace id, API key)`.
    pub async fn another_workspace(&self) -> (String, String) {
        let (workspace, key) = create_workspace(&self.env, "Other", "growth").await;
        (workspace.to_string(), key)
    }

    /// GetConnection of the integration in this harness's workspace.
    pub async fn connection(&self, id: IntegrationId) -> api::Connection {
        self.grpc()
            .await
            .get_connection(self.req(api::GetConnectionRequest {
                workspace_id: self.ws(),
                integration_id: id.to_string(),
            }))
            .await
            .expect("GetConnection")
            .into_inner()
    }

    /// StartConnect for `provider` in this harness's workspace.
    pub async fn start_connect(&self, provider: api::Provider) -> api::StartConnectResponse {
        self.grpc()
            .await
            .start_connect(self.req(api::StartConnectRequest {
                workspace_id: self.ws(),
                provider: provider as i32,
            }))
            .await
            .expect("StartConnect")
            .into_inner()
    }

    /// CompleteConnect from the Connections page the callback redirected to, as that page does,
    /// with this harness's workspace and key.
    pub async fn complete(
        &self,
        page: &str,
    ) -> Result<api::CompleteConnectResponse, tonic::Status> {
        self.complete_as(&self.ws(), &self.api_key, page).await
    }

    /// CompleteConnect from the Connections page `page`, as `workspace` with `key`.
    pub async fn complete_as(
        &self,
        workspace: &str,
        key: &str,
        page: &str,
    ) -> Result<api::CompleteConnectResponse, tonic::Status> {
        assert!(page.contains("status=authorized"), "{page}");
        self.grpc()
            .await
            .complete_connect(rp_platform::testing::authed(
                key,
                api::CompleteConnectRequest {
                    workspace_id: workspace.to_string(),
                    completion: completion_of(page),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Calls our callback and completes the authorization from the page it lands on.
    pub async fn callback_and_complete(&self, callback_url: &str) -> api::CompleteConnectResponse {
        let page = self.callback(callback_url).await;
        self.complete(&page)
            .await
            .unwrap_or_else(|e| panic!("CompleteConnect: {e}"))
    }

    /// The whole connect flow for `provider`; returns the integration.
    pub async fn connect(&self, provider: api::Provider) -> IntegrationId {
        let started = self
            .grpc()
            .await
            .start_connect(self.req(api::StartConnectRequest {
                workspace_id: self.ws(),
                provider: provider as i32,
            }))
            .await
            .expect("StartConnect")
            .into_inner();
        let cb = self.follow_authorize(&started.authorize_url).await;
        let done = self.callback_and_complete(&cb).await;
        assert_eq!(
            done.connection.map(|c| c.status),
            Some(api::ConnectionStatus::Connected as i32)
        );
        let id = IntegrationId::parse(&started.integration_id).unwrap();
        self.wait_event(&id.connection_stream(), "ConnectionConnected")
            .await;
        id
    }

    /// Waits for an event of `event_type` in `stream`.
    pub async fn wait_event(&self, stream: &str, event_type: &str) -> RecordedEvent {
        eventually(WAIT, &format!("{event_type} in {stream}"), || async {
            self.stream(stream)
                .await
                .into_iter()
                .rev()
                .find(|e| e.event_type() == event_type)
        })
        .await
    }

    pub async fn stream(&self, stream: &str) -> Vec<RecordedEvent> {
        self.env
            .store
            .read_stream(stream, 1, 100_000)
            .await
            .unwrap()
    }

    /// Appends a SyncRequested for the integration (as Sync Now would), inside a span so it
    /// carries a trace; returns the run id.
    pub async fn request_sync(&self, id: IntegrationId) -> String {
        let run = SyncRunId::generate().to_string();
        let event = NewEvent::new(
            self.ws(),
            Event::SyncRequested(SyncRequested {
                sync_run_id: run.clone(),
                trigger: SyncTrigger::Manual as i32,
                requested_by: "tests".into(),
                scheduled_for: None,
            }),
        )
        .integration(id.to_string())
        .correlation(run.clone());
        let span = tracing::info_span!("sync_now", sync_run_id = %run);
        self.env
            .store
            .append(
                &run_id(&run).run_stream(),
                ExpectedVersion::Any,
                vec![event],
            )
            .instrument(span)
            .await
            .unwrap();
        run
    }

    /// Waits until the run's pull ended; returns the run's events.
    pub async fn wait_run(&self, run: &str) -> Vec<RecordedEvent> {
        eventually(WAIT, &format!("run {run} to end"), || async {
            let events = self.stream(&run_id(run).run_stream()).await;
            let ended = events.iter().any(|e| match e.event() {
                Some(Event::SyncFailed(_)) | Some(Event::CompaniesResolved(_)) => true,
                Some(Event::PullCompleted(p)) => p.step == ev::SyncStep::CrmPull as i32,
                _ => false,
            });
            let job = store::job_state(&self.env.pool, run).await.unwrap();
            let settled = !matches!(job.as_deref(), Some("queued") | Some("running"));
            (ended && settled).then_some(events)
        })
        .await
    }

    /// Requests a sync and waits for it to end.
    pub async fn sync(&self, id: IntegrationId) -> (String, Vec<RecordedEvent>) {
        let run = self.request_sync(id).await;
        let events = self.wait_run(&run).await;
        (run, events)
    }

    /// Every RecordsPulled batch of a run.
    pub async fn batches(&self, run: &str) -> Vec<ev::RecordsPulled> {
        self.stream(&run_id(run).records_stream())
            .await
            .into_iter()
            .filter_map(|e| match e.envelope.event {
                Some(Event::RecordsPulled(r)) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.sb.admin_url(), path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, url);
        if !body.is_null() {
            rb = rb.json(&body);
        }
        let resp = rb.send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "{method} {path}: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    pub async fn requests(&self, p: SbProvider) -> Vec<Value> {
        self.admin("GET", &format!("/requests?provider={p}"), Value::Null)
            .await["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn clear_requests(&self) {
        self.admin("DELETE", "/requests", Value::Null).await;
    }

    pub async fn truth_counts(&self) -> Value {
        self.admin("GET", "/truth?include=none", Value::Null).await["counts"].clone()
    }

    /// The last checkpoint of an object type, from the log.
    pub async fn checkpoint(
        &self,
        id: IntegrationId,
        object: &str,
    ) -> Option<ev::CheckpointAdvanced> {
        self.stream(&id.checkpoint_stream(object))
            .await
            .into_iter()
            .next_back()
            .and_then(|e| match e.envelope.event {
                Some(Event::CheckpointAdvanced(c)) => Some(c),
                _ => None,
            })
    }
}

/// Records per object type in a run's batches.
pub fn counts(batches: &[ev::RecordsPulled]) -> std::collections::BTreeMap<&'static str, usize> {
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        let (name, n) = match ev::ObjectType::try_from(b.object_type) {
            Ok(ev::ObjectType::CrmCompany) => ("companies", b.companies.len()),
            Ok(ev::ObjectType::CrmContact) => ("contacts", b.contacts.len()),
            Ok(ev::ObjectType::CrmDeal) => ("deals", b.deals.len()),
            Ok(ev::ObjectType::CrmPipeline) => ("pipelines", b.pipelines.len()),
            Ok(ev::ObjectType::LinkedinEngagement) => ("engagement", b.engagement.len()),
            Ok(ev::ObjectType::LinkedinOrganization) => ("organizations", b.organizations.len()),
            _ => ("unknown", 0),
        };
        *out.entry(name).or_insert(0) += n;
    }
    out
}

/// The last event of a run's stream.
/// A workspace (WorkspaceCreated on `plan`) and an API key for it: `(workspace id, key)`.
async fn create_workspace(env: &TestEnv, name: &str, plan: &str) -> (Uuid, String) {
    let workspace = env.create_workspace(name, plan).await;
    let key = apikeys::issue(&env.pool, workspace, "tests").await.unwrap();
    (workspace.as_uuid(), key.plaintext)
}

/// The `completion` handle in the address of the Connections page the callback redirected to.
pub fn completion_of(page: &str) -> String {
    reqwest::Url::parse(page)
        .unwrap_or_else(|e| panic!("{page}: {e}"))
        .query_pairs()
        .find(|(k, _)| k == "completion")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no completion in {page}"))
}

pub fn last(events: &[RecordedEvent]) -> &RecordedEvent {
    events.last().expect("the run has events")
}

pub fn failed(events: &[RecordedEvent]) -> Option<ev::SyncFailed> {
    events.iter().find_map(|e| match &e.envelope.event {
        Some(Event::SyncFailed(f)) => Some(f.clone()),
        _ => None,
    })
}
