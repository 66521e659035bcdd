//! LinkedIn Marketing API (versioned `/rest`): ad accounts, ad analytics, organizations.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::Provider;
use crate::data::{Engagement, Org, World};
use crate::errors::linkedin_bad_request as bad;
use crate::restli::{self, RValue};
use crate::state::AppState;
use crate::util::percent_decode;

type S = State<(AppState, Provider)>;

/// Raw query pairs: keys decoded, values left encoded (Rest.li needs the structure first).
fn raw_pairs(q: &str) -> Vec<(String, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k).unwrap_or_default(), v)
        })
        .collect()
}

fn raw_get<'a>(pairs: &'a [(String, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn decoded(pairs: &[(String, &str)], key: &str) -> Option<String> {
    raw_get(pairs, key).and_then(percent_decode)
}

pub async fn ad_accounts(State((s, _)): S, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let pairs = raw_pairs(&q);
    if decoded(&pairs, "q").as_deref() != Some("search") {
        return bad("Query parameter 'q' must be 'search'");
    }
    let mut statuses: Option<Vec<String>> = None;
    if let Some(raw) = raw_get(&pairs, "search") {
        let v = match restli::parse(raw) {
            Ok(v) => v,
            Err(e) => return bad(&format!("Invalid search parameter: {e}")),
        };
        if let Some(vals) = v
            .get("status")
            .and_then(|s| s.get("values"))
            .and_then(RValue::list)
        {
            statuses = Some(
                vals.iter()
                    .filter_map(|x| x.atom().map(String::from))
                    .collect(),
            );
        }
    }
    let start = match decoded(&pairs, "start").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("Invalid value for param 'start'"),
    };
    let count = match decoded(&pairs, "count").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= 1000 => n,
        _ => return bad("Invalid value for param 'count'"),
    };
    let hidden = s.controls(Provider::Linkedin).ad_accounts_hidden;
    let w = s.world();
    let all: Vec<&crate::data::AdAccount> = w
        .ad_accounts
        .iter()
        .filter(|_| !hidden)
        .filter(|a| statuses.as_ref().is_none_or(|st| st.contains(&a.status)))
        .collect();
    let elements: Vec<Value> = all
        .iter()
        .skip(start)
        .take(count)
        .map(|a| {
            json!({
                "id": a.id,
                "name": a.name,
                "currency": a.currency,
                "status": a.status,
                "type": "BUSINESS",
                "reference": "urn:li:organization:1000001",
                "test": false,
                "servingStatuses": ["RUNNABLE"],
            })
        })
        .collect();
    Json(json!({
        "elements": elements,
        "paging": {"start": start, "count": count, "total": all.len(), "links": []},
    }))
    .into_response()
}

fn date_of(v: &RValue) -> Option<NaiveDate> {
    let n = |k: &str| v.get(k)?.atom()?.parse::<u32>().ok();
    NaiveDate::from_ymd_opt(n("year")? as i32, n("month")?, n("day")?)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pivot {
    MemberCompany,
    Campaign,
    Account,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Granularity {
    Daily,
    Monthly,
    All,
}

const METRICS: [&str; 3] = ["impressions", "clicks", "totalEngagements"];

/// `GET /rest/adAnalytics?q=statistics&pivots=List(..)&timeGranularity=..&dateRange=(..)
/// &accounts=List(..)&fields=..`. No paging; at most `linkedin_analytics_cap` elements.
pub async fn ad_analytics(State((s, _)): S, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let pairs = raw_pairs(&q);
    let finder = decoded(&pairs, "q").unwrap_or_default();
    let pivot_names: Vec<String> = match finder.as_str() {
        "statistics" => {
            let Some(raw) = raw_get(&pairs, "pivots") else {
                return bad("Query parameter 'pivots' is required for q=statistics");
            };
            match restli::parse(raw) {
                Ok(RValue::List(items)) => items
                    .iter()
                    .filter_map(|x| x.atom().map(String::from))
                    .collect(),
                _ => return bad("Invalid value for param 'pivots': expected List(..)"),
            }
        }
        "analytics" => match decoded(&pairs, "pivot") {
            Some(p) => vec![p],
            None => return bad("Query parameter 'pivot' is required for q=analytics"),
        },
        _ => return bad("Query parameter 'q' must be 'statistics' or 'analytics'"),
    };
    if pivot_names.is_empty() || pivot_names.len() > 3 {
        return bad("Between 1 and 3 pivots are allowed");
    }
    let mut pivots = Vec::new();
    for p in &pivot_names {
        pivots.push(match p.as_str() {
            "MEMBER_COMPANY" => Pivot::MemberCompany,
            "CAMPAIGN" => Pivot::Campaign,
            "ACCOUNT" => Pivot::Account,
            other => {
                return bad(&format!(
                    "Pivot {other} is not supported by the sandbox (supported: MEMBER_COMPANY, CAMPAIGN, ACCOUNT)"
                ));
            }
        });
    }
    let granularity = match decoded(&pairs, "timeGranularity").as_deref() {
        Some("DAILY") => Granularity::Daily,
        Some("MONTHLY") => Granularity::Monthly,
        Some("ALL") => Granularity::All,
        Some(other) => {
            return bad(&format!(
                "Invalid value for param 'timeGranularity': {other}"
            ));
        }
        None => return bad("Query parameter 'timeGranularity' is required"),
    };
    let Some(raw_range) = raw_get(&pairs, "dateRange") else {
        return bad("Query parameter 'dateRange' is required");
    };
    let range = match restli::parse(raw_range) {
        Ok(v) => v,
        Err(e) => return bad(&format!("Invalid value for param 'dateRange': {e}")),
    };
    let Some(start) = range.get("start").and_then(date_of) else {
        return bad("dateRange.start must be (year:YYYY,month:M,day:D)");
    };
    let today = s.world().anchor;
    let end = match range.get("end") {
        None => today,
        Some(v) => match date_of(v) {
            Some(d) => d,
            None => return bad("dateRange.end must be (year:YYYY,month:M,day:D)"),
        },
    };
    if end < start {
        return bad("dateRange.end must not be before dateRange.start");
    }
    let urn_list = |key: &str, prefix: &str| -> Result<Option<Vec<u64>>, String> {
        let Some(raw) = raw_get(&pairs, key) else {
            return Ok(None);
        };
        let Ok(RValue::List(items)) = restli::parse(raw) else {
            return Err(format!(
                "Invalid value for param '{key}': expected List(..)"
            ));
        };
        items
            .iter()
            .map(|x| {
                x.atom()
                    .and_then(|a| a.strip_prefix(prefix))
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("Invalid URN in '{key}': expected {prefix}<id>"))
            })
            .collect::<Result<Vec<u64>, String>>()
            .map(Some)
    };
    let accounts = match urn_list("accounts", "urn:li:sponsoredAccount:") {
        Ok(v) => v,
        Err(e) => return bad(&e),
    };
    let campaigns = match urn_list("campaigns", "urn:li:sponsoredCampaign:") {
        Ok(v) => v,
        Err(e) => return bad(&e),
    };
    if accounts.is_none() && campaigns.is_none() {
        return bad("At least one facet (accounts or campaigns) is required");
    }
    let fields: Vec<String> = match decoded(&pairs, "fields") {
        Some(f) => f.split(',').map(|x| x.trim().to_string()).collect(),
        None => vec![
            "impressions".into(),
            "clicks".into(),
            "dateRange".into(),
            "pivotValues".into(),
        ],
    };
    for f in &fields {
        if !METRICS.contains(&f.as_str()) && f != "dateRange" && f != "pivotValues" {
            return bad(&format!(
                "Unsupported field '{f}' (sandbox supports impressions, clicks, totalEngagements, dateRange, pivotValues)"
            ));
        }
    }

    let w = s.world();
    let cap = s.config.linkedin_analytics_cap;
    let want = |f: &str| fields.iter().any(|x| x == f);
    let (f_imp, f_clicks, f_eng, f_range, f_pivots) = (
        want("impressions"),
        want("clicks"),
        want("totalEngagements"),
        want("dateRange"),
        want("pivotValues"),
    );
    let keep = |e: &Engagement, account: u64| {
        accounts.as_ref().is_none_or(|a| a.contains(&account))
            && campaigns
                .as_ref()
                .is_none_or(|c| c.contains(&e.campaign_id))
    };
    let key_of = |e: &Engagement, account: u64| {
        let mut key = [0u64; 3];
        for (i, p) in pivots.iter().enumerate() {
            key[i] = match p {
                Pivot::MemberCompany => e.org_id,
                Pivot::Campaign => e.campaign_id,
                Pivot::Account => account,
            };
        }
        key
    };
    // (bucket start, pivot values, [impressions, clicks, engagements]) in output order.
    let mut groups: Vec<(NaiveDate, [u64; 3], [u64; 3])> = Vec::new();
    let rows = w.engagement_range(start, end);
    if granularity == Granularity::Daily && pivots == [Pivot::MemberCompany, Pivot::Campaign] {
        // Stored rows are unique and sorted by (date, org, campaign): no aggregation needed,
        // and the scan stops at the cap.
        for e in rows {
            let account = w.campaign_account(e.campaign_id).unwrap_or(0);
            if !keep(e, account) {
                continue;
            }
            if groups.len() >= cap {
                break;
            }
            groups.push((
                e.date,
                key_of(e, account),
                [e.impressions, e.clicks, e.engagements],
            ));
        }
    } else {
        let mut map: BTreeMap<(NaiveDate, [u64; 3]), [u64; 3]> = BTreeMap::new();
        for e in rows {
            let account = w.campaign_account(e.campaign_id).unwrap_or(0);
            if !keep(e, account) {
                continue;
            }
            let bucket = match granularity {
                Granularity::Daily => e.date,
                Granularity::Monthly => e.date.with_day(1).unwrap_or(e.date),
                Granularity::All => start,
            };
            let m = map.entry((bucket, key_of(e, account))).or_default();
            m[0] += e.impressions;
            m[1] += e.clicks;
            m[2] += e.engagements;
        }
        groups = map
            .into_iter()
            .take(cap)
            .map(|((b, k), m)| (b, k, m))
            .collect();
    }
    let elements: Vec<AnalyticsElement> = groups
        .iter()
        .map(|(bucket, key, m)| {
            let pivot_values = f_pivots.then(|| {
                pivots
                    .iter()
                    .enumerate()
                    .map(|(i, p)| match p {
                        Pivot::MemberCompany => format!("urn:li:organization:{}", key[i]),
                        Pivot::Campaign => format!("urn:li:sponsoredCampaign:{}", key[i]),
                        Pivot::Account => format!("urn:li:sponsoredAccount:{}", key[i]),
                    })
                    .collect()
            });
            let date_range = f_range.then(|| {
                let (a, b) = match granularity {
                    Granularity::Daily => (*bucket, *bucket),
                    Granularity::Monthly => {
                        let next = bucket
                            .checked_add_months(chrono::Months::new(1))
                            .unwrap_or(*bucket);
                        let last = next.pred_opt().unwrap_or(next);
                        ((*bucket).max(start), last.min(end))
                    }
                    Granularity::All => (start, end),
                };
                DateRangeOut {
                    start: DateOut::from(a),
                    end: DateOut::from(b),
                }
            });
            AnalyticsElement {
                pivot_values,
                date_range,
                impressions: f_imp.then_some(m[0]),
                clicks: f_clicks.then_some(m[1]),
                total_engagements: f_eng.then_some(m[2]),
            }
        })
        .collect();
    let n = elements.len();
    Json(AnalyticsResponse {
        elements,
        paging: PagingOut {
            start: 0,
            count: n,
            links: [],
        },
    })
    .into_response()
}

#[derive(Serialize)]
struct AnalyticsResponse {
    elements: Vec<AnalyticsElement>,
    paging: PagingOut,
}

#[derive(Serialize)]
struct PagingOut {
    start: usize,
    count: usize,
    links: [u8; 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnalyticsElement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pivot_values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_range: Option<DateRangeOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impressions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clicks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_engagements: Option<u64>,
}

#[derive(Serialize)]
struct DateRangeOut {
    start: DateOut,
    end: DateOut,
}

#[derive(Serialize)]
struct DateOut {
    year: i32,
    month: u32,
    day: u32,
}

impl From<NaiveDate> for DateOut {
    fn from(d: NaiveDate) -> Self {
        DateOut {
            year: d.year(),
            month: d.month(),
            day: d.day(),
        }
    }
}

/// `GET /rest/adAccounts/{id}/adCampaigns?q=search[&start&count]`
pub async fn ad_campaigns(
    State((s, _)): S,
    Path(account): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = q.unwrap_or_default();
    let pairs = raw_pairs(&q);
    if decoded(&pairs, "q").as_deref() != Some("search") {
        return bad("Query parameter 'q' must be 'search'");
    }
    let Ok(account) = account.parse::<u64>() else {
        return bad("Invalid ad account id");
    };
    let start = match decoded(&pairs, "start").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("Invalid value for param 'start'"),
    };
    let count = match decoded(&pairs, "count").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= 1000 => n,
        _ => return bad("Invalid value for param 'count'"),
    };
    let w = s.world();
    if !w.ad_accounts.iter().any(|a| a.id == account) {
        return crate::errors::linkedin(
            axum::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            None,
            &format!("Ad account {account} not found"),
        );
    }
    let all: Vec<&crate::data::Campaign> = w
        .campaigns
        .iter()
        .filter(|c| c.account_id == account)
        .collect();
    let elements: Vec<Value> = all
        .iter()
        .skip(start)
        .take(count)
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "status": "ACTIVE",
                "account": format!("urn:li:sponsoredAccount:{}", c.account_id),
                "type": "SPONSORED_UPDATES",
                "costType": "CPM",
                "test": false,
            })
        })
        .collect();
    Json(json!({
        "elements": elements,
        "paging": {"start": start, "count": count, "total": all.len(), "links": []},
    }))
    .into_response()
}

fn org_json(o: &Org) -> Value {
    let mut v = json!({
        "id": o.id,
        "$URN": format!("urn:li:organization:{}", o.id),
        "localizedName": o.name,
        "vanityName": o.vanity,
        "industries": [format!("urn:li:industry:{}", o.industry)],
        "staffCountRange": o.staff,
        "locations": [{"locationType": "HEADQUARTERS", "address": {"country": o.country}}],
    });
    if let (Some(site), Some(obj)) = (&o.website, v.as_object_mut()) {
        obj.insert("localizedWebsite".into(), Value::String(site.clone()));
    }
    v
}

fn find_org(w: &World, id: u64) -> Option<&Org> {
    w.org_by_id.get(&id).and_then(|&i| w.orgs.get(i as usize))
}

/// `GET /rest/organizations?ids=List(1,2)`: batch get, at most 100 ids.
pub async fn organizations(State((s, _)): S, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let pairs = raw_pairs(&q);
    let Some(raw) = raw_get(&pairs, "ids") else {
        return bad("Query parameter 'ids' is required: ids=List(1234,5678)");
    };
    let Ok(RValue::List(items)) = restli::parse(raw) else {
        return bad("Invalid value for param 'ids': expected List(..)");
    };
    if items.is_empty() {
        return bad("At least one id is required");
    }
    if items.len() > 100 {
        return bad(&format!(
            "Too many ids requested: {} (maximum is 100)",
            items.len()
        ));
    }
    let mut ids = Vec::with_capacity(items.len());
    for it in &items {
        match it.atom().and_then(|a| a.parse::<u64>().ok()) {
            Some(id) => ids.push(id),
            None => return bad("Invalid organization id in 'ids'"),
        }
    }
    let faults = s.controls(Provider::Linkedin).organization_errors.clone();
    let w = s.world();
    let mut results = Map::new();
    let mut statuses = Map::new();
    let mut errors = Map::new();
    for id in ids {
        let key = id.to_string();
        if let Some(&status) = faults.get(&id) {
            statuses.insert(key.clone(), status.into());
            errors.insert(key, per_id_error(id, status));
            continue;
        }
        match find_org(&w, id) {
            Some(o) => {
                results.insert(key.clone(), org_json(o));
                statuses.insert(key, 200.into());
            }
            None => {
                statuses.insert(key.clone(), 404.into());
                errors.insert(
                    key,
                    json!({"status": 404, "code": "NOT_FOUND", "message": format!("Organization {id} not found")}),
                );
            }
        }
    }
    Json(json!({"results": results, "statuses": statuses, "errors": errors})).into_response()
}

/// A batch lookup's per-id error body, as LinkedIn words it.
fn per_id_error(id: u64, status: u16) -> Value {
    let (code, message) = match status {
        403 => (
            "ACCESS_DENIED",
            format!("Not enough permissions to access organization {id}"),
        ),
        404 => ("NOT_FOUND", format!("Organization {id} not found")),
        429 => (
            "TOO_MANY_REQUESTS",
            "Resource level throttle limit exceeded".into(),
        ),
        _ => ("INTERNAL_SERVER_ERROR", "Internal Server Error".into()),
    };
    json!({"status": status, "code": code, "message": message})
}

// ---- admin faults (routed by admin.rs) -----------------------------------------------------

#[derive(serde::Deserialize)]
struct OrgErrorsBody {
    ids: Vec<u64>,
    #[serde(default = "default_org_error")]
    status: u16,
}

fn default_org_error() -> u16 {
    500
}

// Returns early with a ready-made error response, as the admin handlers do.
#[allow(clippy::result_large_err)]
fn linkedin_only(p: &str) -> Result<Provider, Response> {
    match crate::admin::provider(p)? {
        Provider::Linkedin => Ok(Provider::Linkedin),
        _ => Err(crate::admin::err(
            axum::http::StatusCode::NOT_FOUND,
            "only LinkedIn has this fault",
        )),
    }
}

/// `PUT /admin/providers/linkedin/organization-errors` `{"ids":[..],"status":500}`: the batch
/// lookup answers these organizations with a per-id error (added to those already set).
pub async fn organization_errors_set(
    State(s): State<AppState>,
    Path(p): Path<String>,
    raw: String,
) -> Response {
    let p = match linkedin_only(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let b: OrgErrorsBody = match crate::admin::body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !(400..=599).contains(&b.status) {
        return crate::admin::err(
            axum::http::StatusCode::BAD_REQUEST,
            "status must be an HTTP error status (400-599)",
        );
    }
    s.controls(p)
        .organization_errors
        .extend(b.ids.iter().map(|&id| (id, b.status)));
    crate::admin::provider_status(State(s), Path(p.prefix().to_string())).await
}

/// `DELETE /admin/providers/linkedin/organization-errors`: every organization answers again.
pub async fn organization_errors_clear(
    State(s): State<AppState>,
    Path(p): Path<String>,
) -> Response {
    let p = match linkedin_only(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    s.controls(p).organization_errors.clear();
    crate::admin::provider_status(State(s), Path(p.prefix().to_string())).await
}

/// `GET /rest/adAccountUsers?q=authenticatedUser`: the authenticated member's roles on ad
/// accounts, each naming the member (`user`, a person URN) and the account.
pub async fn ad_account_users(State((s, _)): S, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let pairs = raw_pairs(&q);
    if decoded(&pairs, "q").as_deref() != Some("authenticatedUser") {
        return bad("Query parameter 'q' must be 'authenticatedUser'");
    }
    let hidden = s.controls(Provider::Linkedin).ad_accounts_hidden;
    let w = s.world();
    let user = w.linkedin_member_urn();
    let elements: Vec<Value> = w
        .ad_accounts
        .iter()
        .filter(|_| !hidden)
        .map(|a| {
            json!({
                "account": format!("urn:li:sponsoredAccount:{}", a.id),
                "user": user,
                "role": "ACCOUNT_MANAGER",
                "changeAuditStamps": {"created": {"time": 0}, "lastModified": {"time": 0}},
            })
        })
        .collect();
    let total = elements.len();
    Json(json!({
        "elements": elements,
        "paging": {"start": 0, "count": total, "total": total, "links": []},
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct VisibleBody {
    visible: bool,
}

/// `PUT /admin/providers/linkedin/ad-accounts` `{"visible":false}`: the member sees no ad account
/// (as one without a Campaign Manager role on any account); `true` shows them again.
pub async fn ad_accounts_visibility(
    State(s): State<AppState>,
    Path(p): Path<String>,
    raw: String,
) -> Response {
    let p = match linkedin_only(&p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let b: VisibleBody = match crate::admin::body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    s.controls(p).ad_accounts_hidden = !b.visible;
    crate::admin::provider_status(State(s), Path(p.prefix().to_string())).await
}

/// `GET /rest/organizations/{id}`.
pub async fn organization(State((s, _)): S, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad("Invalid organization id");
    };
    if let Some(&status) = s.controls(Provider::Linkedin).organization_errors.get(&id) {
        let e = per_id_error(id, status);
        return crate::errors::linkedin(
            axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            e["code"].as_str().unwrap_or("INTERNAL_SERVER_ERROR"),
            None,
            e["message"].as_str().unwrap_or_default(),
        );
    }
    let w = s.world();
    match find_org(&w, id) {
        Some(o) => Json(org_json(o)).into_response(),
        None => crate::errors::linkedin(
            axum::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            None,
            &format!("Organization {id} not found"),
        ),
    }
}

#[derive(Serialize)]
pub struct EngagementTruth {
    date: NaiveDate,
    org_id: u64,
    campaign_id: u64,
    account_id: Option<u64>,
    impressions: u64,
    clicks: u64,
    engagements: u64,
}

/// Engagement rows as the truth endpoint serves them.
pub fn engagement_truth(w: &World) -> Vec<EngagementTruth> {
    w.engagement
        .iter()
        .map(|e: &Engagement| EngagementTruth {
            date: e.date,
            org_id: e.org_id,
            campaign_id: e.campaign_id,
            account_id: w.campaign_account(e.campaign_id),
            impressions: e.impressions,
            clicks: e.clicks,
            engagements: e.engagements,
        })
        .collect()
}
