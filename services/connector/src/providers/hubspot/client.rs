//! The HubSpot CRM client: paged lists, the archived list, searches on the last-modified
//! date, deal-to-company associations, deal pipelines and token metadata, every call through
//! the rate limiter.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::config::HubspotConfig;
use super::rate_limit::{RateLimiter, header_u64};
use super::records::{HubspotObject, Pipeline, RawObject, archived_record};
use super::search::{SearchQuery, SearchWalker};
use super::wire::{AssocBatchResp, ErrorJ, ListResp, PipelinesResp, SearchResp, TokenInfoResp};
use crate::domain::provider::{
    DeletedRecord, Page, Provider, ProviderError, Secret, TokenRejection,
};
use crate::providers::http::{Http, Reply, excerpt, join};

/// HubSpot's token metadata, the part we keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub hub_id: String,
    pub scopes: Vec<String>,
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

#[derive(Debug)]
pub struct HubspotClient {
    pub(super) http: Http,
    pub(super) cfg: HubspotConfig,
    limiter: RateLimiter,
    /// The search endpoints' own limit (HubSpot documents about 5 requests per second per
    /// account, apart from the general one). Search answers carry no rate-limit headers, so
    /// this budget is fixed and never switched off by their absence.
    search_limiter: RateLimiter,
}

/// Which of HubSpot's budgets a request spends.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    General,
    /// CRM search: its own budget, and the general one too (conservatively), without learning
    /// anything from the answer's (absent) headers.
    Search,
}

impl HubspotClient {
    pub fn new(cfg: HubspotConfig, client: reqwest::Client) -> Self {
        HubspotClient {
            http: Http {
                client,
                provider: Provider::Hubspot,
                retry: cfg.retry,
                max_body: cfg.max_response_bytes,
            },
            limiter: RateLimiter::new(cfg.default_limit.0, cfg.default_limit.1),
            search_limiter: RateLimiter::fixed(cfg.search_limit.0, cfg.search_limit.1),
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
        self.send_on(Budget::General, token, endpoint, make).await
    }

    async fn send_on(
        &self,
        budget: Budget,
        token: &Secret,
        endpoint: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, ProviderError> {
        let mut throttled = 0;
        loop {
            if budget == Budget::Search {
                self.search_limiter.acquire().await?;
            }
            self.limiter.acquire().await?;
            let result = self
                .http
                .execute(endpoint, || make().bearer_auth(token.expose()))
                .await;
            if budget == Budget::Search {
                self.search_limiter.release(None);
            }
            let reply = match result {
                Ok(r) => r,
                Err(e) => {
                    self.limiter.release(None);
                    return Err(e);
                }
            };
            // Only the general endpoints' answers say anything of the general budget.
            self.limiter.release(match budget {
                Budget::General => Some(&reply.headers),
                Budget::Search => None,
            });
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
                    match budget {
                        Budget::General => self.limiter.saturate(),
                        Budget::Search => self.search_limiter.saturate(),
                    }
                    if let Some(secs) = header_u64(&reply.headers, "retry-after") {
                        // Bounded: a Retry-After of years must not park the pull (issue 15.10).
                        let wait = Duration::from_secs(secs).min(self.cfg.max_retry_after);
                        tokio::time::sleep(wait).await;
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
        query: &SearchQuery,
    ) -> Result<SearchPage<T>, ProviderError> {
        let endpoint = format!("POST /crm/v3/objects/{}/search", T::PATH);
        let url = join(
            &self.cfg.api_base,
            &format!("/crm/v3/objects/{}/search", T::PATH),
        );
        let ms = |t: &DateTime<Utc>| t.timestamp_millis().to_string();
        let (filters, sort) = match query {
            SearchQuery::Time { from, until } => (
                vec![
                    json!({"propertyName": T::MODIFIED, "operator": "GTE", "value": ms(from)}),
                    json!({"propertyName": T::MODIFIED, "operator": "LT", "value": ms(until)}),
                ],
                T::MODIFIED,
            ),
            SearchQuery::Millisecond { at, after_id } => {
                let mut f = vec![
                    json!({"propertyName": T::MODIFIED, "operator": "GTE", "value": ms(at)}),
                    json!({"propertyName": T::MODIFIED, "operator": "LT",
                           "value": ms(&(*at + chrono::Duration::milliseconds(1)))}),
                ];
                if let Some(id) = after_id {
                    f.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": id}));
                }
                (f, "hs_object_id")
            }
        };
        let body = json!({
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": T::PROPERTIES,
            "limit": self.cfg.page_size.clamp(1, 100),
            "after": "0",
        });
        let reply = self
            .send_on(Budget::Search, token, &endpoint, || {
                self.http.client.post(&url).json(&body)
            })
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
        SearchWalker::new(since, until)
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
        Ok(r.results.into_iter().map(Pipeline::from).collect())
    }
}
