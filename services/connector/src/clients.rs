//! Provider clients built from configuration: one OAuth client per provider for the whole
//! process, and API clients per pull job (HubSpot's rate limiter is per account, and Salesforce's
//! API base is the instance of the connected org).

use std::time::Duration;

use crate::config::ConnectorConfig;
use crate::domain::provider::{Provider, ProviderError};
use crate::providers::RetryPolicy;
use crate::providers::hubspot::{HubspotClient, HubspotConfig};
use crate::providers::linkedin::{LinkedinClient, LinkedinConfig};
use crate::providers::oauth::{OAuthClient, OAuthConfig};
use crate::providers::salesforce::{SalesforceClient, SalesforceConfig};

#[derive(Debug, Clone)]
pub struct Clients {
    pub http: reqwest::Client,
    retry: RetryPolicy,
    linkedin_api: String,
    hubspot_api: String,
    linkedin_analytics_cap: usize,
    linkedin_api_version: String,
    max_response_bytes: usize,
    max_pages: u64,
    max_retry_after: std::time::Duration,
    oauth: [OAuthClient; 3],
}

fn index(p: Provider) -> usize {
    match p {
        Provider::Linkedin => 0,
        Provider::Hubspot => 1,
        Provider::Salesforce => 2,
    }
}

impl Clients {
    pub fn new(cfg: &ConnectorConfig) -> Result<Self, ProviderError> {
        let http = crate::providers::http_client(cfg.providers.http_timeout).map_err(|e| {
            ProviderError::Request {
                provider: Provider::Linkedin,
                endpoint: "http client".into(),
                status: None,
                message: e.to_string(),
            }
        })?;
        let retry = RetryPolicy {
            max_attempts: cfg.providers.attempts,
            base_delay: cfg.providers.retry_delay,
            max_delay: Duration::from_secs(10).max(cfg.providers.retry_delay),
        };
        let p = &cfg.providers;
        let redirect = &cfg.redirect_url;
        let mut li = OAuthConfig::linkedin(
            &p.linkedin.auth_base,
            &p.linkedin.client_id,
            p.linkedin.client_secret.clone(),
            redirect,
        );
        let mut hs = OAuthConfig::hubspot(
            &p.hubspot.auth_base,
            &p.hubspot.api_base,
            &p.hubspot.client_id,
            p.hubspot.client_secret.clone(),
            redirect,
        );
        let mut sf = OAuthConfig::salesforce(
            &p.salesforce.auth_base,
            &p.salesforce.client_id,
            p.salesforce.client_secret.clone(),
            redirect,
        );
        li.retry = retry;
        hs.retry = retry;
        sf.retry = retry;
        Ok(Self {
            oauth: [
                OAuthClient::new(li, http.clone())?,
                OAuthClient::new(hs, http.clone())?,
                OAuthClient::new(sf, http.clone())?,
            ],
            linkedin_api: p.linkedin.api_base.clone(),
            hubspot_api: p.hubspot.api_base.clone(),
            linkedin_analytics_cap: p.linkedin_analytics_cap,
            linkedin_api_version: p.linkedin_api_version.clone(),
            max_response_bytes: p.max_response_bytes,
            max_pages: p.max_pages,
            max_retry_after: p.max_retry_after,
            retry,
            http,
        })
    }

    pub fn oauth(&self, p: Provider) -> &OAuthClient {
        &self.oauth[index(p)]
    }

    pub fn linkedin(&self) -> LinkedinClient {
        let mut cfg = LinkedinConfig::new(&self.linkedin_api);
        cfg.retry = self.retry;
        cfg.analytics_cap = self.linkedin_analytics_cap;
        cfg.version = self.linkedin_api_version.clone();
        cfg.max_response_bytes = self.max_response_bytes;
        LinkedinClient::new(cfg, self.http.clone())
    }

    pub fn hubspot(&self) -> HubspotClient {
        let mut cfg = HubspotConfig::new(&self.hubspot_api);
        cfg.retry = self.retry;
        cfg.max_response_bytes = self.max_response_bytes;
        cfg.max_retry_after = self.max_retry_after;
        HubspotClient::new(cfg, self.http.clone())
    }

    pub fn salesforce(&self, instance_url: &str) -> SalesforceClient {
        let mut cfg = SalesforceConfig::new(instance_url);
        cfg.retry = self.retry;
        cfg.max_response_bytes = self.max_response_bytes;
        SalesforceClient::new(cfg, self.http.clone())
    }

    /// The most pages one paged read of one object may take in one run (`CONNECTOR_MAX_PAGES`).
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }
}
