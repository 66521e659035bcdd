//! Shared by the providers_* tests: a sandbox per test, OAuth clients wired to it, admin calls.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use connector::domain::provider::{Provider, Secret};
use connector::providers::oauth::{OAuthClient, OAuthConfig, TokenSet};
use connector::providers::{RetryPolicy, http_client};
use sandbox::{Provider as SbProvider, Sandbox, SandboxConfig};
use serde_json::Value;

pub const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

/// Retries fast so outage tests do not wait on production backoff.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

pub struct Env {
    pub sb: Sandbox,
    pub http: reqwest::Client,
}

pub fn sb_provider(p: Provider) -> SbProvider {
    match p {
        Provider::Linkedin => SbProvider::Linkedin,
        Provider::Hubspot => SbProvider::Hubspot,
        Provider::Salesforce => SbProvider::Salesforce,
    }
}

pub async fn start(config: SandboxConfig) -> Env {
    let sb = Sandbox::spawn(config).await.expect("sandbox starts");
    let http = http_client(Duration::from_secs(10)).expect("http client");
    Env { sb, http }
}

impl Env {
    pub fn url(&self, p: Provider) -> String {
        self.sb.url(sb_provider(p))
    }

    pub fn oauth_config(&self, p: Provider) -> OAuthConfig {
        let base = self.url(p);
        let c = self.sb.client(sb_provider(p));
        let secret = Secret::new(c.client_secret.clone());
        let mut cfg = match p {
            Provider::Linkedin => OAuthConfig::linkedin(&base, &c.client_id, secret, REDIRECT),
            Provider::Hubspot => OAuthConfig::hubspot(&base, &base, &c.client_id, secret, REDIRECT),
            Provider::Salesforce => OAuthConfig::salesforce(&base, &c.client_id, secret, REDIRECT),
        };
        cfg.retry = fast_retry();
        cfg
    }

    pub fn oauth(&self, p: Provider) -> OAuthClient {
        OAuthClient::new(self.oauth_config(p), self.http.clone()).expect("oauth client")
    }

    /// Follow the authorize redirect like a browser would, return the callback query.
    pub async fn authorize(&self, oauth: &OAuthClient, state: &str) -> (String, Secret) {
        let start = oauth.authorize_url(state);
        let resp = self.http.get(&start.url).send().await.expect("authorize");
        assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
        let loc = resp.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        let query = loc
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        (query, start.pkce_verifier)
    }

    pub async fn connect(&self, p: Provider) -> TokenSet {
        let oauth = self.oauth(p);
        let (query, verifier) = self.authorize(&oauth, "state-123").await;
        let cb = oauth.parse_callback(&query).expect("callback has a code");
        assert_eq!(cb.state.as_deref(), Some("state-123"));
        oauth
            .exchange_code(&cb.code, &verifier)
            .await
            .expect("code exchange")
    }

    pub async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.sb.admin_url(), path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, url);
        if !body.is_null() {
            rb = rb.json(&body);
        }
        let resp = rb.send().await.expect("admin call");
        assert!(
            resp.status().is_success(),
            "{method} {path}: {}",
            resp.status()
        );
        resp.json().await.expect("admin json")
    }

    pub async fn clock(&self) -> DateTime<Utc> {
        let ms = self.admin("GET", "/clock", Value::Null).await["now_ms"]
            .as_i64()
            .expect("now_ms");
        DateTime::from_timestamp_millis(ms).expect("valid time")
    }

    pub async fn requests(&self, p: Provider) -> Vec<Value> {
        let path = format!("/requests?provider={}", sb_provider(p));
        self.admin("GET", &path, Value::Null).await["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
