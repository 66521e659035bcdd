//! The whole system as `make run` starts it, for the cross-process scenarios in `tests/`.
//!
//! [`System::start`] runs the provider sandbox and the four services (connector, matcher,
//! attribution, notification) each as its own process, against a fresh database and stream
//! prefix of their own (a [`TestEnv`]), so scenarios run in parallel; makes a workspace and an API
//! key with the `rp` CLI; and connects gRPC clients once every server answers. The scenario then
//! drives it as a user would: [`System::connect`] through the real OAuth flow, [`System::sync_now`]
//! and [`System::finished_run`], the sandbox's admin API to change what the providers do.
//! [`System::stop`] stops every process and drops the database and the stream; a test that panics
//! before it still kills its processes and drops both (on drop). [`System::kill_service`] and
//! [`System::start_service`] crash any service (`kill -9`) and start it again; [`System::start_on`]
//! runs the system on a [`TestEnv`] of the test's making (its own PostgreSQL or nats-server).
//!
//! Nothing waits by sleeping: every wait is for a condition, with [`WAIT`] as its limit. The
//! binaries must be built first (`cargo build --workspace --bins`).

use base64::Engine;
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::api::v1::{
    attribution_client::AttributionClient, connections_client::ConnectionsClient,
    matches_client::MatchesClient, notifications_client::NotificationsClient,
    sync_client::SyncClient,
};
use rp_platform::eventlog::{ReadFilter, RecordedEvent};
use rp_platform::testing::{ServiceProcess, TestEnv, eventually};
pub use sandbox::Sizes;
use serde_json::Value;
use std::time::Duration;
use tonic::transport::Channel;

pub mod cluster;
pub mod faults;
pub mod tenants;

/// How long any one wait of a scenario may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(90);

/// The web app's base URL the services link to (`RP_APP_BASE_URL`); OAuth ends there.
pub const APP: &str = "http://app.test";

/// The provider sandbox's data and limits, as its binary takes them (`SANDBOX_*`). The data is
/// dated today, as the dashboard's windows are.
#[derive(Clone, Copy, Debug)]
pub struct SandboxData {
    pub seed: u64,
    pub sizes: Sizes,
    /// HubSpot's production rate limit (100 requests in 10 s), or none.
    pub hubspot_rate_limit: bool,
}

/// The running system, seen from a user's side: one workspace, its API key and a client of
/// every gRPC API.
pub struct System {
    /// The test's own database, event store and stream.
    pub env: TestEnv,
    pub workspace_id: String,
    pub connections: ConnectionsClient<Channel>,
    pub sync: SyncClient<Channel>,
    pub matches: MatchesClient<Channel>,
    pub attribution: AttributionClient<Channel>,
    pub notifications: NotificationsClient<Channel>,
    key: String,
    sandbox: ServiceProcess,
    sandbox_url: String,
    /// In [`SERVICES`]' order.
    services: Vec<Service>,
    /// Second replicas ([`System::start_second_replicas`]), in [`SERVICES`]' order; none until
    /// then.
    second: Vec<Service>,
    /// Each service's name and the address of its metrics endpoint (`GET /metrics`).
    pub metrics: Vec<(&'static str, String)>,
    /// Each service's `<NAME>_GRPC_ADDR` variable and its value (the web edge takes them).
    pub grpc_addrs: Vec<(String, String)>,
    /// Follows no redirect, so that the OAuth flow can be walked hop by hop.
    http: reqwest::Client,
}

impl System {
    /// Starts the sandbox on `data` and every service, and makes a workspace on `plan` (one of
    /// `RP_PLANS`' names) with an API key.
    pub async fn start(plan: &str, data: &SandboxData) -> Self {
        Self::start_with(plan, data, &[]).await
    }

    /// [`System::start`], with `connector_vars` added to (or replacing) the connector's
    /// environment: its settings, or a `DATABASE_URL` through a [`faults::DbProxy`].
    pub async fn start_with(
        plan: &str,
        data: &SandboxData,
        connector_vars: &[(String, String)],
    ) -> Self {
        Self::start_on(TestEnv::new().await, plan, data, &[], connector_vars).await
    }

    /// [`System::start_with`] on `env` (a [`TestEnv`] on the test's own PostgreSQL cluster or
    /// nats-server, say), with `vars` in every service's environment (a `DATABASE_URL` through
    /// a [`faults::DbProxy`], a retry schedule), before its own.
    pub async fn start_on(
        env: TestEnv,
        plan: &str,
        data: &SandboxData,
        vars: &[(String, String)],
        connector_vars: &[(String, String)],
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("an HTTP client: {e}"));
        let (sandbox, sandbox_url, providers) = start_sandbox(&env, &http, data).await;

        let (connector_grpc, connector_http) = (free_port(), free_port());
        let (matcher_grpc, attribution_grpc, notification_grpc) =
            (free_port(), free_port(), free_port());
        let metrics: Vec<(&'static str, String)> =
            ["connector", "matcher", "attribution", "notification"]
                .into_iter()
                .map(|s| (s, format!("127.0.0.1:{}", free_port())))
                .collect();
        let metrics_var = |i: usize| {
            let (name, addr) = &metrics[i];
            (
                format!("{}_METRICS_ADDR", name.to_uppercase()),
                addr.clone(),
            )
        };
        let token_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut connector = vec![
            metrics_var(0),
            (
                "CONNECTOR_GRPC_ADDR".to_string(),
                format!("127.0.0.1:{connector_grpc}"),
            ),
            (
                "CONNECTOR_HTTP_ADDR".into(),
                format!("127.0.0.1:{connector_http}"),
            ),
            (
                "CONNECTOR_REDIRECT_URL".into(),
                format!("http://127.0.0.1:{connector_http}/oauth/callback"),
            ),
            ("CONNECTOR_TOKEN_KEYS".into(), format!("k1:{token_key}")),
            ("CONNECTOR_TOKEN_KEY_ID".into(), "k1".into()),
            (
                "CONNECTOR_PROVIDER_CLOCK_URL".into(),
                format!("{sandbox_url}/admin/clock"),
            ),
            ("CONNECTOR_PROVIDER_RETRY_DELAY".into(), "5ms".into()),
            ("CONNECTOR_PULL_POLL".into(), "100ms".into()),
            ("RP_APP_BASE_URL".into(), APP.into()),
        ];
        connector.extend(providers);
        connector.extend(connector_vars.iter().cloned());
        let services = vec![
            service(&env, vars, "connector", &connector),
            service(
                &env,
                vars,
                "matcher",
                &[
                    (
                        "MATCHER_GRPC_ADDR".into(),
                        format!("127.0.0.1:{matcher_grpc}"),
                    ),
                    metrics_var(1),
                ],
            ),
            service(
                &env,
                vars,
                "attribution",
                &[
                    (
                        "ATTRIBUTION_GRPC_ADDR".into(),
                        format!("127.0.0.1:{attribution_grpc}"),
                    ),
                    metrics_var(2),
                ],
            ),
            service(
                &env,
                vars,
                "notification",
                &[
                    (
                        "NOTIFICATION_GRPC_ADDR".into(),
                        format!("127.0.0.1:{notification_grpc}"),
                    ),
                    ("RP_APP_BASE_URL".into(), APP.into()),
                    metrics_var(3),
                ],
            ),
        ];

        let (workspace_id, key) = workspace_with_key(&env, plan).await;
        let connector = grpc_channel(connector_grpc).await;
        Self {
            workspace_id,
            key,
            connections: ConnectionsClient::new(connector.clone()),
            sync: SyncClient::new(connector),
            matches: MatchesClient::new(grpc_channel(matcher_grpc).await),
            attribution: AttributionClient::new(grpc_channel(attribution_grpc).await),
            notifications: NotificationsClient::new(grpc_channel(notification_grpc).await),
            env,
            sandbox,
            sandbox_url,
            services,
            second: Vec::new(),
            grpc_addrs: [
                ("CONNECTOR", connector_grpc),
                ("MATCHER", matcher_grpc),
                ("ATTRIBUTION", attribution_grpc),
                ("NOTIFICATION", notification_grpc),
            ]
            .into_iter()
            .map(|(name, port)| (format!("{name}_GRPC_ADDR"), format!("127.0.0.1:{port}")))
            .collect(),
            metrics,
            http,
        }
    }

    /// Kills the connector process with SIGKILL (no chance to give its jobs back).
    pub async fn kill_connector(&mut self) {
        self.kill_service("connector").await;
    }

    /// Starts a connector process again (after [`System::kill_connector`]), with the same
    /// environment and ports, plus `vars` (from now on): a `DATABASE_URL` through a
    /// [`faults::DbProxy`], say.
    /// Returns once its gRPC server answers.
    pub async fn start_connector(&mut self, vars: &[(String, String)]) {
        self.start_service("connector", vars).await;
    }

    /// Kills the service `name` (one of [`SERVICES`]) with SIGKILL: a crash, no shutdown code
    /// runs.
    pub async fn kill_service(&mut self, name: &str) {
        let i = self.index(name);
        let process = self.services[i]
            .process
            .take()
            .unwrap_or_else(|| panic!("the {name} is not running"));
        let status = process.kill().await;
        assert!(!status.success(), "the {name} was killed: {status:?}");
    }

    /// Starts the service `name` again (after [`System::kill_service`]), with the same
    /// environment and ports, plus `vars` (from now on). Returns once its gRPC server answers.
    pub async fn start_service(&mut self, name: &str, vars: &[(String, String)]) {
        let i = self.index(name);
        let s = &mut self.services[i];
        assert!(s.process.is_none(), "the {name} is running");
        s.vars.extend(vars.iter().cloned());
        let grpc = format!("{}_GRPC_ADDR", name.to_uppercase());
        let port = s
            .vars
            .iter()
            .rev()
            .find(|(k, _)| *k == grpc)
            .and_then(|(_, v)| v.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("the {name} has no {grpc}"));
        let vars: Vec<(&str, &str)> = s
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        s.process = Some(ServiceProcess::spawn(&bin(name), &self.env, &vars));
        grpc_channel(port).await;
    }

    /// Starts a second replica of every service: the same environment (database, stream,
    /// durable consumers, settings) on ports of its own (gRPC, the connector's HTTP, metrics),
    /// as a second machine would run it. The test's clients stay on the first replicas. Returns
    /// once every new gRPC server answers.
    pub async fn start_second_replicas(&mut self) {
        assert!(self.second.is_empty(), "the second replicas are running");
        for s in &self.services {
            let own = |k: &str| {
                k.ends_with("_GRPC_ADDR")
                    || k.ends_with("_METRICS_ADDR")
                    || k.ends_with("_HTTP_ADDR")
            };
            let mut vars: Vec<(String, String)> =
                s.vars.iter().filter(|(k, _)| !own(k)).cloned().collect();
            let upper = s.name.to_uppercase();
            let grpc = free_port();
            vars.push((format!("{upper}_GRPC_ADDR"), format!("127.0.0.1:{grpc}")));
            vars.push((
                format!("{upper}_METRICS_ADDR"),
                format!("127.0.0.1:{}", free_port()),
            ));
            if s.name == "connector" {
                vars.push((
                    "CONNECTOR_HTTP_ADDR".into(),
                    format!("127.0.0.1:{}", free_port()),
                ));
            }
            self.second.push(service(&self.env, &[], s.name, &vars));
            grpc_channel(grpc).await;
        }
    }

    /// The provider sandbox's process id.
    pub fn sandbox_pid(&self) -> Option<u32> {
        self.sandbox.id()
    }

    /// Every running service process: (service, replica 0 or 1, pid, metrics address).
    pub fn processes(&self) -> Vec<(&'static str, usize, u32, String)> {
        let metrics = |s: &Service| {
            let var = format!("{}_METRICS_ADDR", s.name.to_uppercase());
            s.vars
                .iter()
                .rev()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let first = self.services.iter().map(|s| (s, 0));
        let second = self.second.iter().map(|s| (s, 1));
        first
            .chain(second)
            .filter_map(|(s, r)| {
                let pid = s.process.as_ref()?.id()?;
                Some((s.name, r, pid, metrics(s)))
            })
            .collect()
    }

    /// Kills replica `replica` (0: the first, 1: the second) of the service `name` with SIGKILL.
    pub async fn kill_replica(&mut self, name: &str, replica: usize) {
        if replica == 0 {
            return self.kill_service(name).await;
        }
        let i = self.index(name);
        let process = self.second[i]
            .process
            .take()
            .unwrap_or_else(|| panic!("the {name}'s second replica is not running"));
        let status = process.kill().await;
        assert!(!status.success(), "the {name} was killed: {status:?}");
    }

    fn index(&self, name: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}: one of {SERVICES:?}"))
    }

    /// Runs the operators' CLI (`rp`) against the system's database and stream, as an operator
    /// would; its one JSON line (pass `--json`).
    pub async fn rp(&self, args: &[&str]) -> Value {
        rp_cli(&self.env, args).await
    }

    /// The workspace's API key (`authorization: Bearer <key>`), for a client of the test's own
    /// (a browser).
    pub fn api_key(&self) -> &str {
        &self.key
    }

    /// The provider sandbox's base URL (its admin API is under `/admin`).
    pub fn sandbox_url(&self) -> &str {
        &self.sandbox_url
    }

    /// `msg` as a request with the workspace's API key.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        rp_platform::testing::authed(&self.key, msg)
    }

    /// Clicks Connect, completes the OAuth flow (the sandbox consents at once) and waits until
    /// the integration is Connected. Returns its id.
    pub async fn connect(&self, provider: api::Provider) -> String {
        let started = self
            .connections
            .clone()
            .start_connect(self.req(api::StartConnectRequest {
                workspace_id: self.workspace_id.clone(),
                provider: provider as i32,
            }))
            .await
            .unwrap_or_else(|e| panic!("StartConnect({provider:?}): {e}"))
            .into_inner();
        self.complete_oauth(&started.authorize_url).await;
        self.health_of(&started.integration_id, |h| {
            h.status == api::ConnectionStatus::Connected as i32
        })
        .await;
        started.integration_id
    }

    /// Follows an authorization URL's redirects (provider consent, the connector's callback)
    /// until they land on the app's Connections page, and completes it there as the page does
    /// (CompleteConnect with this system's workspace and key).
    pub async fn complete_oauth(&self, authorize_url: &str) -> api::CompleteConnectResponse {
        self.complete_oauth_as(&self.workspace_id, &self.key, authorize_url)
            .await
    }

    /// [`System::complete_oauth`] for `workspace` with `key`.
    pub async fn complete_oauth_as(
        &self,
        workspace: &str,
        key: &str,
        authorize_url: &str,
    ) -> api::CompleteConnectResponse {
        let page = self.follow_oauth(authorize_url).await;
        let completion = reqwest::Url::parse(&page)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "completion")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_else(|| panic!("the callback gave the page no completion: {page}"));
        self.connections
            .clone()
            .complete_connect(rp_platform::testing::authed(
                key,
                api::CompleteConnectRequest {
                    workspace_id: workspace.to_string(),
                    completion,
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("CompleteConnect: {e}"))
            .into_inner()
    }

    /// Follows an authorization URL's redirects until they land on the app's Connections page;
    /// returns that page's address.
    pub async fn follow_oauth(&self, authorize_url: &str) -> String {
        let mut url = authorize_url.to_string();
        for _ in 0..4 {
            if url.starts_with(APP) {
                assert!(
                    url.contains("/workspace/connections"),
                    "lands on the Connections page: {url}"
                );
                return url;
            }
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("OAuth hop {url}: {e}"));
            let Some(next) = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
            else {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                panic!("no redirect from {url}: {status} {body}");
            };
            url = next;
        }
        panic!("the OAuth flow did not land on the app: {url}");
    }

    /// The integration's health once `pred` holds for it (the Connections page).
    pub async fn health_of<F: Fn(&api::IntegrationHealth) -> bool>(
        &self,
        integration_id: &str,
        pred: F,
    ) -> api::IntegrationHealth {
        eventually(WAIT, "the integration's health", || async {
            self.sync
                .clone()
                .get_connection_health(self.req(api::GetConnectionHealthRequest {
                    workspace_id: self.workspace_id.clone(),
                }))
                .await
                .unwrap_or_else(|e| panic!("GetConnectionHealth: {e}"))
                .into_inner()
                .integrations
                .into_iter()
                .find(|h| h.integration_id == integration_id && pred(h))
        })
        .await
    }

    /// Clicks Sync Now; the answer comes at once, the run goes on in the background.
    pub async fn sync_now(&self, integration_id: &str) -> api::SyncNowResponse {
        self.sync
            .clone()
            .sync_now(self.req(api::SyncNowRequest {
                integration_id: integration_id.into(),
            }))
            .await
            .unwrap_or_else(|e| panic!("SyncNow({integration_id}): {e}"))
            .into_inner()
    }

    /// The sync run once it has finished, whichever way.
    pub async fn finished_run(&self, sync_run_id: &str) -> api::SyncRun {
        self.finished_run_as(&self.key, sync_run_id, WAIT).await
    }

    /// [`System::finished_run`] read with `key` (another workspace's), within `limit`; a gRPC
    /// error (a service or replica away) counts as not finished yet.
    pub async fn finished_run_as(
        &self,
        key: &str,
        sync_run_id: &str,
        limit: Duration,
    ) -> api::SyncRun {
        eventually(
            limit,
            &format!("sync run {sync_run_id} to finish"),
            || async {
                let r = self
                    .sync
                    .clone()
                    .get_sync_run(rp_platform::testing::authed(
                        key,
                        api::GetSyncRunRequest {
                            sync_run_id: sync_run_id.into(),
                        },
                    ))
                    .await
                    .ok()?
                    .into_inner();
                matches!(r.state.as_str(), "completed" | "failed" | "interrupted").then_some(r)
            },
        )
        .await
    }

    /// Sync Now, and the run once it has completed (a failed or interrupted run fails the test).
    pub async fn sync_to_completion(&self, integration_id: &str) -> api::SyncRun {
        let started = self.sync_now(integration_id).await;
        let run = self.finished_run(&started.sync_run_id).await;
        assert_eq!(run.state, "completed", "{run:?}");
        run
    }

    /// Calls the sandbox's admin API (`path` below `/admin`); its JSON answer, or `Null`.
    pub async fn sandbox_admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/admin{path}", self.sandbox_url);
        let resp = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("sandbox admin {url}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{url}: {status} {v}");
        v
    }

    /// Every dashboard number for each of `windows` and every attribution model, without what
    /// names the installation or the moment (workspace, run, as-of time, version): identical
    /// data gives identical lists, whatever the installation (the oracle of the account-change,
    /// chaos and cluster tests).
    pub async fn dashboards(&self, windows: &[u32]) -> Vec<api::Dashboard> {
        self.dashboards_of(&self.workspace_id, &self.key, windows)
            .await
    }

    /// [`System::dashboards`] of another workspace of this system, with its key.
    pub async fn dashboards_of(
        &self,
        workspace_id: &str,
        key: &str,
        windows: &[u32],
    ) -> Vec<api::Dashboard> {
        let mut out = Vec::new();
        for &window_days in windows {
            for model in MODELS {
                let mut d = self
                    .attribution
                    .clone()
                    .get_dashboard(rp_platform::testing::authed(
                        key,
                        api::GetDashboardRequest {
                            workspace_id: workspace_id.to_string(),
                            window_days,
                            model: model as i32,
                        },
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("GetDashboard({window_days}, {model:?}): {e}"))
                    .into_inner();
                d.workspace_id.clear();
                d.sync_run_id.clear();
                d.as_of = None;
                d.version = 0;
                out.push(d);
            }
        }
        out
    }

    /// Every (LinkedIn id, CRM id) pair the matcher matched, all pages.
    pub async fn matched_pairs(&self) -> std::collections::BTreeSet<(String, String)> {
        let mut out = std::collections::BTreeSet::new();
        let mut token = String::new();
        loop {
            let page = self
                .matches
                .clone()
                .list_matches(self.req(api::ListMatchesRequest {
                    workspace_id: self.workspace_id.clone(),
                    page_size: 1000,
                    page_token: token,
                    linkedin_id: String::new(),
                }))
                .await
                .unwrap_or_else(|e| panic!("ListMatches: {e}"))
                .into_inner();
            out.extend(page.matches.into_iter().map(|m| (m.linkedin_id, m.crm_id)));
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// The workspace's notifications, newest first (the first 100).
    pub async fn notifications_list(&self) -> Vec<api::Notification> {
        self.notifications
            .clone()
            .list(self.req(api::ListNotificationsRequest {
                workspace_id: self.workspace_id.clone(),
                page_size: 100,
                ..Default::default()
            }))
            .await
            .unwrap_or_else(|e| panic!("ListNotifications: {e}"))
            .into_inner()
            .notifications
    }

    /// The workspace's events in the log, in log order.
    pub async fn events(&self) -> Vec<RecordedEvent> {
        self.env
            .store
            .read_all(
                0,
                100_000,
                &ReadFilter {
                    workspace_id: Some(self.workspace_id.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("reading the event log: {e}"))
    }

    /// Stops every service (each must exit cleanly) and the sandbox, and drops the test's
    /// database and stream.
    pub async fn stop(self) {
        let all = self.services.into_iter().chain(self.second);
        for p in all.filter_map(|s| s.process) {
            let status = p.terminate(Duration::from_secs(30)).await;
            assert!(
                status.success(),
                "a service did not stop cleanly: {status:?}"
            );
        }
        // The sandbox binary stops on Ctrl-C only; SIGTERM ends it, which is all we need.
        let _ = self.sandbox.terminate(Duration::from_secs(10)).await;
        self.env.cleanup().await;
    }
}

/// Starts the sandbox binary on `data` and waits for its admin API. Returns it, its base URL
/// and the connector's variables for each provider (bases and OAuth client), from
/// `/admin/config`.
async fn start_sandbox(
    env: &TestEnv,
    http: &reqwest::Client,
    data: &SandboxData,
) -> (ServiceProcess, String, Vec<(String, String)>) {
    let addr = format!("127.0.0.1:{}", free_port());
    let s = data.sizes;
    let mut vars = vec![
        ("SANDBOX_ADDR".to_string(), addr.clone()),
        ("SANDBOX_SEED".into(), data.seed.to_string()),
        ("SANDBOX_COMPANIES".into(), s.companies.to_string()),
        ("SANDBOX_CONTACTS".into(), s.contacts.to_string()),
        ("SANDBOX_DEALS".into(), s.deals.to_string()),
        ("SANDBOX_ORGS".into(), s.engaged_orgs.to_string()),
        ("SANDBOX_DAYS".into(), s.days.to_string()),
    ];
    if !data.hubspot_rate_limit {
        vars.push(("SANDBOX_HUBSPOT_RATE_LIMIT".into(), "off".into()));
    }
    let sandbox = spawn(env, "sandbox", &vars);
    let url = format!("http://{addr}");
    let config: Value = eventually(WAIT, "the sandbox's admin API", || async {
        let r = http.get(format!("{url}/admin/config")).send().await.ok()?;
        r.status().is_success().then_some(())?;
        r.json().await.ok()
    })
    .await;
    let mut providers = Vec::new();
    for (p, prefix) in [
        ("linkedin", "LINKEDIN"),
        ("hubspot", "HUBSPOT"),
        ("salesforce", "SALESFORCE"),
    ] {
        let c = &config["providers"][p];
        let field = |k: &str| {
            c[k].as_str()
                .unwrap_or_else(|| panic!("/admin/config has no providers.{p}.{k}: {c}"))
                .to_string()
        };
        providers.push((format!("{prefix}_API_BASE"), field("api_base")));
        providers.push((format!("{prefix}_AUTH_BASE"), field("auth_base")));
        providers.push((format!("{prefix}_CLIENT_ID"), field("client_id")));
        providers.push((format!("{prefix}_CLIENT_SECRET"), field("client_secret")));
    }
    (sandbox, url, providers)
}

/// A workspace on `plan` and an API key for it, made with the operators' CLI as the demo does.
async fn workspace_with_key(env: &TestEnv, plan: &str) -> (String, String) {
    let created = rp_cli(
        env,
        &[
            "--json",
            "workspaces",
            "create",
            "--name",
            "e2e",
            "--plan",
            plan,
        ],
    )
    .await;
    let workspace_id = created["workspace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("rp workspaces create printed no workspace_id: {created}"))
        .to_string();
    let issued = rp_cli(
        env,
        &[
            "--json",
            "keys",
            "create",
            "--workspace",
            &workspace_id,
            "--label",
            "e2e",
        ],
    )
    .await;
    let key = issued["key"]
        .as_str()
        .unwrap_or_else(|| panic!("rp keys create printed no key: {issued}"))
        .to_string();
    (workspace_id, key)
}

/// Runs the `rp` CLI against the test's database and stream; its one JSON line.
async fn rp_cli(env: &TestEnv, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(bin("rp"))
        .args(args)
        .envs(env.env_vars())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run rp {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rp {args:?}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("rp {args:?} printed no JSON: {stdout}"))
}

/// The services a [`System`] runs, each as its own process.
pub const SERVICES: [&str; 4] = ["connector", "matcher", "attribution", "notification"];

/// A service's process (none while killed) and the environment it was started with, to start it
/// again.
struct Service {
    name: &'static str,
    vars: Vec<(String, String)>,
    process: Option<ServiceProcess>,
}

/// Starts the service `name` with `common` then its own `vars`.
fn service(
    env: &TestEnv,
    common: &[(String, String)],
    name: &'static str,
    vars: &[(String, String)],
) -> Service {
    let vars: Vec<(String, String)> = common.iter().chain(vars).cloned().collect();
    Service {
        name,
        process: Some(spawn(env, name, &vars)),
        vars,
    }
}

/// Starts the workspace binary `name` against the test's infrastructure, with `vars`.
fn spawn(env: &TestEnv, name: &str, vars: &[(String, String)]) -> ServiceProcess {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ServiceProcess::spawn(&bin(name), env, &vars)
}

/// A channel to the gRPC server on `port`, once it accepts connections.
async fn grpc_channel(port: u16) -> Channel {
    eventually(WAIT, &format!("the gRPC server on port {port}"), || async {
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .ok()?
            .connect()
            .await
            .ok()
    })
    .await
}

pub use rp_platform::testing::free_port;

/// Every attribution model, in the order [`System::dashboards`] reads them.
pub const MODELS: [api::AttributionModel; 5] = [
    api::AttributionModel::FirstTouch,
    api::AttributionModel::LastTouch,
    api::AttributionModel::Linear,
    api::AttributionModel::TimeDecay,
    api::AttributionModel::UShaped,
];

/// The directory of the workspace binaries the running test was built with (`target/<profile>/`),
/// as `infra/run.sh` takes it in `BIN`.
pub fn bin_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("the test's own path, to find the binaries: {e}"));
    exe.parent()
        .and_then(|d| d.parent())
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// A workspace binary, built beside the test that runs (`target/<profile>/`).
fn bin(name: &str) -> String {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("the test's own path, to find the binaries: {e}"));
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}
