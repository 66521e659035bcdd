//! The admin API (`/admin`, JSON, never rate limited or logged): fault injection, CRM
//! mutations, engagement, request log, ground truth.

// Handlers return early with a ready-made error response; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Provider, RateLimit, SearchLimit};
use crate::data::{
    Company, Contact, Deal, Engagement, Kind, World, amount_string, domain_property,
};
use crate::hubspot::parse_kind;
use crate::state::{AppState, OutageMode};
use crate::util::{fmt_iso, form_get, parse_form};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/config", get(config))
        .route("/clock", get(clock))
        .route("/clock/advance", post(clock_advance))
        .route("/churn", post(churn))
        .route("/tokens/expire", post(expire_all))
        .route("/providers/{provider}", get(provider_status))
        .route("/providers/{provider}/tokens/expire", post(expire_provider))
        .route("/providers/{provider}/grants/revoke", post(revoke))
        .route(
            "/providers/{provider}/outage",
            put(outage_on).delete(outage_off),
        )
        .route("/providers/{provider}/latency", put(latency))
        .route(
            "/providers/{provider}/rate-limit",
            put(rate_limit_set).delete(rate_limit_off),
        )
        .route("/providers/{provider}/malformed", post(malformed))
        .route(
            "/providers/{provider}/hostile",
            put(hostile_on).delete(hostile_off),
        )
        .route(
            "/providers/{provider}/edit-during-search",
            put(edit_during_search),
        )
        .route(
            "/providers/salesforce/deleted-index-lag",
            put(crate::salesforce::deleted_index_lag),
        )
        .route(
            "/providers/salesforce/edit-after-query",
            put(crate::salesforce::set_edit_after_query),
        )
        .route("/providers/{provider}/deny-next-authorize", post(deny_next))
        .route("/providers/{provider}/refresh-rotation", put(rotation))
        .route(
            "/providers/{provider}/organization-errors",
            put(crate::linkedin::organization_errors_set)
                .delete(crate::linkedin::organization_errors_clear),
        )
        .route(
            "/providers/{provider}/ad-accounts",
            put(crate::linkedin::ad_accounts_visibility),
        )
        .route("/providers/{provider}/account", put(switch_account))
        .route("/crm/{type}", post(crm_create))
        .route(
            "/crm/{type}/{id}",
            get(crm_get).patch(crm_update).delete(crm_delete),
        )
        .route("/linkedin/engagement", post(add_engagement))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/truth", get(truth))
        .route("/stats", get(stats))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such admin endpoint") })
        .with_state(state)
}

pub(crate) fn err(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

pub(crate) fn provider(p: &str) -> Result<Provider, Response> {
    p.parse::<Provider>()
        .map_err(|e| err(StatusCode::NOT_FOUND, &e))
}

/// Parse a JSON body; an empty body is `{}`.
pub(crate) fn body<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, Response> {
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    serde_json::from_str(raw)
        .map_err(|e| err(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

async fn config(State(s): State<AppState>) -> Response {
    let mut providers = serde_json::Map::new();
    for p in Provider::ALL {
        let base = s.provider_base(p);
        let (authorize, token) = match p {
            Provider::Linkedin => ("/oauth/v2/authorization", "/oauth/v2/accessToken"),
            Provider::Hubspot => ("/oauth/authorize", "/oauth/v1/token"),
            Provider::Salesforce => ("/services/oauth2/authorize", "/services/oauth2/token"),
        };
        let c = s.config.client(p);
        providers.insert(
            p.prefix().into(),
            json!({
                "api_base": base,
                "auth_base": base,
                "authorize_url": format!("{base}{authorize}"),
                "token_url": format!("{base}{token}"),
                "client_id": c.client_id,
                "client_secret": c.client_secret,
            }),
        );
    }
    Json(json!({
        "base_url": s.base_url,
        "seed": s.config.seed,
        "sizes": s.config.sizes,
        "anchor": s.world().anchor.to_string(),
        "access_token_ttl_secs": s.config.access_token_ttl.as_secs(),
        "check_client_credentials": s.config.check_client_credentials,
        "linkedin_analytics_cap": s.config.linkedin_analytics_cap,
        "hubspot_search_cap": s.config.hubspot_search_cap,
        "salesforce_batch_size": s.config.salesforce_batch_size,
        "providers": providers,
    }))
    .into_response()
}

async fn clock(State(s): State<AppState>) -> Response {
    let now = s.clock.now_ms();
    Json(json!({"now": fmt_iso(now), "now_ms": now})).into_response()
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    seconds: i64,
    #[serde(default)]
    ms: i64,
}

async fn clock_advance(State(s): State<AppState>, raw: String) -> Response {
    let a: Advance = try_resp!(body(&raw));
    let delta = a.seconds.saturating_mul(1000).saturating_add(a.ms);
    if delta < 0 {
        return err(StatusCode::BAD_REQUEST, "the clock only moves forward");
    }
    s.advance_clock(delta);
    clock(State(s)).await
}

#[derive(Deserialize)]
struct ChurnBody {
    fraction: f64,
    #[serde(default)]
    seed: u64,
    /// New engagement rows; default the history's average day.
    engagement_rows: Option<usize>,
}

/// A day's change: a fraction of companies, contacts and deals edited (modified now) and a new
/// day of engagement (`crate::churn`).
async fn churn(State(s): State<AppState>, raw: String) -> Response {
    let b: ChurnBody = try_resp!(body(&raw));
    let now = s.clock.now_ms();
    let mut w = s.world_mut();
    match crate::churn::churn(&mut w, b.fraction, b.seed, b.engagement_rows, now) {
        Ok(c) => Json(c).into_response(),
        Err(e) => err(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct ProviderOpt {
    provider: Option<String>,
}

async fn expire_all(State(s): State<AppState>, raw: String) -> Response {
    let b: ProviderOpt = try_resp!(body(&raw));
    let list = match b.provider {
        Some(p) => vec![try_resp!(provider(&p))],
        None => Provider::ALL.to_vec(),
    };
    let now = s.clock.now_ms();
    let n: usize = list.iter().map(|p| s.oauth(*p).expire_all(now)).sum();
    Json(json!({"expired": n})).into_response()
}

async fn expire_provider(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    let n = s.oauth(p).expire_all(s.clock.now_ms());
    Json(json!({"expired": n})).into_response()
}

async fn revoke(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    let n = s.oauth(p).revoke_all();
    Json(json!({"revoked": n})).into_response()
}

#[derive(Deserialize)]
struct OutageBody {
    mode: OutageMode,
}

async fn outage_on(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let b: OutageBody = try_resp!(body(&raw));
    s.controls(p).outage = Some(b.mode);
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn outage_off(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    s.controls(p).outage = None;
    provider_status(State(s), Path(p.prefix().to_string())).await
}

#[derive(Deserialize)]
struct LatencyBody {
    ms: u64,
}

async fn latency(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let b: LatencyBody = try_resp!(body(&raw));
    s.controls(p).latency_ms = b.ms;
    provider_status(State(s), Path(p.prefix().to_string())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    max: Option<u32>,
    interval_ms: Option<u64>,
    daily: Option<u64>,
    /// HubSpot's search limit (its own window).
    search_max: Option<u32>,
    search_interval_ms: Option<u64>,
}

async fn rate_limit_set(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let b: RateBody = try_resp!(body(&raw));
    {
        let mut c = s.controls(p);
        match p {
            Provider::Hubspot => {
                let d = c.rate.unwrap_or(RateLimit::HUBSPOT_DEFAULT);
                let rl = RateLimit {
                    max: b.max.unwrap_or(d.max),
                    interval_ms: b.interval_ms.unwrap_or(d.interval_ms),
                    daily: b.daily.unwrap_or(d.daily),
                };
                let search = SearchLimit {
                    max: b.search_max.unwrap_or(c.search_limit.max),
                    interval_ms: b.search_interval_ms.unwrap_or(c.search_limit.interval_ms),
                };
                if rl.max == 0 || rl.interval_ms == 0 || search.max == 0 || search.interval_ms == 0
                {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "max, interval_ms, search_max and search_interval_ms must be positive",
                    );
                }
                c.rate = Some(rl);
                c.search_limit = search;
            }
            Provider::Salesforce => match b.daily {
                Some(d)
                    if b.max.is_none()
                        && b.interval_ms.is_none()
                        && b.search_max.is_none()
                        && b.search_interval_ms.is_none() =>
                {
                    c.daily_limit = Some(d)
                }
                _ => return err(StatusCode::BAD_REQUEST, "salesforce takes {\"daily\": N}"),
            },
            Provider::Linkedin => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "the sandbox has no LinkedIn rate limit (use latency or outage)",
                );
            }
        }
        c.window.clear();
        c.daily_used = 0;
        c.peak_window = 0;
        c.search_window.clear();
        c.search_peak_window = 0;
        c.rejected = 0;
    }
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn rate_limit_off(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    {
        let mut c = s.controls(p);
        c.rate = None;
        c.daily_limit = None;
        c.window.clear();
        c.search_window.clear();
    }
    provider_status(State(s), Path(p.prefix().to_string())).await
}

#[derive(Deserialize)]
struct CountBody {
    count: u32,
}

async fn malformed(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let b: CountBody = try_resp!(body(&raw));
    s.controls(p).malformed_next = b.count;
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn hostile_on(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let h: crate::state::Hostile = try_resp!(body(&raw));
    if h.instance_url.is_some() && p != Provider::Salesforce {
        return err(StatusCode::BAD_REQUEST, "instance_url is Salesforce's");
    }
    if matches!(
        h.mode,
        Some(
            crate::state::HostileMode::RepeatCursor
                | crate::state::HostileMode::EndlessPages
                | crate::state::HostileMode::Throttle
        )
    ) && p != Provider::Hubspot
    {
        return err(
            StatusCode::BAD_REQUEST,
            "repeat_cursor, endless_pages and throttle are modelled on HubSpot's API",
        );
    }
    s.controls(p).hostile = Some(h);
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn hostile_off(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    s.controls(p).hostile = None;
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn edit_during_search(
    State(s): State<AppState>,
    Path(p): Path<String>,
    raw: String,
) -> Response {
    let p = try_resp!(provider(&p));
    if p != Provider::Hubspot {
        return err(StatusCode::NOT_FOUND, "only HubSpot's search pages");
    }
    let b: crate::state::EditDuringSearch = try_resp!(body(&raw));
    if crate::hubspot::parse_kind(&b.object).is_none() || b.after_page == 0 {
        return err(
            StatusCode::BAD_REQUEST,
            "object must be companies, contacts or deals, after_page at least 1",
        );
    }
    s.controls(p).edit_during_search = Some(b);
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn deny_next(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    s.controls(p).deny_next_authorize = true;
    provider_status(State(s), Path(p.prefix().to_string())).await
}

#[derive(Deserialize)]
struct EnabledBody {
    enabled: bool,
}

#[derive(Deserialize)]
struct AccountBody {
    account: u64,
}

/// `PUT /admin/providers/{provider}/account` `{"account": n}`: the next authorization is for
/// another provider account, as when the user signs in to another HubSpot portal, Salesforce
/// org or LinkedIn member at the provider's consent page. For HubSpot and Salesforce (one CRM
/// world) the CRM becomes account `n`'s: other portal/org id, other record ids, deals worth
/// twice as much; records keep their modification times, so all of them are older than the
/// previous account's last sync. For LinkedIn the member changes (the ad accounts they see
/// stay). Account 0 is the generated one. Not kept across restarts.
async fn switch_account(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let b: AccountBody = try_resp!(body(&raw));
    if b.account > 1_000 {
        return err(StatusCode::BAD_REQUEST, "account must be 0..=1000");
    }
    {
        let mut w = s.world_mut();
        match p {
            Provider::Linkedin => w.linkedin_member = b.account,
            Provider::Hubspot | Provider::Salesforce => {
                if w.crm_account != b.account {
                    w.switch_crm_account(b.account);
                }
            }
        }
    }
    provider_status(State(s), Path(p.prefix().to_string())).await
}

async fn rotation(State(s): State<AppState>, Path(p): Path<String>, raw: String) -> Response {
    let p = try_resp!(provider(&p));
    let b: EnabledBody = try_resp!(body(&raw));
    s.controls(p).rotate_refresh = b.enabled;
    provider_status(State(s), Path(p.prefix().to_string())).await
}

pub(crate) async fn provider_status(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    let p = try_resp!(provider(&p));
    let (live, revocations) = {
        let o = s.oauth(p);
        (o.live_grants(), o.revocations())
    };
    let account = match p {
        Provider::Linkedin => s.world().linkedin_member,
        Provider::Hubspot | Provider::Salesforce => s.world().crm_account,
    };
    let c = s.controls(p);
    Json(json!({
        "provider": p,
        "account": account,
        "outage": c.outage,
        "latency_ms": c.latency_ms,
        "malformed_next": c.malformed_next,
        "deny_next_authorize": c.deny_next_authorize,
        "refresh_rotation": c.rotate_refresh,
        "rate_limit": c.rate,
        "daily_limit": c.daily_limit,
        "daily_used": c.daily_used,
        "window_used": c.window.len(),
        "peak_window": c.peak_window,
        // HubSpot's search limit, while the rate limit is on (null otherwise, and for the
        // other providers).
        "search_limit": (p == Provider::Hubspot && c.rate.is_some()).then_some(c.search_limit),
        "search_window_used": c.search_window.len(),
        "search_peak_window": c.search_peak_window,
        "rejected": c.rejected,
        "api_requests": c.requests,
        "live_grants": live,
        // Grants revoked through the provider's revocation endpoint.
        "revocations": revocations,
        "organization_errors": c.organization_errors,
        "ad_accounts_hidden": c.ad_accounts_hidden,
        "hostile": c.hostile.as_ref().map(|h| json!({
            "mode": h.mode,
            "bytes": h.bytes,
            "instance_url": h.instance_url,
            "bytes_served": h.bytes_served.load(std::sync::atomic::Ordering::Relaxed),
            "count": h.count,
            "retry_after": h.retry_after,
        })),
    }))
    .into_response()
}

// ---- CRM mutations -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CrmBody {
    // companies
    name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    website: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    country: Option<Option<String>>,
    // contacts
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    company_id: Option<Option<String>>,
    // deals
    #[serde(default, deserialize_with = "double")]
    amount: Option<Option<String>>,
    currency: Option<String>,
    pipeline: Option<String>,
    stage: Option<String>,
    #[serde(default, deserialize_with = "double")]
    close_date: Option<Option<NaiveDate>>,
    created: Option<chrono::DateTime<chrono::Utc>>,
}

/// `null` -> Some(None) (clear), absent -> None (keep).
fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 2 || int.is_empty() {
        return None;
    }
    let i: i64 = int.parse().ok()?;
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    Some(i * 100 + if i < 0 { -f } else { f })
}

fn record_json(w: &World, k: Kind, idx: u32) -> Value {
    let i = idx as usize;
    match k {
        Kind::Company => {
            let c = &w.companies[i];
            json!({"hubspot_id": c.hs_id.to_string(), "salesforce_id": c.sf_id, "name": c.name,
                "website": c.website, "domain": c.domain, "country": c.country,
                "modified": fmt_iso(c.modified_ms), "archived": c.archived})
        }
        Kind::Contact => {
            let c = &w.contacts[i];
            json!({"hubspot_id": c.hs_id.to_string(), "salesforce_id": c.sf_id,
                "first_name": c.first_name, "last_name": c.last_name, "email": c.email,
                "title": c.title,
                "hubspot_company_id": c.company.map(|x| w.hs_id(Kind::Company, x).to_string()),
                "salesforce_account_id": c.company.map(|x| w.companies[x as usize].sf_id.clone()),
                "modified": fmt_iso(c.modified_ms), "archived": c.archived})
        }
        Kind::Deal => deal_json(w, idx),
    }
}

fn deal_json(w: &World, idx: u32) -> Value {
    let d = &w.deals[idx as usize];
    let stage = w.stage_of(d);
    let outcome = match stage {
        Some(s) if s.closed && s.probability >= 1.0 => "won",
        Some(s) if s.closed => "lost",
        _ => "open",
    };
    json!({
        "hubspot_id": d.hs_id.to_string(),
        "salesforce_id": d.sf_id,
        "name": d.name,
        "amount": d.amount_cents.map(amount_string),
        "currency": d.currency,
        "pipeline_id": w.pipelines.get(d.pipeline).map(|p| p.id.clone()),
        "stage_id": stage.map(|s| s.id.clone()),
        "stage_label": stage.map(|s| s.label.clone()),
        "outcome": outcome,
        "created": fmt_iso(d.created_ms),
        "close_date": d.close_date.map(|c| c.to_string()),
        "hubspot_company_id": d.company.map(|x| w.hs_id(Kind::Company, x).to_string()),
        "salesforce_account_id": d.company.map(|x| w.companies[x as usize].sf_id.clone()),
        "modified": fmt_iso(d.modified_ms),
        "archived": d.archived,
    })
}

fn resolve_company(w: &World, id: &Option<String>) -> Result<Option<u32>, Response> {
    match id {
        None => Ok(None),
        Some(id) => match w.find(Kind::Company, id) {
            Some(i) if !w.companies[i as usize].archived => Ok(Some(i)),
            _ => Err(err(
                StatusCode::BAD_REQUEST,
                &format!("unknown company {id}"),
            )),
        },
    }
}

fn resolve_stage(w: &World, pipeline: &str, stage: &str) -> Result<(usize, usize), Response> {
    let Some(pi) = w.pipelines.iter().position(|p| p.id == pipeline) else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            &format!("unknown pipeline {pipeline}"),
        ));
    };
    let Some(si) = w.pipelines[pi].stages.iter().position(|s| s.id == stage) else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            &format!("unknown stage {stage} in pipeline {pipeline}"),
        ));
    };
    Ok((pi, si))
}

async fn crm_create(State(s): State<AppState>, Path(t): Path<String>, raw: String) -> Response {
    let Some(k) = parse_kind(&t) else {
        return err(
            StatusCode::NOT_FOUND,
            "type must be companies, contacts or deals",
        );
    };
    let b: CrmBody = try_resp!(body(&raw));
    let now = s.clock.now_ms();
    let mut w = s.world_mut();
    let idx = w.len(k) as u32;
    let (hs_id, sf_id) = (w.hs_id(k, idx), w.sf_id(k, idx));
    match k {
        Kind::Company => {
            let Some(name) = b.name else {
                return err(StatusCode::BAD_REQUEST, "name is required");
            };
            let website = b.website.flatten();
            w.companies.push(Company {
                hs_id,
                sf_id,
                name,
                domain: website.as_deref().and_then(domain_property),
                website,
                country: b.country.flatten(),
                created_ms: now,
                modified_ms: now,
                archived: false,
            });
        }
        Kind::Contact => {
            let company = try_resp!(resolve_company(&w, &b.company_id.flatten()));
            w.contacts.push(Contact {
                hs_id,
                sf_id,
                first_name: b.first_name.unwrap_or_default(),
                last_name: b.last_name.unwrap_or_default(),
                email: b.email.flatten(),
                title: b.title.flatten(),
                company,
                created_ms: now,
                modified_ms: now,
                archived: false,
            });
        }
        Kind::Deal => {
            let company = try_resp!(resolve_company(&w, &b.company_id.flatten()));
            let pipeline = b.pipeline.unwrap_or_else(|| "default".into());
            let stage = b.stage.unwrap_or_else(|| "appointmentscheduled".into());
            let (pi, si) = try_resp!(resolve_stage(&w, &pipeline, &stage));
            let amount_cents = match b.amount.flatten() {
                None => None,
                Some(a) => match parse_amount(&a) {
                    Some(c) => Some(c),
                    None => return err(StatusCode::BAD_REQUEST, "amount must be a decimal string"),
                },
            };
            let created = b.created.map(|c| c.timestamp_millis()).unwrap_or(now);
            w.deals.push(Deal {
                hs_id,
                sf_id,
                name: b.name.unwrap_or_else(|| "New deal".into()),
                amount_cents,
                currency: b.currency.unwrap_or_else(|| "USD".into()),
                pipeline: pi,
                stage: si,
                created_ms: created,
                close_date: b.close_date.flatten(),
                company,
                modified_ms: now,
                archived: false,
            });
        }
    }
    w.index_new(k, idx, now);
    (StatusCode::CREATED, Json(record_json(&w, k, idx))).into_response()
}

fn find_live(w: &World, k: Kind, id: &str) -> Result<u32, Response> {
    match w.find(k, id) {
        Some(i) if !w.archived(k, i) => Ok(i),
        _ => Err(err(StatusCode::NOT_FOUND, &format!("no such record {id}"))),
    }
}

async fn crm_get(State(s): State<AppState>, Path((t, id)): Path<(String, String)>) -> Response {
    let Some(k) = parse_kind(&t) else {
        return err(
            StatusCode::NOT_FOUND,
            "type must be companies, contacts or deals",
        );
    };
    let w = s.world();
    match w.find(k, &id) {
        Some(i) => Json(record_json(&w, k, i)).into_response(),
        None => err(StatusCode::NOT_FOUND, &format!("no such record {id}")),
    }
}

async fn crm_update(
    State(s): State<AppState>,
    Path((t, id)): Path<(String, String)>,
    raw: String,
) -> Response {
    let Some(k) = parse_kind(&t) else {
        return err(
            StatusCode::NOT_FOUND,
            "type must be companies, contacts or deals",
        );
    };
    let b: CrmBody = try_resp!(body(&raw));
    let now = s.clock.now_ms();
    let mut w = s.world_mut();
    let idx = try_resp!(find_live(&w, k, &id));
    let i = idx as usize;
    match k {
        Kind::Company => {
            let c = &mut w.companies[i];
            if let Some(n) = b.name {
                c.name = n;
            }
            if let Some(site) = b.website {
                c.domain = site.as_deref().and_then(domain_property);
                c.website = site;
            }
            if let Some(country) = b.country {
                c.country = country;
            }
        }
        Kind::Contact => {
            let company = match &b.company_id {
                Some(id) => Some(try_resp!(resolve_company(&w, id))),
                None => None,
            };
            let c = &mut w.contacts[i];
            if let Some(v) = b.first_name {
                c.first_name = v;
            }
            if let Some(v) = b.last_name {
                c.last_name = v;
            }
            if let Some(v) = b.email {
                c.email = v;
            }
            if let Some(v) = b.title {
                c.title = v;
            }
            if let Some(v) = company {
                c.company = v;
            }
        }
        Kind::Deal => {
            let company = match &b.company_id {
                Some(id) => Some(try_resp!(resolve_company(&w, id))),
                None => None,
            };
            let stage = match (&b.pipeline, &b.stage) {
                (None, None) => None,
                (p, Some(st)) => {
                    let p = p
                        .clone()
                        .unwrap_or_else(|| w.pipelines[w.deals[i].pipeline].id.clone());
                    Some(try_resp!(resolve_stage(&w, &p, st)))
                }
                (Some(_), None) => {
                    return err(StatusCode::BAD_REQUEST, "changing pipeline needs a stage");
                }
            };
            let amount = match b.amount {
                None => None,
                Some(None) => Some(None),
                Some(Some(a)) => match parse_amount(&a) {
                    Some(c) => Some(Some(c)),
                    None => return err(StatusCode::BAD_REQUEST, "amount must be a decimal string"),
                },
            };
            let d = &mut w.deals[i];
            if let Some(n) = b.name {
                d.name = n;
            }
            if let Some(a) = amount {
                d.amount_cents = a;
            }
            if let Some(c) = b.currency {
                d.currency = c;
            }
            if let Some((pi, si)) = stage {
                d.pipeline = pi;
                d.stage = si;
            }
            if let Some(cd) = b.close_date {
                d.close_date = cd;
            }
            if let Some(v) = company {
                d.company = v;
            }
        }
    }
    w.set_modified(k, idx, now);
    Json(record_json(&w, k, idx)).into_response()
}

async fn crm_delete(State(s): State<AppState>, Path((t, id)): Path<(String, String)>) -> Response {
    let Some(k) = parse_kind(&t) else {
        return err(
            StatusCode::NOT_FOUND,
            "type must be companies, contacts or deals",
        );
    };
    let now = s.clock.now_ms();
    let mut w = s.world_mut();
    let idx = try_resp!(find_live(&w, k, &id));
    w.archive(k, idx, now);
    Json(record_json(&w, k, idx)).into_response()
}

#[derive(Deserialize)]
struct EngagementBody {
    rows: Vec<Engagement>,
}

async fn add_engagement(State(s): State<AppState>, raw: String) -> Response {
    let b: EngagementBody = try_resp!(body(&raw));
    let mut w = s.world_mut();
    for r in &b.rows {
        if w.campaign_account(r.campaign_id).is_none() {
            return err(
                StatusCode::BAD_REQUEST,
                &format!("unknown campaign {}", r.campaign_id),
            );
        }
    }
    let n = b.rows.len();
    w.add_engagement(b.rows);
    Json(json!({"added": n, "total": w.engagement.len()})).into_response()
}

async fn requests(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let params = parse_form(q.as_deref().unwrap_or(""));
    let want = match form_get(&params, "provider").map(str::parse::<Provider>) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return err(StatusCode::BAD_REQUEST, &e),
    };
    let since: u64 = form_get(&params, "since")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let log = s.log();
    let entries: Vec<&crate::state::LoggedRequest> = log
        .entries
        .iter()
        .filter(|e| e.seq >= since && want.is_none_or(|p| e.provider == p))
        .collect();
    Json(json!({"requests": entries})).into_response()
}

async fn clear_requests(State(s): State<AppState>) -> Response {
    let mut log = s.log();
    let n = log.entries.len();
    log.entries.clear();
    Json(json!({"cleared": n})).into_response()
}

async fn truth(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let params = parse_form(q.as_deref().unwrap_or(""));
    let include: Vec<String> = form_get(&params, "include")
        .map(|v| v.split(',').map(String::from).collect())
        .unwrap_or_else(|| {
            ["matches", "engagement", "deals", "pipelines", "ads"]
                .map(String::from)
                .to_vec()
        });
    let has = |x: &str| include.iter().any(|i| i == x);
    let w = s.world();
    let matches = has("matches").then(|| {
        w.truth
            .iter()
            .filter_map(|t| {
                let org = w.orgs.get(t.org as usize)?;
                let company = t.company.and_then(|c| w.companies.get(c as usize));
                Some(json!({
                    "linkedin_org_id": org.id,
                    "linkedin_name": org.name,
                    "linkedin_website": org.website,
                    "hubspot_company_id": company.map(|c| c.hs_id.to_string()),
                    "salesforce_account_id": company.map(|c| c.sf_id.clone()),
                    "crm_name": company.map(|c| c.name.clone()),
                    "crm_website": company.and_then(|c| c.website.clone()),
                    "match": t.kind,
                    "domain": t.domain,
                }))
            })
            .collect()
    });
    let deals = has("deals").then(|| {
        (0..w.deals.len() as u32)
            .filter(|&i| !w.deals[i as usize].archived)
            .map(|i| deal_json(&w, i))
            .collect()
    });
    let out = TruthOut {
        anchor: w.anchor.to_string(),
        seed: s.config.seed,
        sizes: s.config.sizes,
        counts: json!({
            "companies": w.companies.len(),
            "contacts": w.contacts.len(),
            "deals": w.deals.len(),
            "engaged_orgs": w.orgs.len(),
            "engagement_rows": w.engagement.len(),
        }),
        matches,
        // Only when asked for (`include=companies`): the live companies' ids in the current
        // account.
        companies: has("companies").then(|| {
            w.companies
                .iter()
                .filter(|c| !c.archived)
                .map(|c| json!({"hubspot_id": c.hs_id.to_string(), "salesforce_id": c.sf_id, "name": c.name}))
                .collect()
        }),
        engagement: has("engagement").then(|| crate::linkedin::engagement_truth(&w)),
        deals,
        pipelines: has("pipelines").then(|| json!(w.pipelines)),
        ad_accounts: has("ads").then(|| json!(w.ad_accounts)),
        campaigns: has("ads").then(|| json!(w.campaigns)),
    };
    Json(out).into_response()
}

#[derive(serde::Serialize)]
struct TruthOut {
    anchor: String,
    seed: u64,
    sizes: crate::config::Sizes,
    counts: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    matches: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    companies: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engagement: Option<Vec<crate::linkedin::EngagementTruth>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deals: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipelines: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ad_accounts: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaigns: Option<Value>,
}

async fn stats(State(s): State<AppState>) -> Response {
    let up = s.started.elapsed().as_secs_f64();
    let mut per = serde_json::Map::new();
    let mut total = 0u64;
    for p in Provider::ALL {
        let c = s.controls(p);
        total += c.requests;
        per.insert(
            p.prefix().into(),
            json!({"api_requests": c.requests, "rejected": c.rejected, "peak_window": c.peak_window}),
        );
    }
    let logged = s.log().next_seq;
    Json(json!({
        "uptime_secs": up,
        "api_requests": total,
        "all_requests": logged,
        "requests_per_sec": if up > 0.0 { logged as f64 / up } else { 0.0 },
        "providers": per,
    }))
    .into_response()
}
