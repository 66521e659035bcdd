//! A workspace against real PostgreSQL and NATS, with the attribution consumer, the relay and
//! the gRPC server running in-process (port 0), fed by appending to the log exactly what the
//! connector (RecordsPulled on `records-<run>`) and the matcher (AccountsMatched on
//! `syncrun-<run>`, or on `matches-<ws>` for a manual decision) append.
#![allow(dead_code)]

use attribution::api::AttributionApi;
use attribution::config::Settings;
use attribution::domain::HalfLife;
use attribution::handlers::{Attribution, CONSUMER, EVENT_TYPES};
use chrono::{DateTime, Utc};
use rp_platform::apikeys;
use rp_platform::consumer::{self, ConsumerConfig, Ordering};
use rp_platform::contracts::api::v1::{
    AttributionModel, Dashboard, DashboardMetric, DealAttribution, GetDashboardRequest,
    GetDealAttributionRequest, ListDashboardDealsRequest, ListDashboardDealsResponse,
    attribution_client::AttributionClient,
};
use rp_platform::contracts::events::v1::{
    AccountsMatched, AttributionUpdated, CrmCompany, CrmDeal, CrmPipeline, CrmPipelineStage,
    EngagementRow, MatchChange, MatchChangeKind, MatchMethod, ObjectType, Organization,
    RecordsPulled, StageKind, WorkspaceCreated, envelope::Event,
};
use rp_platform::contracts::timestamp;
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::ids::WorkspaceId;
use rp_platform::plans::{DEFAULT_PLANS, Plans};
use rp_platform::relay::Relay;
use rp_platform::testing::{TestEnv, eventually};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

pub struct World {
    pub env: TestEnv,
    pub ws: String,
    pub key: String,
    pub client: AttributionClient<Channel>,
    pub settings: Arc<Settings>,
    cancel: CancellationToken,
    consumer_cancel: CancellationToken,
    consumer: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl World {
    /// A workspace on `plan` (default RP_PLANS: starter has 30 and 90 days) with an API key.
    pub async fn new(plan: &str) -> Self {
        let env = TestEnv::new().await;
        attribution::store::migrate(&env.pool).await.unwrap();
        let settings = Arc::new(Settings {
            plans: Plans::parse(DEFAULT_PLANS).unwrap(),
            half_life: HalfLife::days(7).unwrap(),
        });
        let ws = Uuid::new_v4();
        env.store
            .append(
                &format!("workspace-{ws}"),
                ExpectedVersion::NoStream,
                vec![NewEvent::new(
                    ws.to_string(),
                    Event::WorkspaceCreated(WorkspaceCreated {
                        name: "Acme".into(),
                        plan: plan.into(),
                    }),
                )],
            )
            .await
            .unwrap();
        let key = apikeys::issue(&env.pool, WorkspaceId::new(ws), "test")
            .await
            .unwrap()
            .plaintext;
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let relay = Relay::new(env.store.clone(), env.js.clone(), env.bus.clone());
        let c = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let _ = relay.run(c).await;
        }));
        let serving = rp_platform::grpc::serve(
            "127.0.0.1:0".parse().unwrap(),
            cancel.clone(),
            rp_platform::grpc::Services::new()
                .service(AttributionApi::new(env.pool.clone(), settings.clone()).into_server()),
        )
        .await
        .unwrap();
        let client = AttributionClient::connect(format!("http://{}", serving.local_addr()))
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = serving.wait().await;
        }));
        let mut w = Self {
            env,
            ws: ws.to_string(),
            key,
            client,
            settings,
            cancel,
            consumer_cancel: CancellationToken::new(),
            consumer: None,
            tasks,
        };
        w.start_consumer();
        w
    }

    pub fn start_consumer(&mut self) {
        self.consumer_cancel = CancellationToken::new();
        let (js, bus, pool, c, settings) = (
            self.env.js.clone(),
            self.env.bus.clone(),
            self.env.pool.clone(),
            self.consumer_cancel.clone(),
            self.settings.clone(),
        );
        self.consumer = Some(tokio::spawn(async move {
            let cfg =
                ConsumerConfig::new(CONSUMER, Ordering::PerWorkspace).event_types(EVENT_TYPES);
            let _ =
                consumer::run(js, bus, pool, cfg, Arc::new(Attribution::new(settings)), c).await;
        }));
    }

    /// Stops the consumer and waits until it has finished its in-flight event.
    pub async fn stop_consumer(&mut self) {
        self.consumer_cancel.cancel();
        if let Some(t) = self.consumer.take() {
            let _ = t.await;
        }
    }

    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        with_key(msg, &self.key)
    }

    pub async fn append(&self, stream: &str, run: &str, when: DateTime<Utc>, e: Event) -> Uuid {
        let mut ev = NewEvent::new(self.ws.clone(), e).correlation(run.to_string());
        ev.occurred_at = when;
        let id = ev.event_id;
        self.env
            .store
            .append(stream, ExpectedVersion::Any, vec![ev])
            .await
            .unwrap();
        id
    }

    async fn records(&self, run: &str, kind: ObjectType, r: RecordsPulled) -> Uuid {
        let r = RecordsPulled {
            sync_run_id: run.into(),
            object_type: kind as i32,
            ..r
        };
        self.append(
            &format!("records-{run}"),
            run,
            Utc::now(),
            Event::RecordsPulled(r),
        )
        .await
    }

    pub async fn engagement(&self, run: &str, rows: Vec<EngagementRow>) -> Uuid {
        let r = RecordsPulled {
            engagement: rows,
            ..Default::default()
        };
        self.records(run, ObjectType::LinkedinEngagement, r).await
    }

    pub async fn organizations(&self, run: &str, orgs: Vec<Organization>) -> Uuid {
        let r = RecordsPulled {
            organizations: orgs,
            ..Default::default()
        };
        self.records(run, ObjectType::LinkedinOrganization, r).await
    }

    pub async fn companies(&self, run: &str, companies: Vec<CrmCompany>) -> Uuid {
        let r = RecordsPulled {
            companies,
            ..Default::default()
        };
        self.records(run, ObjectType::CrmCompany, r).await
    }

    pub async fn deals(&self, run: &str, deals: Vec<CrmDeal>) -> Uuid {
        let r = RecordsPulled {
            deals,
            ..Default::default()
        };
        self.records(run, ObjectType::CrmDeal, r).await
    }

    pub async fn pipelines(&self, run: &str, pipelines: Vec<CrmPipeline>) -> Uuid {
        let r = RecordsPulled {
            pipelines,
            ..Default::default()
        };
        self.records(run, ObjectType::CrmPipeline, r).await
    }

    /// One part of the matcher's result for `run` (as the matcher appends it).
    pub async fn matched_part(
        &self,
        run: &str,
        changes: Vec<MatchChange>,
        remaining_parts: u32,
        when: DateTime<Utc>,
    ) -> Uuid {
        self.append(
            &format!("syncrun-{run}"),
            run,
            when,
            Event::AccountsMatched(AccountsMatched {
                sync_run_id: run.into(),
                changes,
                remaining_parts,
                ..Default::default()
            }),
        )
        .await
    }

    /// A manual decision's result: AccountsMatched without a run, on `matches-<ws>`.
    pub async fn manual_match(&self, changes: Vec<MatchChange>) -> Uuid {
        self.append(
            &format!("matches-{}", self.ws),
            "",
            Utc::now(),
            Event::AccountsMatched(AccountsMatched {
                changes,
                ..Default::default()
            }),
        )
        .await
    }

    /// Appends the last part of the run's matching result, completed at `when`, and waits for
    /// the attribution step's AttributionUpdated.
    pub async fn complete(
        &self,
        run: &str,
        changes: Vec<MatchChange>,
        when: DateTime<Utc>,
    ) -> AttributionUpdated {
        self.matched_part(run, changes, 0, when).await;
        self.attribution_updated(run).await
    }

    pub async fn attribution_updated(&self, run: &str) -> AttributionUpdated {
        let stream = format!("syncrun-{run}");
        eventually(WAIT, "AttributionUpdated", || async {
            let events = self.env.store.read_stream(&stream, 1, 100).await.ok()?;
            events.iter().find_map(|e| match e.event() {
                Some(Event::AttributionUpdated(u)) => Some(u.clone()),
                _ => None,
            })
        })
        .await
    }

    /// Waits until the attribution consumer has applied the event.
    pub async fn processed(&self, event_id: Uuid) {
        eventually(WAIT, "the event to be handled", || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2",
            )
            .bind(CONSUMER)
            .bind(event_id)
            .fetch_one(&self.env.pool)
            .await
            .ok()?;
            (n == 1).then_some(())
        })
        .await
    }

    pub async fn try_dashboard(
        &self,
        window_days: u32,
        model: AttributionModel,
    ) -> Result<Dashboard, tonic::Status> {
        self.client
            .clone()
            .get_dashboard(self.req(GetDashboardRequest {
                workspace_id: self.ws.clone(),
                window_days,
                model: model as i32,
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn dashboard(&self, window_days: u32, model: AttributionModel) -> Dashboard {
        self.try_dashboard(window_days, model)
            .await
            .unwrap_or_else(|s| panic!("GetDashboard({window_days}, {model:?}): {s:?}"))
    }

    pub async fn try_deals(
        &self,
        window_days: u32,
        metric: DashboardMetric,
        page_size: i32,
        page_token: &str,
    ) -> Result<ListDashboardDealsResponse, tonic::Status> {
        self.client
            .clone()
            .list_dashboard_deals(self.req(ListDashboardDealsRequest {
                workspace_id: self.ws.clone(),
                window_days,
                metric: metric as i32,
                page_size,
                page_token: page_token.into(),
                model: 0,
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every deal behind a number (all pages), in the API's order.
    pub async fn all_deals(&self, window_days: u32, metric: DashboardMetric) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .try_deals(window_days, metric, 2, &token)
                .await
                .unwrap_or_else(|s| panic!("ListDashboardDeals: {s:?}"));
            out.extend(page.deals.into_iter().map(|d| d.deal_id));
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    pub async fn try_deal(
        &self,
        window_days: u32,
        deal_id: &str,
    ) -> Result<DealAttribution, tonic::Status> {
        self.client
            .clone()
            .get_deal_attribution(self.req(GetDealAttributionRequest {
                workspace_id: self.ws.clone(),
                window_days,
                deal_id: deal_id.into(),
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn stop(mut self) {
        self.stop_consumer().await;
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.env.cleanup().await;
    }
}

pub fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = format!("Bearer {key}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

// ---- Records as the providers give them ------------------------------------------------------

pub fn row(org: &str, campaign: &str, date: &str) -> EngagementRow {
    EngagementRow {
        organization_id: org.into(),
        campaign_id: campaign.into(),
        date: date.into(),
        impressions: 120,
        clicks: 4,
        engagements: 9,
        ad_account_id: "acct-1".into(),
    }
}

pub fn org(id: &str, name: &str) -> Organization {
    Organization {
        id: id.into(),
        name: name.into(),
        ..Default::default()
    }
}

pub fn company(id: &str, name: &str) -> CrmCompany {
    CrmCompany {
        id: id.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// A deal in pipeline `p1`; `stage` is "open", "won" or "lost" (stage ids `s-open`, ...).
/// Times are days at 09:00 UTC.
pub fn deal(
    id: &str,
    companies: &[&str],
    stage: &str,
    amount: &str,
    currency: &str,
    created: &str,
    closed: Option<&str>,
) -> CrmDeal {
    let t = |d: &str| Some(timestamp(at(&format!("{d}T09:00:00Z"))));
    CrmDeal {
        id: id.into(),
        name: format!("Deal {id}"),
        amount: amount.into(),
        currency: currency.into(),
        stage_id: format!("s-{stage}"),
        pipeline_id: "p1".into(),
        created_at: t(created),
        closed_at: closed.and_then(t),
        company_ids: companies.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

pub fn deleted(id: &str) -> CrmDeal {
    CrmDeal {
        id: id.into(),
        deleted: true,
        ..Default::default()
    }
}

pub fn pipeline() -> CrmPipeline {
    let stage = |id: &str, kind: StageKind, order: i32| CrmPipelineStage {
        id: id.into(),
        label: id.into(),
        display_order: order,
        kind: kind as i32,
        probability: 0.0,
    };
    CrmPipeline {
        id: "p1".into(),
        label: "Sales".into(),
        stages: vec![
            stage("s-open", StageKind::Open, 1),
            stage("s-won", StageKind::Won, 2),
            stage("s-lost", StageKind::Lost, 3),
        ],
    }
}

pub fn new_match(org: &str, company: &str) -> MatchChange {
    change(MatchChangeKind::New, org, company)
}

pub fn change(kind: MatchChangeKind, org: &str, company: &str) -> MatchChange {
    MatchChange {
        kind: kind as i32,
        linkedin_id: org.into(),
        crm_id: company.into(),
        method: MatchMethod::Domain as i32,
        score: 1.0,
        reason: format!("{org} and {company} share the domain {company}.example"),
    }
}

/// "metric currency campaign amount deals" for each campaign credit of a dashboard, in the
/// API's order.
pub fn credit_lines(d: &Dashboard) -> Vec<String> {
    let metric = |m: i32| match DashboardMetric::try_from(m) {
        Ok(DashboardMetric::InfluencedPipeline) => "IP",
        Ok(DashboardMetric::InfluencedRevenue) => "IR",
        Ok(DashboardMetric::SourcedPipeline) => "SP",
        Ok(DashboardMetric::SourcedRevenue) => "SR",
        _ => "?",
    };
    d.campaign_credits
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {} {}",
                metric(c.metric),
                c.currency,
                c.campaign_id,
                c.amount,
                c.deals
            )
        })
        .collect()
}

/// "currency amount deals" per currency of a metric.
pub fn amounts(t: &Option<rp_platform::contracts::api::v1::MetricTotal>) -> Vec<String> {
    t.as_ref()
        .map(|t| {
            t.amounts
                .iter()
                .map(|a| format!("{} {} {}", a.currency, a.amount, a.deals))
                .collect()
        })
        .unwrap_or_default()
}

// ---- The Acme workspace of the hand-computed tests -------------------------------------------

/// The as-of time of the Acme sync: the AccountsMatched that completes it.
pub const ACME_AS_OF: &str = "2026-06-30T12:00:00Z";

/// Pulls the Acme workspace's records for `run` (see tests/dashboard.rs for the numbers worked
/// out by hand), and returns the matches its matching step reports.
pub async fn acme_records(w: &World, run: &str) -> Vec<MatchChange> {
    w.engagement(
        run,
        vec![
            row("o1", "k1", "2026-04-14"),
            row("o1", "k1", "2026-06-02"),
            row("o1", "k2", "2026-06-16"),
            row("o1", "k3", "2026-06-23"),
            row("o2", "k2", "2026-04-21"),
            row("o2", "k1", "2026-06-09"),
            row("o3", "k1", "2026-06-28"),
            row("o4", "k2", "2026-06-05"),
        ],
    )
    .await;
    w.engagement(
        run,
        vec![
            row("o5", "k3", "2026-05-01"),
            row("o6", "k1", "2026-03-01"),
            row("o6", "k2", "2026-06-12"),
        ],
    )
    .await;
    w.organizations(
        run,
        vec![
            org("o1", "Acme Corp"),
            org("o2", "Globex"),
            org("o3", "Initech"),
            org("o4", "Umbrella"),
            org("o5", "Hooli"),
            org("o6", "Stark"),
        ],
    )
    .await;
    w.companies(
        run,
        vec![
            company("c1", "Acme Corporation"),
            company("c2", "Globex Inc"),
            company("c3", "Initech LLC"),
            company("c4", "Umbrella plc"),
            company("c5", "Hooli"),
            company("c6", "Stark Industries"),
        ],
    )
    .await;
    w.pipelines(run, vec![pipeline()]).await;
    w.deals(
        run,
        vec![
            deal("D1", &["c1"], "open", "10000.00", "USD", "2026-06-10", None),
            deal(
                "D2",
                &["c2"],
                "won",
                "5000.00",
                "EUR",
                "2026-05-01",
                Some("2026-06-05"),
            ),
            deal(
                "D3",
                &["c4"],
                "lost",
                "7000",
                "USD",
                "2026-06-01",
                Some("2026-06-20"),
            ),
            deal("D4", &["c3"], "open", "3000", "USD", "2026-06-10", None),
            deal(
                "D5",
                &["c1", "c2"],
                "open",
                "1200.00",
                "USD",
                "2026-06-25",
                None,
            ),
            deal("D6", &["c2"], "open", "2500.50", "EUR", "2026-06-28", None),
            deal("D7", &["c1"], "open", "999", "USD", "2026-06-11", None),
        ],
    )
    .await;
    w.deals(
        run,
        vec![
            deal(
                "D8",
                &["c5"],
                "won",
                "4000",
                "USD",
                "2026-05-10",
                Some("2026-05-20"),
            ),
            deal("D9", &["c6"], "open", "600", "USD", "2026-06-10", None),
            deal(
                "D10",
                &["c1"],
                "won",
                "2000.00",
                "USD",
                "2026-06-02",
                Some("2026-06-16"),
            ),
            // D7 is deleted in the CRM: a later batch says so.
            deleted("D7"),
        ],
    )
    .await;
    vec![
        new_match("o1", "c1"),
        new_match("o2", "c2"),
        new_match("o4", "c4"),
        new_match("o5", "c5"),
        new_match("o6", "c6"),
    ]
}
