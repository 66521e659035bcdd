//! gRPC `rp.api.v1.Attribution`: the dashboard of a window and model, the deals behind a number,
//! and why one deal counts. Every call is authenticated with the workspace's API key, and reads
//! one snapshot through the workspace's current-version pointer, so a response never mixes two
//! syncs' numbers.

use crate::config::Settings;
use crate::domain::metrics::DealOutcome;
use crate::domain::{DealId, Metric, Model};
use crate::drilldown::{self, Explained};
use crate::store::{self, DealCursor};
use chrono::{DateTime, Utc};
use rp_platform::apikeys::{self, Caller};
use rp_platform::contracts::api::v1::{
    AccountMatch, CampaignCredit, CompanyEngagement, CurrencyAmount, Dashboard, DashboardDeal,
    DaysToDeal, DealAttribution, DealCounts, DealCredit, EngagementTouch, GetDashboardRequest,
    GetDealAttributionRequest, ListDashboardDealsRequest, ListDashboardDealsResponse, MetricTotal,
    attribution_server,
};
use rp_platform::contracts::timestamp;
use rp_platform::grpc;
use rp_platform::paging::{self, PageSize};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// ListDashboardDeals: 50 deals by default, at most 500.
pub const PAGE_SIZE: PageSize = PageSize::new(50, 500);

pub struct AttributionApi {
    pool: PgPool,
    settings: Arc<Settings>,
}

impl AttributionApi {
    pub fn new(pool: PgPool, settings: Arc<Settings>) -> Self {
        Self { pool, settings }
    }

    pub fn into_server(self) -> attribution_server::AttributionServer<Self> {
        attribution_server::AttributionServer::new(self)
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        apikeys::authenticate(&self.pool, req).await
    }

    /// The workspace's current version after checking `window_days` against its plan.
    async fn current(
        &self,
        conn: &mut PgConnection,
        ws: &str,
        window_days: u32,
    ) -> Result<(i32, Option<i64>), Status> {
        let (plan, current) = store::workspace(conn, ws)
            .await
            .map_err(db("reading the dashboard"))?
            .unwrap_or((None, None));
        let windows = self.settings.plans.windows(plan.as_deref());
        if !windows.contains(&window_days) {
            let list: Vec<String> = windows.iter().map(u32::to_string).collect();
            return Err(grpc::invalid_argument(
                "window_days",
                format!(
                    "must be one of the lookback windows of the workspace's plan: {} (got {window_days})",
                    list.join(", ")
                ),
            ));
        }
        Ok((i32::try_from(window_days).unwrap_or(i32::MAX), current))
    }
}

fn db(op: &'static str) -> impl Fn(sqlx::Error) -> Status {
    move |e| grpc::unavailable(op, &e)
}

fn no_sync_yet(ws: &str) -> Status {
    grpc::failed_precondition(format!(
        "no sync has completed for workspace {ws} yet: the dashboard's numbers appear when the first sync completes"
    ))
}

fn window_not_computed(window: i32) -> Status {
    grpc::failed_precondition(format!(
        "the numbers for the {window}-day window appear after the next completed sync (the plan changed since the last one)"
    ))
}

fn required_model(code: i32) -> Result<Model, Status> {
    Model::from_code(code).ok_or_else(|| {
        grpc::invalid_argument(
            "model",
            format!(
                "must be FIRST_TOUCH, LAST_TOUCH, LINEAR, TIME_DECAY or U_SHAPED (got {})",
                describe_enum(code)
            ),
        )
    })
}

/// UNSPECIFIED means "every model".
fn optional_model(code: i32) -> Result<Option<Model>, Status> {
    if code == 0 {
        Ok(None)
    } else {
        required_model(code).map(Some)
    }
}

fn metric_of(code: i32) -> Result<Metric, Status> {
    Metric::from_code(code).ok_or_else(|| {
        grpc::invalid_argument(
            "metric",
            format!(
                "must be INFLUENCED_PIPELINE, INFLUENCED_REVENUE, SOURCED_PIPELINE or SOURCED_REVENUE (got {})",
                describe_enum(code)
            ),
        )
    })
}

fn describe_enum(code: i32) -> String {
    if code == 0 {
        "UNSPECIFIED".into()
    } else {
        code.to_string()
    }
}

/// Where the next page starts, and which list it belongs to: the version it was read from (so
/// paging across a switch carries on in the same numbers while that version is kept), the
/// window, the metric, and the last deal returned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageToken {
    version: i64,
    window: i32,
    metric: i32,
    created_at: DateTime<Utc>,
    deal_id: String,
}

/// The listing's tag in its page tokens ([`rp_platform::paging`]).
const TOKEN_TAG: &str = "attribution-deals-1";

impl PageToken {
    fn encode(&self) -> String {
        paging::encode_token(
            TOKEN_TAG,
            &[
                &self.version.to_string(),
                &self.window.to_string(),
                &self.metric.to_string(),
                &self.created_at.timestamp_micros().to_string(),
                // Last: read to the end, so a deal id may contain anything.
                &self.deal_id,
            ],
        )
    }

    fn decode(token: &str) -> Result<Option<Self>, Status> {
        let Some(fields) = paging::decode_token(TOKEN_TAG, token, 5)? else {
            return Ok(None);
        };
        let [version, window, metric, micros, deal_id] = &fields[..] else {
            return Err(paging::bad_token());
        };
        if deal_id.is_empty() {
            return Err(paging::bad_token());
        }
        let bad = |_| paging::bad_token();
        let micros: i64 = micros.parse().map_err(bad)?;
        Ok(Some(Self {
            version: version.parse().map_err(bad)?,
            window: window.parse().map_err(bad)?,
            metric: metric.parse().map_err(bad)?,
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(paging::bad_token)?,
            deal_id: deal_id.clone(),
        }))
    }
}

/// A deal of an explanation as the API shows it, with `model`'s credit (every model's when
/// `None`).
fn to_deal(
    e: &Explained,
    i: usize,
    outcome: Option<&DealOutcome>,
    model: Option<Model>,
) -> Option<DashboardDeal> {
    let d = e.loaded.inputs.deals.get(i)?;
    let r = e.loaded.deals.get(i)?;
    let credits = outcome
        .map(|o| {
            o.credits
                .iter()
                .filter(|c| model.is_none_or(|m| m == c.model))
                .map(|c| DealCredit {
                    model: c.model.code(),
                    campaign_id: c.campaign.to_string(),
                    currency: d.currency.to_string(),
                    amount: c.amount.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(DashboardDeal {
        deal_id: d.id.to_string(),
        name: r.name.clone(),
        amount: d.amount.map(|a| a.to_string()).unwrap_or_default(),
        currency: d.currency.to_string(),
        stage: store::stage_code(d.stage),
        stage_id: r.stage_id.clone(),
        pipeline_id: r.pipeline_id.clone(),
        created_at: r.created_at.map(timestamp),
        closed_at: r.closed_at.map(timestamp),
        company_ids: d.companies.iter().map(|c| c.to_string()).collect(),
        metrics: outcome
            .map(|o| o.metrics.iter().map(|m| m.code()).collect())
            .unwrap_or_default(),
        first_engaged_on: outcome
            .and_then(|o| o.first_engaged_on)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        days_to_deal: outcome
            .and_then(|o| o.days_to_deal)
            .and_then(|d| i32::try_from(d).ok()),
        touches: outcome.map_or(0, |o| u32::try_from(o.touches.len()).unwrap_or(u32::MAX)),
        credits,
    })
}

fn u32_of(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn dashboard_response(
    ws: &str,
    window_days: u32,
    model: Model,
    version: store::VersionRow,
    rows: store::DashboardRows,
) -> Dashboard {
    let total = |metric: Metric| {
        let t = rows
            .totals
            .iter()
            .find(|t| i32::from(t.metric) == metric.code());
        MetricTotal {
            metric: metric.code(),
            deals: t.map_or(0, |t| u32_of(t.deals)),
            deals_without_amount: t.map_or(0, |t| u32_of(t.deals_without_amount)),
            amounts: rows
                .amounts
                .iter()
                .filter(|a| i32::from(a.metric) == metric.code())
                .map(|a| CurrencyAmount {
                    currency: a.currency.clone(),
                    amount: a.amount.clone(),
                    deals: u32_of(a.deals),
                })
                .collect(),
        }
    };
    let w = &rows.window;
    let engaged = u32_of(w.engaged_companies);
    let matched = u32_of(w.matched_companies);
    Dashboard {
        workspace_id: ws.to_string(),
        window_days,
        model: model.code(),
        as_of: Some(timestamp(version.as_of)),
        sync_run_id: version.sync_run_id,
        version: u64::try_from(version.version).unwrap_or(0),
        companies: Some(CompanyEngagement {
            engaged_companies: engaged,
            matched_companies: matched,
            matched_accounts: u32_of(w.matched_accounts),
            match_rate: if engaged == 0 {
                0.0
            } else {
                f64::from(matched) / f64::from(engaged)
            },
        }),
        deal_counts: Some(DealCounts {
            total: u32_of(w.deals_total),
            open: u32_of(w.deals_open),
            won: u32_of(w.deals_won),
            lost: u32_of(w.deals_lost),
            unclassified: u32_of(w.deals_unclassified),
            influenced_lost: u32_of(w.deals_influenced_lost),
        }),
        influenced_pipeline: Some(total(Metric::InfluencedPipeline)),
        influenced_revenue: Some(total(Metric::InfluencedRevenue)),
        sourced_pipeline: Some(total(Metric::SourcedPipeline)),
        sourced_revenue: Some(total(Metric::SourcedRevenue)),
        days_to_deal: Some(DaysToDeal {
            deals: u32_of(w.days_to_deal_deals),
            average: w.days_to_deal_average,
            median: w.days_to_deal_median,
        }),
        campaign_credits: rows
            .credits
            .iter()
            .map(|c| CampaignCredit {
                campaign_id: c.campaign_id.clone(),
                metric: i32::from(c.metric),
                currency: c.currency.clone(),
                amount: c.amount.clone(),
                deals: u32_of(c.deals),
            })
            .collect(),
        half_life_days: u32_of(version.half_life_days),
        windows: version.windows.into_iter().map(u32_of).collect(),
    }
}

#[tonic::async_trait]
impl attribution_server::Attribution for AttributionApi {
    async fn get_dashboard(
        &self,
        request: Request<GetDashboardRequest>,
    ) -> Result<Response<Dashboard>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let ws = caller.authorize(&r.workspace_id)?.to_string();
        let span = tracing::info_span!("attribution.get_dashboard", workspace_id = %ws, window_days = r.window_days);
        async move {
            let model = required_model(r.model)?;
            let mut tx = store::read_snapshot(&self.pool)
                .await
                .map_err(db("reading the dashboard"))?;
            let (window, current) = self.current(&mut tx, &ws, r.window_days).await?;
            let current = current.ok_or_else(|| no_sync_yet(&ws))?;
            let version = store::version(&mut tx, &ws, current)
                .await
                .map_err(db("reading the dashboard"))?
                .ok_or_else(|| no_sync_yet(&ws))?;
            let rows = store::dashboard(&mut tx, &ws, current, window, model.code() as i16)
                .await
                .map_err(db("reading the dashboard"))?
                .ok_or_else(|| window_not_computed(window))?;
            Ok(Response::new(dashboard_response(
                &ws,
                r.window_days,
                model,
                version,
                rows,
            )))
        }
        .instrument(span)
        .await
    }

    async fn list_dashboard_deals(
        &self,
        request: Request<ListDashboardDealsRequest>,
    ) -> Result<Response<ListDashboardDealsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let ws = caller.authorize(&r.workspace_id)?.to_string();
        let span = tracing::info_span!("attribution.list_dashboard_deals", workspace_id = %ws, window_days = r.window_days);
        async move {
            let metric = metric_of(r.metric)?;
            let model = optional_model(r.model)?;
            let limit = PAGE_SIZE.parse(r.page_size)?;
            let token = PageToken::decode(&r.page_token)?;
            let mut tx = store::read_snapshot(&self.pool)
                .await
                .map_err(db("listing deals"))?;
            let (window, current) = self.current(&mut tx, &ws, r.window_days).await?;
            let current = current.ok_or_else(|| no_sync_yet(&ws))?;
            let version_id = match &token {
                None => current,
                Some(t) if t.window != window || t.metric != metric.code() => {
                    return Err(grpc::invalid_argument(
                        "page_token",
                        "was issued for another window or metric: keep window_days and metric as they were for the first page",
                    ));
                }
                Some(t) => t.version,
            };
            let version = store::version(&mut tx, &ws, version_id)
                .await
                .map_err(db("listing deals"))?
                .ok_or_else(|| {
                    grpc::invalid_argument(
                        "page_token",
                        "has expired: the dashboard has been updated twice since; start again without a page token",
                    )
                })?;
            if !version.windows.contains(&window) {
                return Err(window_not_computed(window));
            }
            let after: Option<DealCursor> = token.map(|t| (t.created_at, t.deal_id));
            let (rows, total) = store::list_deals(
                &mut tx,
                &ws,
                version_id,
                window,
                metric,
                after.as_ref(),
                limit + 1,
            )
            .await
            .map_err(db("listing deals"))?;
            let more = rows.len() as i64 > limit;
            let page: Vec<DealCursor> = rows.into_iter().take(limit as usize).collect();
            let ids: Vec<String> = page.iter().map(|(_, id)| id.clone()).collect();
            let explained = drilldown::explain(&mut tx, &ws, &version, r.window_days, &ids)
                .await
                .map_err(db("listing deals"))?;
            let deals = ids
                .iter()
                .filter_map(|id| {
                    let (i, outcome) = explained.deal(id)?;
                    to_deal(&explained, i, outcome, model)
                })
                .collect();
            let next_page_token = match page.last() {
                Some((created_at, deal_id)) if more => PageToken {
                    version: version_id,
                    window,
                    metric: metric.code(),
                    created_at: *created_at,
                    deal_id: deal_id.clone(),
                }
                .encode(),
                _ => String::new(),
            };
            Ok(Response::new(ListDashboardDealsResponse {
                deals,
                next_page_token,
                as_of: Some(timestamp(version.as_of)),
                sync_run_id: version.sync_run_id,
                total_deals: u32::try_from(total).unwrap_or(u32::MAX),
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_deal_attribution(
        &self,
        request: Request<GetDealAttributionRequest>,
    ) -> Result<Response<DealAttribution>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let ws = caller.authorize(&r.workspace_id)?.to_string();
        let span = tracing::info_span!("attribution.get_deal_attribution", workspace_id = %ws, window_days = r.window_days);
        async move {
            let deal_id =
                DealId::parse(&r.deal_id).map_err(|e| grpc::invalid_argument("deal_id", e))?;
            let mut tx = store::read_snapshot(&self.pool)
                .await
                .map_err(db("reading the deal"))?;
            let (window, current) = self.current(&mut tx, &ws, r.window_days).await?;
            let current = current.ok_or_else(|| no_sync_yet(&ws))?;
            let version = store::version(&mut tx, &ws, current)
                .await
                .map_err(db("reading the deal"))?
                .ok_or_else(|| no_sync_yet(&ws))?;
            if !version.windows.contains(&window) {
                return Err(window_not_computed(window));
            }
            let ids = [deal_id.to_string()];
            let explained = drilldown::explain(&mut tx, &ws, &version, r.window_days, &ids)
                .await
                .map_err(db("reading the deal"))?;
            let not_found = || {
                grpc::not_found(format!(
                    "no deal {deal_id} in the workspace's dashboard as of {} (deleted, or not pulled from the CRM yet)",
                    version.as_of.format("%Y-%m-%d %H:%M UTC")
                ))
            };
            let (i, outcome) = explained.deal(deal_id.as_str()).ok_or_else(not_found)?;
            let deal = to_deal(&explained, i, outcome, None).ok_or_else(not_found)?;
            let rows = &explained.loaded.inputs.engagement;
            let touches: Vec<EngagementTouch> = outcome
                .map(|o| {
                    o.touches
                        .iter()
                        .filter_map(|t| {
                            let row = rows.get(t.row)?;
                            Some(EngagementTouch {
                                organization_id: row.org.to_string(),
                                organization_name: explained
                                    .org_names
                                    .get(row.org.as_str())
                                    .cloned()
                                    .unwrap_or_default(),
                                campaign_id: row.campaign.to_string(),
                                date: row.day.format("%Y-%m-%d").to_string(),
                                impressions: row.impressions,
                                clicks: row.clicks,
                                engagements: row.engagements,
                                crm_company_id: t.company.to_string(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            // The matches the touches reach the deal through, each once.
            let mut pairs = std::collections::BTreeSet::new();
            for o in outcome.iter() {
                for t in &o.touches {
                    if let Some(row) = rows.get(t.row) {
                        pairs.insert((row.org.clone(), t.company.clone()));
                    }
                }
            }
            let matches = pairs
                .into_iter()
                .map(|(org, company)| {
                    let m = explained.loaded.matches.get(&(org.clone(), company.clone()));
                    AccountMatch {
                        linkedin_name: explained
                            .org_names
                            .get(org.as_str())
                            .cloned()
                            .unwrap_or_default(),
                        crm_name: explained
                            .company_names
                            .get(company.as_str())
                            .cloned()
                            .unwrap_or_default(),
                        linkedin_id: org.to_string(),
                        crm_id: company.to_string(),
                        method: m.map_or(0, |m| m.method),
                        score: m.map_or(0.0, |m| m.score),
                        reason: m.map(|m| m.reason.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            Ok(Response::new(DealAttribution {
                influenced: !touches.is_empty(),
                touches,
                matches,
                deal: Some(deal),
                window_days: r.window_days,
                as_of: Some(timestamp(version.as_of)),
                sync_run_id: version.sync_run_id,
            }))
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused_naming_the_field() {
        let t = PageToken {
            version: 7,
            window: 90,
            metric: 2,
            created_at: DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap(),
            deal_id: "deal\u{1f}with separator".into(),
        };
        assert_eq!(PageToken::decode(&t.encode()).unwrap(), Some(t));
        assert_eq!(PageToken::decode("").unwrap(), None);
        for bad in [
            "zz!",
            "00",
            &paging::encode_token(TOKEN_TAG, &["x"]),
            &paging::encode_token("p2", &["1", "2", "3", "4", "d"]),
            &paging::encode_token(TOKEN_TAG, &["1", "2", "3", "4", ""]),
            &paging::encode_token(TOKEN_TAG, &["v", "2", "3", "4", "d"]),
        ] {
            let e = PageToken::decode(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().starts_with("page_token: "), "{}", e.message());
        }
    }

    #[test]
    fn models_metrics_and_page_sizes_are_checked_naming_the_field() {
        assert_eq!(required_model(4).unwrap(), Model::TimeDecay);
        assert_eq!(optional_model(0).unwrap(), None);
        let e = required_model(0).unwrap_err();
        assert!(e.message().starts_with("model: "));
        assert!(e.message().contains("UNSPECIFIED"));
        assert!(optional_model(9).unwrap_err().message().contains("got 9"));
        assert!(metric_of(0).unwrap_err().message().starts_with("metric: "));
        assert_eq!(metric_of(3).unwrap(), Metric::SourcedPipeline);
        assert_eq!(PAGE_SIZE.parse(0).unwrap(), 50);
        assert_eq!(PAGE_SIZE.parse(500).unwrap(), 500);
        assert!(
            PAGE_SIZE
                .parse(501)
                .unwrap_err()
                .message()
                .starts_with("page_size: ")
        );
        assert!(PAGE_SIZE.parse(-1).is_err());
    }
}
