//! Salesforce REST client: SOQL queries with a `SystemModstamp >=` signpost ordered by
//! `SystemModstamp, Id`, paged through `nextRecordsUrl` batches.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::http::{Http, Reply, RetryPolicy, excerpt, join};
use crate::domain::provider::{
    DeletedRecord, Page, Provider, ProviderError, Secret, TokenRejection,
};

#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    /// The org's API base: the `instance_url` of the token response.
    pub instance_url: String,
    /// e.g. `v60.0`.
    pub api_version: String,
    pub retry: RetryPolicy,
}

impl SalesforceConfig {
    pub fn new(instance_url: &str) -> Self {
        SalesforceConfig {
            instance_url: instance_url.to_string(),
            api_version: "v60.0".into(),
            retry: RetryPolicy::default(),
        }
    }
}

/// An sObject the client can query incrementally.
pub trait SalesforceObject: Sized + DeserializeOwned + Send {
    const NAME: &'static str;
    const FIELDS: &'static [&'static str];
    fn system_modstamp(&self) -> Option<DateTime<Utc>>;
}

mod sf_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    /// Salesforce datetimes: `2025-01-31T12:00:00.000+0000`.
    pub fn parse(s: &str) -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
            .or_else(|_| DateTime::parse_from_rfc3339(s))
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("bad datetime {s:?}: {e}"))
    }

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// A JSON number as a decimal string (`12500.5` → `"12500.5"`, `12500.0` → `"12500"`).
fn decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let s = n.to_string();
            Some(match s.strip_suffix(".0") {
                Some(t) => t.to_string(),
                None => s,
            })
        }
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a number, got {other}"
            )));
        }
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
    pub website: Option<String>,
    pub billing_country: Option<String>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub created_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for Account {
    const NAME: &'static str = "Account";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "Name",
        "Website",
        "BillingCountry",
        "CreatedDate",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contact {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub account_id: Option<String>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for Contact {
    const NAME: &'static str = "Contact";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "FirstName",
        "LastName",
        "Email",
        "Title",
        "AccountId",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Opportunity {
    pub id: String,
    pub name: Option<String>,
    pub account_id: Option<String>,
    /// Decimal string.
    #[serde(default, deserialize_with = "decimal")]
    pub amount: Option<String>,
    /// Present in multi-currency orgs only.
    #[serde(default)]
    pub currency_iso_code: Option<String>,
    pub stage_name: Option<String>,
    #[serde(default)]
    pub close_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub created_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_closed: bool,
    #[serde(default)]
    pub is_won: bool,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for Opportunity {
    const NAME: &'static str = "Opportunity";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "Name",
        "AccountId",
        "Amount",
        "CurrencyIsoCode",
        "StageName",
        "CloseDate",
        "CreatedDate",
        "IsClosed",
        "IsWon",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpportunityStage {
    pub id: String,
    pub api_name: String,
    pub master_label: String,
    #[serde(default)]
    pub is_closed: bool,
    #[serde(default)]
    pub is_won: bool,
    #[serde(default)]
    pub sort_order: Option<i64>,
    /// Percent, 0..=100.
    #[serde(default)]
    pub default_probability: Option<f64>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for OpportunityStage {
    const NAME: &'static str = "OpportunityStage";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "ApiName",
        "MasterLabel",
        "IsClosed",
        "IsWon",
        "SortOrder",
        "DefaultProbability",
        "IsActive",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

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
    /// The answer is complete up to here.
    pub latest_covered: Option<DateTime<Utc>>,
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

/// SOQL datetime literal (UTC, milliseconds).
pub fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The incremental query: everything with `SystemModstamp >= since`, in a stable order.
pub fn incremental_soql<T: SalesforceObject>(since: Option<DateTime<Utc>>) -> String {
    let mut q = format!("SELECT {} FROM {}", T::FIELDS.join(", "), T::NAME);
    if let Some(s) = since {
        q.push_str(&format!(" WHERE SystemModstamp >= {}", soql_datetime(s)));
    }
    q.push_str(" ORDER BY SystemModstamp ASC, Id ASC");
    q
}

impl SalesforceClient {
    pub fn new(cfg: SalesforceConfig, client: reqwest::Client) -> Self {
        SalesforceClient {
            http: Http {
                client,
                provider: Provider::Salesforce,
                retry: cfg.retry,
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
