//! LinkedIn Marketing API client: ad accounts, ad analytics by member company and campaign
//! (split by date range so no response reaches the 15,000-element truncation), and batched
//! organization lookup (at most 100 ids a call).

use std::collections::HashMap;

use chrono::{Datelike, Days, NaiveDate};
use serde::Deserialize;

use super::http::{Http, Reply, RetryPolicy, excerpt, join};
use crate::domain::provider::{Page, Provider, ProviderError, Secret, TokenRejection};

/// The real API truncates adAnalytics responses at this many elements.
pub const ANALYTICS_CAP: usize = 15_000;
/// At most this many ids per organizations batch call.
pub const ORG_BATCH: usize = 100;

#[derive(Clone, Debug)]
pub struct LinkedinConfig {
    /// `https://api.linkedin.com` or `<sandbox>/linkedin`.
    pub api_base: String,
    /// `LinkedIn-Version` header, YYYYMM.
    pub version: String,
    /// Split a date range when a response has this many elements.
    pub analytics_cap: usize,
    /// Walks start with ranges of at most this many days (fewer wasted truncated calls).
    pub initial_chunk_days: u32,
    pub retry: RetryPolicy,
}

impl LinkedinConfig {
    pub fn new(api_base: &str) -> Self {
        LinkedinConfig {
            api_base: api_base.to_string(),
            version: "202501".into(),
            analytics_cap: ANALYTICS_CAP,
            initial_chunk_days: 31,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdAccount {
    pub id: u64,
    pub name: String,
    pub currency: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub id: u64,
    pub account_id: u64,
    pub name: String,
    pub status: String,
}

/// One day of one campaign's engagement with one member company.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngagementRow {
    pub org_id: u64,
    pub campaign_id: u64,
    pub date: NaiveDate,
    pub impressions: u64,
    pub clicks: u64,
    pub engagements: u64,
}

/// The rows of one date range.
#[derive(Clone, Debug, PartialEq)]
pub struct EngagementChunk {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub rows: Vec<EngagementRow>,
    /// The provider truncated a single day (cannot split further): rows are incomplete.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: u64,
    pub localized_name: String,
    pub vanity_name: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub industries: Vec<String>,
    pub staff_count_range: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationLookup {
    pub found: Vec<Organization>,
    /// Ids LinkedIn did not return (404 or another per-id error).
    pub missing: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct LinkedinClient {
    http: Http,
    cfg: LinkedinConfig,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct AccountsResp {
    elements: Vec<AccountJ>,
    #[serde(default)]
    paging: Option<PagingJ>,
}

#[derive(Deserialize)]
struct AccountJ {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct CampaignsResp {
    elements: Vec<CampaignJ>,
    #[serde(default)]
    paging: Option<PagingJ>,
}

#[derive(Deserialize)]
struct CampaignJ {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct PagingJ {
    #[serde(default)]
    total: Option<usize>,
}

#[derive(Deserialize)]
struct AnalyticsResp {
    elements: Vec<AnalyticsJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnalyticsJ {
    pivot_values: Vec<String>,
    date_range: DateRangeJ,
    #[serde(default)]
    impressions: u64,
    #[serde(default)]
    clicks: u64,
    #[serde(default)]
    total_engagements: u64,
}

#[derive(Deserialize)]
struct DateRangeJ {
    start: DateJ,
}

#[derive(Deserialize)]
struct DateJ {
    year: i32,
    month: u32,
    day: u32,
}

#[derive(Deserialize)]
struct OrgsResp {
    #[serde(default)]
    results: HashMap<String, OrgJ>,
    #[serde(default)]
    statuses: HashMap<String, u16>,
    #[serde(default)]
    errors: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgJ {
    id: u64,
    #[serde(default)]
    localized_name: String,
    #[serde(default)]
    vanity_name: Option<String>,
    #[serde(default)]
    localized_website: Option<String>,
    #[serde(default)]
    industries: Vec<String>,
    #[serde(default)]
    staff_count_range: Option<String>,
    #[serde(default)]
    locations: Vec<LocationJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationJ {
    #[serde(default)]
    location_type: Option<String>,
    #[serde(default)]
    address: Option<AddressJ>,
}

#[derive(Deserialize)]
struct AddressJ {
    #[serde(default)]
    country: Option<String>,
}

fn restli_date(d: NaiveDate) -> String {
    format!("(year:{},month:{},day:{})", d.year(), d.month(), d.day())
}

fn urn_id(urn: &str, prefix: &str) -> Option<u64> {
    urn.strip_prefix(prefix)?.parse().ok()
}

impl LinkedinClient {
    pub fn new(cfg: LinkedinConfig, client: reqwest::Client) -> Self {
        LinkedinClient {
            http: Http {
                client,
                provider: Provider::Linkedin,
                retry: cfg.retry,
            },
            cfg,
        }
    }

    /// GET a `/rest` path (query already Rest.li-encoded); non-2xx classified.
    async fn get(
        &self,
        token: &Secret,
        endpoint: &str,
        path_and_query: &str,
    ) -> Result<Reply, ProviderError> {
        let url = join(&self.cfg.api_base, path_and_query);
        let reply = self
            .http
            .execute(endpoint, || {
                self.http
                    .client
                    .get(&url)
                    .bearer_auth(token.expose())
                    .header("LinkedIn-Version", &self.cfg.version)
                    .header("X-Restli-Protocol-Version", "2.0.0")
            })
            .await?;
        if reply.status.is_success() {
            return Ok(reply);
        }
        let err: Option<ApiError> = serde_json::from_slice(&reply.body).ok();
        let code = err
            .as_ref()
            .and_then(|e| e.code.clone())
            .unwrap_or_default();
        let message = err
            .and_then(|e| e.message)
            .unwrap_or_else(|| excerpt(&reply.body));
        let status = reply.status.as_u16();
        Err(match status {
            401 => ProviderError::Unauthorized {
                provider: Provider::Linkedin,
                reason: match code.as_str() {
                    "EXPIRED_ACCESS_TOKEN" => TokenRejection::Expired,
                    "REVOKED_ACCESS_TOKEN" => TokenRejection::Revoked,
                    _ => TokenRejection::Invalid,
                },
                message,
            },
            429 => ProviderError::RateLimited {
                provider: Provider::Linkedin,
                retry_after: None,
                message,
            },
            _ => self.http.request_error(
                endpoint,
                Some(status),
                format!("{code} {message}").trim().to_string(),
            ),
        })
    }

    /// One page of ad accounts (`q=search`), `start` = offset.
    pub async fn ad_accounts(
        &self,
        token: &Secret,
        start: usize,
    ) -> Result<Page<AdAccount>, ProviderError> {
        const COUNT: usize = 100;
        let endpoint = "GET /rest/adAccounts";
        let reply = self
            .get(
                token,
                endpoint,
                &format!("/rest/adAccounts?q=search&start={start}&count={COUNT}"),
            )
            .await?;
        let r: AccountsResp = self.http.parse(endpoint, &reply.body)?;
        let n = r.elements.len();
        let total = r.paging.and_then(|p| p.total);
        let more = match total {
            Some(t) => start + n < t,
            None => n == COUNT,
        };
        Ok(Page {
            records: r
                .elements
                .into_iter()
                .map(|a| AdAccount {
                    id: a.id,
                    name: a.name,
                    currency: a.currency,
                    status: a.status,
                })
                .collect(),
            next: (more && n > 0).then(|| (start + n).to_string()),
        })
    }

    /// One page of an ad account's campaigns (`/rest/adAccounts/{id}/adCampaigns?q=search`).
    pub async fn campaigns(
        &self,
        token: &Secret,
        account_id: u64,
        start: usize,
    ) -> Result<Page<Campaign>, ProviderError> {
        const COUNT: usize = 100;
        let endpoint = "GET /rest/adAccounts/{id}/adCampaigns";
        let reply = self
            .get(
                token,
                endpoint,
                &format!(
                    "/rest/adAccounts/{account_id}/adCampaigns?q=search&start={start}&count={COUNT}"
                ),
            )
            .await?;
        let r: CampaignsResp = self.http.parse(endpoint, &reply.body)?;
        let n = r.elements.len();
        let more = match r.paging.and_then(|p| p.total) {
            Some(t) => start + n < t,
            None => n == COUNT,
        };
        Ok(Page {
            records: r
                .elements
                .into_iter()
                .map(|c| Campaign {
                    id: c.id,
                    account_id,
                    name: c.name,
                    status: c.status,
                })
                .collect(),
            next: (more && n > 0).then(|| (start + n).to_string()),
        })
    }

    /// One adAnalytics call: daily rows by (member company, campaign) for the accounts over
    /// `start..=end`. Returns the rows and whether the response hit the truncation cap.
    pub async fn analytics(
        &self,
        token: &Secret,
        account_ids: &[u64],
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<(Vec<EngagementRow>, bool), ProviderError> {
        let endpoint = "GET /rest/adAnalytics";
        let accounts: Vec<String> = account_ids
            .iter()
            .map(|id| format!("urn%3Ali%3AsponsoredAccount%3A{id}"))
            .collect();
        let path = format!(
            "/rest/adAnalytics?q=statistics&pivots=List(MEMBER_COMPANY,CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:{},end:{})&accounts=List({})&fields=impressions,clicks,totalEngagements,dateRange,pivotValues",
            restli_date(start),
            restli_date(end),
            accounts.join(",")
        );
        let reply = self.get(token, endpoint, &path).await?;
        let r: AnalyticsResp = self.http.parse(endpoint, &reply.body)?;
        let capped = r.elements.len() >= self.cfg.analytics_cap;
        let mut rows = Vec::with_capacity(r.elements.len());
        for e in r.elements {
            let org = e
                .pivot_values
                .iter()
                .find_map(|v| urn_id(v, "urn:li:organization:"));
            let campaign = e
                .pivot_values
                .iter()
                .find_map(|v| urn_id(v, "urn:li:sponsoredCampaign:"));
            let (Some(org_id), Some(campaign_id)) = (org, campaign) else {
                return Err(self.http.bad_payload(
                    endpoint,
                    format!(
                        "pivotValues {:?} lack an organization or campaign URN",
                        e.pivot_values
                    ),
                ));
            };
            let d = &e.date_range.start;
            let Some(date) = NaiveDate::from_ymd_opt(d.year, d.month, d.day) else {
                return Err(self
                    .http
                    .bad_payload(endpoint, "dateRange.start is not a date"));
            };
            rows.push(EngagementRow {
                org_id,
                campaign_id,
                date,
                impressions: e.impressions,
                clicks: e.clicks,
                engagements: e.total_engagements,
            });
        }
        Ok((rows, capped))
    }

    /// Walk `start..=end` in date ranges small enough never to be truncated.
    pub fn engagement(
        &self,
        account_ids: Vec<u64>,
        start: NaiveDate,
        end: NaiveDate,
    ) -> EngagementWalker {
        let step = u64::from(self.cfg.initial_chunk_days.max(1));
        let mut ranges = Vec::new();
        let mut from = start;
        while from <= end {
            let to = from
                .checked_add_days(Days::new(step - 1))
                .map_or(end, |t| t.min(end));
            ranges.push((from, to));
            match to.succ_opt() {
                Some(next) => from = next,
                None => break,
            }
        }
        ranges.reverse();
        EngagementWalker {
            accounts: account_ids,
            pending: ranges,
        }
    }

    /// Look organizations up, 100 ids per call.
    pub async fn organizations(
        &self,
        token: &Secret,
        ids: &[u64],
    ) -> Result<OrganizationLookup, ProviderError> {
        let mut out = OrganizationLookup::default();
        for batch in ids.chunks(ORG_BATCH) {
            let part = self.organizations_batch(token, batch).await?;
            out.found.extend(part.found);
            out.missing.extend(part.missing);
        }
        Ok(out)
    }

    /// One batch call (at most 100 ids).
    pub async fn organizations_batch(
        &self,
        token: &Secret,
        ids: &[u64],
    ) -> Result<OrganizationLookup, ProviderError> {
        let endpoint = "GET /rest/organizations";
        if ids.is_empty() {
            return Ok(OrganizationLookup::default());
        }
        if ids.len() > ORG_BATCH {
            return Err(self.http.request_error(
                endpoint,
                None,
                format!("{} ids in one batch (at most {ORG_BATCH})", ids.len()),
            ));
        }
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let reply = self
            .get(
                token,
                endpoint,
                &format!("/rest/organizations?ids=List({})", list.join(",")),
            )
            .await?;
        let r: OrgsResp = self.http.parse(endpoint, &reply.body)?;
        let mut out = OrganizationLookup::default();
        for id in ids {
            let key = id.to_string();
            match r.results.get(&key) {
                Some(o) if r.statuses.get(&key).is_none_or(|s| *s == 200) => {
                    let country = o
                        .locations
                        .iter()
                        .find(|l| l.location_type.as_deref() == Some("HEADQUARTERS"))
                        .or_else(|| o.locations.first())
                        .and_then(|l| l.address.as_ref())
                        .and_then(|a| a.country.clone());
                    out.found.push(Organization {
                        id: o.id,
                        localized_name: o.localized_name.clone(),
                        vanity_name: o.vanity_name.clone(),
                        website: o.localized_website.clone(),
                        country,
                        industries: o.industries.clone(),
                        staff_count_range: o.staff_count_range.clone(),
                    });
                }
                _ => {
                    if !r.errors.contains_key(&key) && !r.statuses.contains_key(&key) {
                        tracing::debug!(org_id = id, "organization absent from batch response");
                    }
                    out.missing.push(*id);
                }
            }
        }
        Ok(out)
    }
}

/// Resumable walk over a date range: a failed call (e.g. an expired token) leaves the range
/// pending, so the caller can refresh and call `next_chunk` again.
#[derive(Clone, Debug)]
pub struct EngagementWalker {
    accounts: Vec<u64>,
    /// Stack of ranges still to fetch; the top is the earliest.
    pending: Vec<(NaiveDate, NaiveDate)>,
}

impl EngagementWalker {
    /// The next chunk of rows in date order, or `None` when done.
    pub async fn next_chunk(
        &mut self,
        client: &LinkedinClient,
        token: &Secret,
    ) -> Result<Option<EngagementChunk>, ProviderError> {
        while let Some(&(start, end)) = self.pending.last() {
            let (rows, capped) = client.analytics(token, &self.accounts, start, end).await?;
            self.pending.pop();
            if capped && start < end {
                let days = (end - start).num_days().max(1) as u64;
                let mid = start + Days::new(days / 2);
                tracing::debug!(%start, %end, %mid, "adAnalytics hit the cap, splitting the range");
                self.pending.push((mid + Days::new(1), end));
                self.pending.push((start, mid));
                continue;
            }
            if capped {
                tracing::warn!(%start, "adAnalytics truncated a single day; rows are incomplete");
            }
            return Ok(Some(EngagementChunk {
                start,
                end,
                rows,
                truncated: capped,
            }));
        }
        Ok(None)
    }
}
