//! The LinkedIn Marketing API client: ad accounts, campaigns, ad analytics and organization
//! lookup, one call per method.

use chrono::NaiveDate;

use super::config::{LinkedinConfig, ORG_BATCH};
use super::engagement::EngagementWalker;
use super::records::{AdAccount, Campaign, EngagementRow, Organization, OrganizationLookup};
use super::wire::{
    AccountUsersResp, AccountsResp, AnalyticsResp, ApiError, CampaignsResp, OrgsResp, restli_date,
    urn_id,
};
use crate::domain::provider::{Page, Provider, ProviderError, Secret, TokenRejection};
use crate::providers::http::{Http, Reply, excerpt, join};

#[derive(Clone, Debug)]
pub struct LinkedinClient {
    http: Http,
    cfg: LinkedinConfig,
}

impl LinkedinClient {
    pub fn new(cfg: LinkedinConfig, client: reqwest::Client) -> Self {
        LinkedinClient {
            http: Http {
                client,
                provider: Provider::Linkedin,
                retry: cfg.retry,
                max_body: cfg.max_response_bytes,
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
            // LinkedIn answers 426 for a version that is not (or no longer) active.
            426 => ProviderError::ApiVersionRefused {
                provider: Provider::Linkedin,
                endpoint: endpoint.to_string(),
                version: self.cfg.version.clone(),
                message: format!("{code} {message}").trim().to_string(),
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

    /// The authenticated member (a person URN), as their ad account roles name them
    /// (`/rest/adAccountUsers?q=authenticatedUser`, which the `r_ads` scope allows); `None` when
    /// they have no role on any ad account.
    pub async fn authenticated_member(
        &self,
        token: &Secret,
    ) -> Result<Option<String>, ProviderError> {
        let endpoint = "GET /rest/adAccountUsers";
        let reply = self
            .get(token, endpoint, "/rest/adAccountUsers?q=authenticatedUser")
            .await?;
        let r: AccountUsersResp = self.http.parse(endpoint, &reply.body)?;
        Ok(r.elements
            .into_iter()
            .map(|e| e.user)
            .find(|u| !u.trim().is_empty()))
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
        self.analytics_by(
            token,
            "accounts",
            "sponsoredAccount",
            account_ids,
            start,
            end,
        )
        .await
    }

    /// The same for campaigns (`campaigns=List(..)`), to split an account's day finer.
    pub async fn analytics_of_campaigns(
        &self,
        token: &Secret,
        campaign_ids: &[u64],
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<(Vec<EngagementRow>, bool), ProviderError> {
        self.analytics_by(
            token,
            "campaigns",
            "sponsoredCampaign",
            campaign_ids,
            start,
            end,
        )
        .await
    }

    async fn analytics_by(
        &self,
        token: &Secret,
        facet: &str,
        urn_type: &str,
        ids: &[u64],
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<(Vec<EngagementRow>, bool), ProviderError> {
        let endpoint = "GET /rest/adAnalytics";
        let urns: Vec<String> = ids
            .iter()
            .map(|id| format!("urn%3Ali%3A{urn_type}%3A{id}"))
            .collect();
        let path = format!(
            "/rest/adAnalytics?q=statistics&pivots=List(MEMBER_COMPANY,CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:{},end:{})&{facet}=List({})&fields=impressions,clicks,totalEngagements,dateRange,pivotValues",
            restli_date(start),
            restli_date(end),
            urns.join(",")
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

    /// Walk `start..=end` in queries small enough never to be truncated (see
    /// [`EngagementWalker::split_by_campaign`] to split an account's day by campaign).
    pub fn engagement(
        &self,
        account_ids: Vec<u64>,
        start: NaiveDate,
        end: NaiveDate,
    ) -> EngagementWalker {
        EngagementWalker::new(account_ids, start, end, self.cfg.initial_chunk_days)
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
