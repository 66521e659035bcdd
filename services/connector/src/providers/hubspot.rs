//! HubSpot CRM client: paged lists, incremental search on the last-modified date (splitting the
//! time window when a search would pass HubSpot's 10,000-result paging limit), deal pipelines,
//! deal-to-company associations, and a rate limiter driven by HubSpot's rate-limit headers so a
//! sync uses the budget without ever being answered 429.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Http, Reply, RetryPolicy, excerpt, join};
use crate::domain::provider::{
    DeletedRecord, Page, Provider, ProviderError, Secret, TokenRejection,
};

/// Search results past this many cannot be paged (HubSpot's limit).
pub const SEARCH_CAP: usize = 10_000;

#[derive(Clone, Debug)]
pub struct HubspotConfig {
    /// `https://api.hubapi.com` or `<sandbox>/hubspot`.
    pub api_base: String,
    pub retry: RetryPolicy,
    /// Records per list / search page (HubSpot allows up to 100 for both here).
    pub page_size: usize,
    /// Split a search window whose total exceeds this.
    pub search_cap: usize,
    /// Budget assumed until HubSpot's headers say otherwise.
    pub default_limit: (u32, Duration),
    /// 429s tolerated (each waited out) before giving up with `RateLimited`.
    pub max_throttled_retries: u32,
}

impl HubspotConfig {
    pub fn new(api_base: &str) -> Self {
        HubspotConfig {
            api_base: api_base.to_string(),
            retry: RetryPolicy::default(),
            page_size: 100,
            search_cap: SEARCH_CAP,
            default_limit: (100, Duration::from_secs(10)),
            max_throttled_retries: 5,
        }
    }
}

/// A raw CRM object as HubSpot sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawObject {
    pub id: String,
    #[serde(default)]
    pub properties: HashMap<String, Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub associations: Option<HashMap<String, AssociationList>>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub archived_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AssociationList {
    #[serde(default)]
    pub results: Vec<AssociationRef>,
}

#[derive(Debug, Deserialize)]
pub struct AssociationRef {
    pub id: String,
}

impl RawObject {
    /// A property as a string (HubSpot sends strings or null; numbers are tolerated).
    pub fn prop(&self, name: &str) -> Option<String> {
        match self.properties.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.prop(name).map(|s| parse_time(&s)).transpose()
    }

    fn modified(&self, prop: &str) -> Result<DateTime<Utc>, String> {
        if let Some(t) = self.time(prop)? {
            return Ok(t);
        }
        match &self.updated_at {
            Some(u) => parse_time(u),
            None => Err(format!(
                "object {} has neither {prop} nor updatedAt",
                self.id
            )),
        }
    }

    fn company_ids(&self) -> Vec<String> {
        self.associations
            .as_ref()
            .and_then(|a| a.get("companies"))
            .map(|l| l.results.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default()
    }
}

/// An entry of the archived list: it must say it is archived, and when.
fn archived_record(o: RawObject) -> Result<DeletedRecord, String> {
    if !o.archived {
        return Err(format!(
            "object {} in an archived=true list is not marked archived",
            o.id
        ));
    }
    let at = o
        .archived_at
        .as_deref()
        .ok_or_else(|| format!("archived object {} has no archivedAt", o.id))?;
    Ok(DeletedRecord {
        deleted_at: parse_time(at)?,
        id: o.id,
    })
}

/// HubSpot datetimes: RFC 3339, or epoch milliseconds.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("bad epoch millis {s}"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("bad datetime {s:?}: {e}"))
}

/// A CRM object type the client can list and search.
pub trait HubspotObject: Sized + Send {
    /// Path segment: `companies`, `contacts`, `deals`.
    const PATH: &'static str;
    const PROPERTIES: &'static [&'static str];
    /// The last-modified property searches filter and sort on.
    const MODIFIED: &'static str;
    /// Whether records carry company associations (fetched separately after a search).
    const COMPANY_ASSOCIATIONS: bool;
    fn from_raw(raw: RawObject) -> Result<Self, String>;
    fn id(&self) -> &str;
    fn modified_at(&self) -> DateTime<Utc>;
    fn set_company_ids(&mut self, _ids: Vec<String>) {}
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Company {
    pub id: String,
    pub name: Option<String>,
    /// HubSpot's `domain` property (host, as HubSpot derived it).
    pub domain: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: DateTime<Utc>,
}

impl HubspotObject for Company {
    const PATH: &'static str = "companies";
    const PROPERTIES: &'static [&'static str] = &[
        "name",
        "domain",
        "website",
        "country",
        "createdate",
        "hs_lastmodifieddate",
    ];
    const MODIFIED: &'static str = "hs_lastmodifieddate";
    const COMPANY_ASSOCIATIONS: bool = false;
    fn from_raw(r: RawObject) -> Result<Self, String> {
        Ok(Company {
            name: r.prop("name"),
            domain: r.prop("domain"),
            website: r.prop("website"),
            country: r.prop("country"),
            created_at: r.time("createdate")?,
            modified_at: r.modified(Self::MODIFIED)?,
            id: r.id,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    /// Primary company (`associatedcompanyid`).
    pub company_id: Option<String>,
    pub modified_at: DateTime<Utc>,
}

impl HubspotObject for Contact {
    const PATH: &'static str = "contacts";
    const PROPERTIES: &'static [&'static str] = &[
        "email",
        "firstname",
        "lastname",
        "jobtitle",
        "associatedcompanyid",
        "lastmodifieddate",
    ];
    // Contacts' last-modified property is `lastmodifieddate`.
    const MODIFIED: &'static str = "lastmodifieddate";
    const COMPANY_ASSOCIATIONS: bool = false;
    fn from_raw(r: RawObject) -> Result<Self, String> {
        Ok(Contact {
            email: r.prop("email"),
            first_name: r.prop("firstname"),
            last_name: r.prop("lastname"),
            job_title: r.prop("jobtitle"),
            company_id: r.prop("associatedcompanyid"),
            modified_at: r.modified(Self::MODIFIED)?,
            id: r.id,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deal {
    pub id: String,
    pub name: Option<String>,
    /// Decimal string as HubSpot holds it (e.g. `12500.50`).
    pub amount: Option<String>,
    /// `deal_currency_code`; None = the portal's company currency.
    pub currency: Option<String>,
    pub stage_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub company_ids: Vec<String>,
    pub modified_at: DateTime<Utc>,
}

impl HubspotObject for Deal {
    const PATH: &'static str = "deals";
    const PROPERTIES: &'static [&'static str] = &[
        "dealname",
        "amount",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "createdate",
        "closedate",
        "hs_lastmodifieddate",
    ];
    const MODIFIED: &'static str = "hs_lastmodifieddate";
    const COMPANY_ASSOCIATIONS: bool = true;
    fn from_raw(r: RawObject) -> Result<Self, String> {
        Ok(Deal {
            name: r.prop("dealname"),
            amount: r.prop("amount"),
            currency: r.prop("deal_currency_code"),
            stage_id: r.prop("dealstage"),
            pipeline_id: r.prop("pipeline"),
            created_at: r.time("createdate")?,
            closed_at: r.time("closedate")?,
            company_ids: r.company_ids(),
            modified_at: r.modified(Self::MODIFIED)?,
            id: r.id,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at
    }
    fn set_company_ids(&mut self, ids: Vec<String>) {
        self.company_ids = ids;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageOutcome {
    Open,
    Won,
    Lost,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub outcome: StageOutcome,
    pub probability: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub stages: Vec<PipelineStage>,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage<T> {
    pub records: Vec<T>,
    /// Matches of the whole search (not just this page).
    pub total: usize,
    /// Offset of the next page, if any.
    pub next_after: Option<usize>,
}

// ---- rate limiting -------------------------------------------------------------------------

#[derive(Debug)]
struct LimiterState {
    enabled: bool,
    max: u32,
    interval: Duration,
    /// When each request of the current window was answered.
    log: VecDeque<Instant>,
    in_flight: u32,
    daily_remaining: Option<u64>,
}

/// A sliding-window limiter that mirrors HubSpot's rolling window. A slot is held from sending
/// until `interval` after the response arrived, which is never earlier than HubSpot counted
/// the request, so the window HubSpot sees is never over the limit. Headers update the limit
/// and shrink our budget when other clients of the same account use theirs.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<LimiterState>,
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl RateLimiter {
    fn new(max: u32, interval: Duration) -> Self {
        RateLimiter {
            state: Mutex::new(LimiterState {
                enabled: true,
                max,
                interval,
                log: VecDeque::new(),
                in_flight: 0,
                daily_remaining: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn acquire(&self) -> Result<(), ProviderError> {
        loop {
            let wait = {
                let mut s = self.lock();
                if s.daily_remaining == Some(0) {
                    return Err(ProviderError::RateLimited {
                        provider: Provider::Hubspot,
                        retry_after: None,
                        message: "the daily API request limit is used up".into(),
                    });
                }
                let now = Instant::now();
                let interval = s.interval;
                while s.log.front().is_some_and(|t| *t + interval <= now) {
                    s.log.pop_front();
                }
                if !s.enabled || (s.log.len() as u32 + s.in_flight) < s.max {
                    s.in_flight += 1;
                    return Ok(());
                }
                match s.log.front() {
                    Some(t) => (*t + interval).saturating_duration_since(now),
                    // Every slot is in flight: wait for a response.
                    None => Duration::from_millis(5),
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    fn release(&self, headers: Option<&HeaderMap>) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        let now = Instant::now();
        s.log.push_back(now);
        let Some(h) = headers else { return };
        let max = header_u64(h, "x-hubspot-ratelimit-max");
        let interval = header_u64(h, "x-hubspot-ratelimit-interval-milliseconds");
        let remaining = header_u64(h, "x-hubspot-ratelimit-remaining");
        s.daily_remaining = header_u64(h, "x-hubspot-ratelimit-daily-remaining");
        match (max, interval) {
            (Some(m), Some(i)) if m > 0 && i > 0 => {
                s.enabled = true;
                s.max = m as u32;
                s.interval = Duration::from_millis(i);
            }
            // No rate-limit headers: HubSpot is not limiting this client.
            _ if remaining.is_none() => s.enabled = false,
            _ => {}
        }
        if let Some(rem) = remaining {
            let used = s.log.len() as u64 + u64::from(s.in_flight);
            let local = u64::from(s.max).saturating_sub(used);
            // Someone else shares the account's budget: count their requests as ours.
            for _ in rem..local {
                s.log.push_back(now);
            }
        }
    }

    /// After a 429: treat the window as full for a whole interval.
    fn saturate(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        let (max, used) = (s.max as usize, s.log.len());
        for _ in used..max {
            s.log.push_back(now);
        }
    }
}

// ---- client --------------------------------------------------------------------------------

/// HubSpot's token metadata, the part we keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub hub_id: String,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct TokenInfoResp {
    hub_id: u64,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct ListResp {
    results: Vec<RawObject>,
    #[serde(default)]
    paging: Option<PagingJ>,
}

#[derive(Deserialize)]
struct SearchResp {
    total: usize,
    results: Vec<RawObject>,
    #[serde(default)]
    paging: Option<PagingJ>,
}

#[derive(Deserialize)]
struct PagingJ {
    next: Option<NextJ>,
}

#[derive(Deserialize)]
struct NextJ {
    after: String,
}

#[derive(Deserialize)]
struct PipelinesResp {
    results: Vec<PipelineJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PipelineJ {
    id: String,
    label: String,
    #[serde(default)]
    stages: Vec<StageJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StageJ {
    id: String,
    label: String,
    #[serde(default)]
    display_order: i64,
    #[serde(default)]
    metadata: HashMap<String, Value>,
}

#[derive(Deserialize)]
struct AssocBatchResp {
    #[serde(default)]
    results: Vec<AssocBatchJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocBatchJ {
    from: AssocFromJ,
    #[serde(default)]
    to: Vec<AssocToJ>,
}

#[derive(Deserialize)]
struct AssocFromJ {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocToJ {
    to_object_id: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJ {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    policy_name: Option<String>,
}

#[derive(Debug)]
pub struct HubspotClient {
    http: Http,
    cfg: HubspotConfig,
    limiter: RateLimiter,
}

impl HubspotClient {
    pub fn new(cfg: HubspotConfig, client: reqwest::Client) -> Self {
        HubspotClient {
            http: Http {
                client,
                provider: Provider::Hubspot,
                retry: cfg.retry,
            },
            limiter: RateLimiter::new(cfg.default_limit.0, cfg.default_limit.1),
            cfg,
        }
    }

    /// Send through the limiter; 429s are waited out; other non-2xx classified.
    async fn send(
        &self,
        token: &Secret,
        endpoint: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, ProviderError> {
        let mut throttled = 0;
        loop {
            self.limiter.acquire().await?;
            let reply = match self
                .http
                .execute(endpoint, || make().bearer_auth(token.expose()))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    self.limiter.release(None);
                    return Err(e);
                }
            };
            self.limiter.release(Some(&reply.headers));
            if reply.status.is_success() {
                return Ok(reply);
            }
            let err: Option<ErrorJ> = serde_json::from_slice(&reply.body).ok();
            let message = err
                .as_ref()
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| excerpt(&reply.body));
            let status = reply.status.as_u16();
            match status {
                429 => {
                    let daily = err
                        .as_ref()
                        .and_then(|e| e.policy_name.as_deref())
                        .is_some_and(|p| p.eq_ignore_ascii_case("DAILY"));
                    throttled += 1;
                    if daily || throttled > self.cfg.max_throttled_retries {
                        return Err(ProviderError::RateLimited {
                            provider: Provider::Hubspot,
                            retry_after: None,
                            message,
                        });
                    }
                    tracing::warn!(
                        endpoint,
                        throttled,
                        "HubSpot answered 429, waiting a window"
                    );
                    self.limiter.saturate();
                    if let Some(secs) = header_u64(&reply.headers, "retry-after") {
                        tokio::time::sleep(Duration::from_secs(secs)).await;
                    }
                }
                401 => {
                    let reason = match err.and_then(|e| e.category).as_deref() {
                        Some("EXPIRED_AUTHENTICATION") => TokenRejection::Expired,
                        _ => TokenRejection::Invalid,
                    };
                    return Err(ProviderError::Unauthorized {
                        provider: Provider::Hubspot,
                        reason,
                        message,
                    });
                }
                _ => {
                    let category = err.and_then(|e| e.category).unwrap_or_default();
                    return Err(self.http.request_error(
                        endpoint,
                        Some(status),
                        format!("{category} {message}").trim().to_string(),
                    ));
                }
            }
        }
    }

    fn convert<T: HubspotObject>(
        &self,
        endpoint: &str,
        raw: Vec<RawObject>,
    ) -> Result<Vec<T>, ProviderError> {
        raw.into_iter()
            .map(|r| T::from_raw(r).map_err(|e| self.http.bad_payload(endpoint, e)))
            .collect()
    }

    /// One page of `GET /crm/v3/objects/{type}` (all records, id order). `after` = the
    /// previous page's `next`.
    pub async fn list_page<T: HubspotObject>(
        &self,
        token: &Secret,
        after: Option<&str>,
    ) -> Result<Page<T>, ProviderError> {
        let endpoint = format!("GET /crm/v3/objects/{}", T::PATH);
        let url = join(&self.cfg.api_base, &format!("/crm/v3/objects/{}", T::PATH));
        let limit = self.cfg.page_size.clamp(1, 100).to_string();
        let props = T::PROPERTIES.join(",");
        let mut query: Vec<(&str, &str)> = vec![("limit", &limit), ("properties", &props)];
        if T::COMPANY_ASSOCIATIONS {
            query.push(("associations", "companies"));
        }
        if let Some(a) = after {
            query.push(("after", a));
        }
        let reply = self
            .send(token, &endpoint, || {
                self.http.client.get(&url).query(&query)
            })
            .await?;
        let r: ListResp = self.http.parse(&endpoint, &reply.body)?;
        Ok(Page {
            records: self.convert(&endpoint, r.results)?,
            next: r.paging.and_then(|p| p.next).map(|n| n.after),
        })
    }

    /// One page of `GET /crm/v3/objects/{type}?archived=true`: the archived (deleted) records
    /// with their `archivedAt`. HubSpot cannot filter this list by date; the caller does.
    pub async fn archived_page<T: HubspotObject>(
        &self,
        token: &Secret,
        after: Option<&str>,
    ) -> Result<Page<DeletedRecord>, ProviderError> {
        let endpoint = format!("GET /crm/v3/objects/{}?archived=true", T::PATH);
        let url = join(&self.cfg.api_base, &format!("/crm/v3/objects/{}", T::PATH));
        let limit = self.cfg.page_size.clamp(1, 100).to_string();
        let mut query: Vec<(&str, &str)> = vec![("limit", &limit), ("archived", "true")];
        if let Some(a) = after {
            query.push(("after", a));
        }
        let reply = self
            .send(token, &endpoint, || {
                self.http.client.get(&url).query(&query)
            })
            .await?;
        let r: ListResp = self.http.parse(&endpoint, &reply.body)?;
        let records = r
            .results
            .into_iter()
            .map(|o| archived_record(o).map_err(|e| self.http.bad_payload(&endpoint, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            records,
            next: r.paging.and_then(|p| p.next).map(|n| n.after),
        })
    }

    /// One page of records modified in `[from, to)`, oldest first, at offset `after`.
    /// Deals get their company associations filled in (search does not return them).
    pub async fn search_page<T: HubspotObject>(
        &self,
        token: &Secret,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: usize,
    ) -> Result<SearchPage<T>, ProviderError> {
        let endpoint = format!("POST /crm/v3/objects/{}/search", T::PATH);
        let url = join(
            &self.cfg.api_base,
            &format!("/crm/v3/objects/{}/search", T::PATH),
        );
        let body = json!({
            "filterGroups": [{"filters": [
                {"propertyName": T::MODIFIED, "operator": "GTE", "value": from.timestamp_millis().to_string()},
                {"propertyName": T::MODIFIED, "operator": "LT", "value": to.timestamp_millis().to_string()},
            ]}],
            "sorts": [{"propertyName": T::MODIFIED, "direction": "ASCENDING"}],
            "properties": T::PROPERTIES,
            "limit": self.cfg.page_size.clamp(1, 100),
            "after": after.to_string(),
        });
        let reply = self
            .send(token, &endpoint, || self.http.client.post(&url).json(&body))
            .await?;
        let r: SearchResp = self.http.parse(&endpoint, &reply.body)?;
        let next_after = match r.paging.and_then(|p| p.next) {
            Some(n) => Some(n.after.parse::<usize>().map_err(|_| {
                self.http.bad_payload(
                    &endpoint,
                    format!("paging.next.after {:?} is not an offset", n.after),
                )
            })?),
            None => None,
        };
        let mut records: Vec<T> = self.convert(&endpoint, r.results)?;
        if T::COMPANY_ASSOCIATIONS && !records.is_empty() {
            let ids: Vec<String> = records.iter().map(|r| r.id().to_string()).collect();
            let mut assoc = self.company_associations(token, T::PATH, &ids).await?;
            for rec in &mut records {
                let companies = assoc.remove(rec.id()).unwrap_or_default();
                rec.set_company_ids(companies);
            }
        }
        Ok(SearchPage {
            records,
            total: r.total,
            next_after,
        })
    }

    /// Company ids associated with each record (`POST /crm/v4/associations/{from}/companies/batch/read`).
    pub async fn company_associations(
        &self,
        token: &Secret,
        from_type: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, ProviderError> {
        let endpoint = format!("POST /crm/v4/associations/{from_type}/companies/batch/read");
        let url = join(
            &self.cfg.api_base,
            &format!("/crm/v4/associations/{from_type}/companies/batch/read"),
        );
        let mut out = HashMap::new();
        for chunk in ids.chunks(1000) {
            let body =
                json!({"inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
            let reply = self
                .send(token, &endpoint, || self.http.client.post(&url).json(&body))
                .await?;
            let r: AssocBatchResp = self.http.parse(&endpoint, &reply.body)?;
            for item in r.results {
                let to = item
                    .to
                    .iter()
                    .map(|t| match &t.to_object_id {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.insert(item.from.id, to);
            }
        }
        Ok(out)
    }

    /// Everything modified in `[since, until)`, page by page. Pass the time the sync run
    /// started as `until` and use it as the next run's `since`.
    pub fn modified_between<T: HubspotObject>(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> SearchWalker<T> {
        SearchWalker {
            pending: if since < until {
                vec![(since, until)]
            } else {
                vec![]
            },
            after: 0,
            _t: PhantomData,
        }
    }

    /// What HubSpot's token metadata says of `token`: the account (portal, "hub") it belongs to,
    /// which identifies the connection, and its scopes, which the token answer does not name.
    pub async fn token_info(&self, token: &Secret) -> Result<TokenInfo, ProviderError> {
        // The token is part of the path: keep it out of the endpoint name used in errors.
        let endpoint = "GET /oauth/v1/access-tokens/{token}";
        let url = join(
            &self.cfg.api_base,
            &format!("/oauth/v1/access-tokens/{}", token.expose()),
        );
        let reply = self
            .send(token, endpoint, || self.http.client.get(&url))
            .await?;
        let r: TokenInfoResp = self.http.parse(endpoint, &reply.body)?;
        Ok(TokenInfo {
            hub_id: r.hub_id.to_string(),
            scopes: r.scopes,
        })
    }

    /// Deal pipelines with each stage's outcome (won = closed at probability 1.0, lost = closed
    /// at 0.0).
    pub async fn deal_pipelines(&self, token: &Secret) -> Result<Vec<Pipeline>, ProviderError> {
        let endpoint = "GET /crm/v3/pipelines/deals";
        let url = join(&self.cfg.api_base, "/crm/v3/pipelines/deals");
        let reply = self
            .send(token, endpoint, || self.http.client.get(&url))
            .await?;
        let r: PipelinesResp = self.http.parse(endpoint, &reply.body)?;
        let meta = |m: &HashMap<String, Value>, k: &str| -> Option<String> {
            match m.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        Ok(r.results
            .into_iter()
            .map(|p| Pipeline {
                id: p.id,
                label: p.label,
                stages: p
                    .stages
                    .into_iter()
                    .map(|s| {
                        let closed = meta(&s.metadata, "isClosed").as_deref() == Some("true");
                        let probability =
                            meta(&s.metadata, "probability").and_then(|v| v.parse::<f64>().ok());
                        let outcome = match (closed, probability) {
                            (true, Some(p)) if p >= 1.0 => StageOutcome::Won,
                            (true, _) => StageOutcome::Lost,
                            (false, _) => StageOutcome::Open,
                        };
                        PipelineStage {
                            id: s.id,
                            label: s.label,
                            display_order: s.display_order,
                            outcome,
                            probability,
                        }
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Resumable incremental walk. Windows whose search would pass the paging cap are halved
/// until they fit; windows are visited oldest first. A failed call leaves the position as it
/// was, so the caller can refresh the token and call `next_page` again.
#[derive(Debug, Clone)]
pub struct SearchWalker<T> {
    pending: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    after: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: HubspotObject> SearchWalker<T> {
    pub async fn next_page(
        &mut self,
        client: &HubspotClient,
        token: &Secret,
    ) -> Result<Option<Vec<T>>, ProviderError> {
        while let Some(&(from, to)) = self.pending.last() {
            let page = client.search_page::<T>(token, from, to, self.after).await?;
            if self.after == 0 && page.total > client.cfg.search_cap {
                let span = to - from;
                if span <= chrono::Duration::milliseconds(1) {
                    return Err(client.http.request_error(
                        &format!("POST /crm/v3/objects/{}/search", T::PATH),
                        None,
                        format!(
                            "{} records modified within one millisecond at {from}: more than search can page",
                            page.total
                        ),
                    ));
                }
                let mid = from + span / 2;
                tracing::debug!(%from, %to, total = page.total, "search window over the cap, halving");
                self.pending.pop();
                self.pending.push((mid, to));
                self.pending.push((from, mid));
                continue;
            }
            match page.next_after {
                Some(n) => self.after = n,
                None => {
                    self.pending.pop();
                    self.after = 0;
                }
            }
            if page.records.is_empty() {
                continue;
            }
            return Ok(Some(page.records));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> RawObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn an_archived_entry_gives_its_id_and_archived_at() {
        let d = archived_record(raw(json!({"id": "7", "properties": {}, "archived": true,
            "archivedAt": "2025-06-10T08:00:00.000Z"})))
        .unwrap();
        assert_eq!(d.id, "7");
        assert_eq!(d.deleted_at.to_rfc3339(), "2025-06-10T08:00:00+00:00");
    }

    #[test]
    fn an_archived_entry_without_archived_at_or_flag_is_a_clear_error() {
        let e = archived_record(raw(json!({"id": "7", "archived": true}))).unwrap_err();
        assert!(e.contains("no archivedAt"), "{e}");
        let e = archived_record(raw(json!({"id": "7", "archived": false,
            "archivedAt": "2025-06-10T08:00:00.000Z"})))
        .unwrap_err();
        assert!(e.contains("not marked archived"), "{e}");
        let e = archived_record(raw(
            json!({"id": "7", "archived": true, "archivedAt": "yesterday"}),
        ))
        .unwrap_err();
        assert!(e.contains("bad datetime"), "{e}");
    }
}
