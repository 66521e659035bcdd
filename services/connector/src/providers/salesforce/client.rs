//! The Salesforce REST client: SOQL queries paged through `nextRecordsUrl` batches, the
//! deleted-records list, and opportunity stages.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::config::SalesforceConfig;
use super::records::{OpportunityStage, SalesforceObject, sf_time};
use super::soql::{incremental_soql, soql_datetime};
use crate::domain::checkpoint::deletion_signpost;
use crate::domain::provider::{
    DeletedRecord, Page, Provider, ProviderError, Secret, TokenRejection,
};
use crate::providers::http::{Http, Reply, excerpt, join};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResp<T> {
    total_size: usize,
    #[serde(default)]
    next_records_url: Option<String>,
    records: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJ {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
}

/// One batch of a query: records, the query's total, and the next batch's URL.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage<T> {
    pub records: Vec<T>,
    pub total_size: usize,
    /// `nextRecordsUrl` (relative to the instance), for [`SalesforceClient::query_more`].
    pub next: Option<String>,
}

impl<T> From<QueryPage<T>> for Page<T> {
    fn from(p: QueryPage<T>) -> Self {
        Page {
            records: p.records,
            next: p.next,
        }
    }
}

/// The answer of `sobjects/{SObject}/deleted/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedPage {
    pub records: Vec<DeletedRecord>,
    /// Deletions before this are no longer kept.
    pub earliest_available: Option<DateTime<Utc>>,
    /// The answer is complete up to here (`latestDateCovered`, at most `end`: the deletion
    /// index lags, and deletions after it are not listed yet).
    pub latest_covered: Option<DateTime<Utc>>,
}

impl DeletedPage {
    /// Where the next request for deletions starts, after this answer to a request from `from`
    /// by a pull whose signpost is `signpost`: see [`deletion_signpost`].
    pub fn next_start(&self, from: DateTime<Utc>, signpost: DateTime<Utc>) -> DateTime<Utc> {
        deletion_signpost(from, signpost, self.latest_covered)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedResp {
    deleted_records: Vec<DeletedJ>,
    #[serde(default)]
    earliest_date_available: Option<String>,
    #[serde(default)]
    latest_date_covered: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedJ {
    id: String,
    deleted_date: String,
}

#[derive(Clone, Debug)]
pub struct SalesforceClient {
    http: Http,
    cfg: SalesforceConfig,
}

impl SalesforceClient {
    pub fn new(cfg: SalesforceConfig, client: reqwest::Client) -> Self {
        SalesforceClient {
            http: Http {
                client,
                provider: Provider::Salesforce,
                retry: cfg.retry,
                max_body: cfg.max_response_bytes,
            },
            cfg,
        }
    }

    async fn get(
        &self,
        token: &Secret,
        endpoint: &str,
        url: &str,
        query: Option<&str>,
    ) -> Result<Reply, ProviderError> {
        let params: Vec<(&str, &str)> = query.map(|q| ("q", q)).into_iter().collect();
        self.get_with(token, endpoint, url, &params).await
    }

    async fn get_with(
        &self,
        token: &Secret,
        endpoint: &str,
        url: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, ProviderError> {
        let reply = self
            .http
            .execute(endpoint, || {
                let rb = self.http.client.get(url).bearer_auth(token.expose());
                if params.is_empty() {
                    rb
                } else {
                    rb.query(params)
                }
            })
            .await?;
        if reply.status.is_success() {
            return Ok(reply);
        }
        let errs: Option<Vec<ErrorJ>> = serde_json::from_slice(&reply.body).ok();
        let first = errs.and_then(|v| v.into_iter().next());
        let code = first
            .as_ref()
            .and_then(|e| e.error_code.clone())
            .unwrap_or_default();
        let message = first
            .and_then(|e| e.message)
            .unwrap_or_else(|| excerpt(&reply.body));
        let status = reply.status.as_u16();
        let usage = reply
            .headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        Err(match (status, code.as_str()) {
            (401, _) => ProviderError::Unauthorized {
                provider: Provider::Salesforce,
                reason: TokenRejection::Invalid,
                message,
            },
            (403, "REQUEST_LIMIT_EXCEEDED") => ProviderError::RateLimited {
                provider: Provider::Salesforce,
                retry_after: None,
                message: format!(
                    "daily API request limit exceeded ({}): {message}",
                    usage.unwrap_or_else(|| "usage unknown".into())
                ),
            },
            _ => self.http.request_error(
                endpoint,
                Some(status),
                format!("{code} {message}").trim().to_string(),
            ),
        })
    }

    fn parse_page<T: SalesforceObject>(
        &self,
        endpoint: &str,
        reply: &Reply,
    ) -> Result<QueryPage<T>, ProviderError> {
        let r: QueryResp<T> = self.http.parse(endpoint, &reply.body)?;
        Ok(QueryPage {
            records: r.records,
            total_size: r.total_size,
            next: r.next_records_url,
        })
    }

    /// First batch of a SOQL query.
    pub async fn query<T: SalesforceObject>(
        &self,
        token: &Secret,
        soql: &str,
    ) -> Result<QueryPage<T>, ProviderError> {
        let endpoint = format!(
            "GET /services/data/{}/query ({})",
            self.cfg.api_version,
            T::NAME
        );
        let url = join(
            &self.cfg.instance_url,
            &format!("/services/data/{}/query", self.cfg.api_version),
        );
        let reply = self.get(token, &endpoint, &url, Some(soql)).await?;
        self.parse_page(&endpoint, &reply)
    }

    /// First batch of everything modified at or after `since` (None = everything), ordered by
    /// `SystemModstamp, Id`. Continue with [`Self::query_more`].
    pub async fn modified_since<T: SalesforceObject>(
        &self,
        token: &Secret,
        since: Option<DateTime<Utc>>,
    ) -> Result<QueryPage<T>, ProviderError> {
        self.query(token, &incremental_soql::<T>(since)).await
    }

    /// The batch a `nextRecordsUrl` points to.
    pub async fn query_more<T: SalesforceObject>(
        &self,
        token: &Secret,
        next_records_url: &str,
    ) -> Result<QueryPage<T>, ProviderError> {
        let endpoint = format!("GET {} ({})", "/services/data/../query/<locator>", T::NAME);
        if !next_records_url.starts_with("/services/data/") {
            return Err(self.http.bad_payload(
                &endpoint,
                format!("nextRecordsUrl {next_records_url:?} is not an API path"),
            ));
        }
        let url = join(&self.cfg.instance_url, next_records_url);
        let reply = self.get(token, &endpoint, &url, None).await?;
        self.parse_page(&endpoint, &reply)
    }

    /// `GET sobjects/{T}/deleted/?start&end`: the records of `T` deleted in `[start, end]`.
    pub async fn deleted_between<T: SalesforceObject>(
        &self,
        token: &Secret,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedPage, ProviderError> {
        let path = format!(
            "/services/data/{}/sobjects/{}/deleted/",
            self.cfg.api_version,
            T::NAME
        );
        let endpoint = format!("GET {path}");
        let url = join(&self.cfg.instance_url, &path);
        let (s, e) = (soql_datetime(start), soql_datetime(end));
        let reply = self
            .get_with(token, &endpoint, &url, &[("start", &s), ("end", &e)])
            .await?;
        let r: DeletedResp = self.http.parse(&endpoint, &reply.body)?;
        let time = |v: &str| sf_time::parse(v).map_err(|e| self.http.bad_payload(&endpoint, e));
        let records = r
            .deleted_records
            .into_iter()
            .map(|d| {
                Ok(DeletedRecord {
                    deleted_at: time(&d.deleted_date)?,
                    id: d.id,
                })
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        Ok(DeletedPage {
            records,
            earliest_available: r.earliest_date_available.as_deref().map(time).transpose()?,
            latest_covered: r.latest_date_covered.as_deref().map(time).transpose()?,
        })
    }

    /// All opportunity stages (a small table: every batch is read).
    pub async fn opportunity_stages(
        &self,
        token: &Secret,
    ) -> Result<Vec<OpportunityStage>, ProviderError> {
        let mut page = self
            .query::<OpportunityStage>(
                token,
                &format!(
                    "SELECT {} FROM OpportunityStage",
                    OpportunityStage::FIELDS.join(", ")
                ),
            )
            .await?;
        let mut out = std::mem::take(&mut page.records);
        while let Some(next) = page.next.take() {
            page = self.query_more(token, &next).await?;
            out.append(&mut page.records);
        }
        Ok(out)
    }
}
