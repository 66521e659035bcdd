//! One provider's OAuth client: the authorize URL with PKCE, the callback, the code exchange
//! and the refresh, with failures classified as [`ProviderError`]s.

use std::fmt;
use std::time::Duration;

use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenUrl,
};

use super::adapter::{AdapterError, Client, ReqwestAdapter};
use super::config::OAuthConfig;
use super::wire::{ProviderTokenError, ProviderTokenResponse};
use crate::domain::failure::{RefreshPolicy, grant_refusal};
use crate::domain::provider::{Provider, ProviderError, Secret};

/// Tokens from a code exchange or a refresh.
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access_token: Secret,
    /// After a refresh: the new refresh token if the provider rotated it, else the one used.
    pub refresh_token: Option<Secret>,
    /// True when a refresh returned a different refresh token: store it.
    pub refresh_token_rotated: bool,
    /// Access token lifetime; Salesforce does not say.
    pub expires_in: Option<Duration>,
    /// LinkedIn only.
    pub refresh_token_expires_in: Option<Duration>,
    pub scope: Option<String>,
    /// Salesforce: the API base for this org.
    pub instance_url: Option<String>,
    /// Salesforce: the identity URL (`.../id/<org id>/<user id>`), which names the org.
    pub identity: Option<String>,
}

/// What to send the user to, and what to keep until the callback (keyed by `state`).
#[derive(Debug)]
pub struct AuthorizationStart {
    pub url: String,
    pub state: String,
    pub pkce_verifier: Secret,
}

/// The provider's redirect back to us, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub code: Secret,
    pub state: Option<String>,
}

/// One provider's OAuth client.
#[derive(Clone)]
pub struct OAuthClient {
    cfg: OAuthConfig,
    http: reqwest::Client,
    inner: Client,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.cfg.provider)
            .field("token_url", &self.cfg.token_url)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    Code,
    Refresh,
}

impl OAuthClient {
    pub fn new(cfg: OAuthConfig, http: reqwest::Client) -> Result<Self, ProviderError> {
        let bad = |what: &str, e: oauth2::url::ParseError| ProviderError::Request {
            provider: cfg.provider,
            endpoint: "oauth configuration".into(),
            status: None,
            message: format!("invalid {what}: {e}"),
        };
        let inner = oauth2::Client::new(ClientId::new(cfg.client_id.clone()))
            .set_client_secret(ClientSecret::new(cfg.client_secret.expose().to_string()))
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(
                AuthUrl::new(cfg.authorize_url.clone()).map_err(|e| bad("authorize URL", e))?,
            )
            .set_token_uri(TokenUrl::new(cfg.token_url.clone()).map_err(|e| bad("token URL", e))?)
            .set_redirect_uri(
                RedirectUrl::new(cfg.redirect_uri.clone()).map_err(|e| bad("redirect URI", e))?,
            );
        Ok(OAuthClient { cfg, http, inner })
    }

    pub fn provider(&self) -> Provider {
        self.cfg.provider
    }

    /// How long this provider's refresh tokens live.
    pub fn refresh_policy(&self) -> RefreshPolicy {
        self.cfg.refresh_policy
    }

    /// The URL to send the user to, with the caller's `state` and, where the provider takes it
    /// ([`OAuthConfig::pkce`]), PKCE S256. Keep the verifier (server side, keyed by state) until
    /// the callback; it is not sent where PKCE is not used.
    pub fn authorize_url(&self, state: &str) -> AuthorizationStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state_owned = state.to_string();
        let mut request = self
            .inner
            .authorize_url(move || CsrfToken::new(state_owned))
            .add_scopes(self.cfg.scopes.iter().cloned().map(Scope::new));
        if self.cfg.pkce {
            request = request.set_pkce_challenge(challenge);
        }
        let (url, csrf) = request.url();
        AuthorizationStart {
            url: url.to_string(),
            state: csrf.secret().clone(),
            pkce_verifier: Secret::new(verifier.secret().clone()),
        }
    }

    /// Parse the query string of the redirect back to us (`code=..&state=..` or
    /// `error=..&error_description=..`).
    pub fn parse_callback(&self, query: &str) -> Result<Callback, ProviderError> {
        let pairs: Vec<(String, String)> = oauth2::url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        if let Some(error) = get("error") {
            return Err(ProviderError::Denied {
                provider: self.cfg.provider,
                error,
                description: get("error_description").unwrap_or_default(),
            });
        }
        match get("code") {
            Some(code) if !code.is_empty() => Ok(Callback {
                code: Secret::new(code),
                state: get("state"),
            }),
            _ => Err(ProviderError::Request {
                provider: self.cfg.provider,
                endpoint: "oauth callback".into(),
                status: None,
                message: "the callback carries neither a code nor an error".into(),
            }),
        }
    }

    /// Exchange an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &Secret,
        pkce_verifier: &Secret,
    ) -> Result<TokenSet, ProviderError> {
        let adapter = ReqwestAdapter(&self.http);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .inner
                .exchange_code(AuthorizationCode::new(code.expose().to_string()));
            if self.cfg.pkce {
                request = request
                    .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_string()));
            }
            let result = request.request_async(&adapter).await;
            match self.settle(result, Grant::Code, attempt, None) {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => tokio::time::sleep(self.cfg.retry.delay(attempt)).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Use a refresh token. A refused refresh is [`ProviderError::GrantRefused`].
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        let adapter = ReqwestAdapter(&self.http);
        let rt = RefreshToken::new(refresh_token.expose().to_string());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .inner
                .exchange_refresh_token(&rt)
                .request_async(&adapter)
                .await;
            match self.settle(result, Grant::Refresh, attempt, Some(refresh_token)) {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => tokio::time::sleep(self.cfg.retry.delay(attempt)).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Revokes the grant at the provider (Disconnect), in one attempt: HubSpot deletes the
    /// refresh token, Salesforce revokes the refresh token (or the access token when there is
    /// none), LinkedIn revokes the access token with our client credentials. `Ok(false)`: the
    /// provider has no revocation endpoint configured, or we hold nothing it would take. No
    /// error names a token.
    pub async fn revoke(
        &self,
        access_token: &Secret,
        refresh_token: Option<&Secret>,
    ) -> Result<bool, ProviderError> {
        let provider = self.cfg.provider;
        let Some(url) = self.cfg.revoke_url.as_deref() else {
            return Ok(false);
        };
        let (endpoint, request) = match provider {
            Provider::Hubspot => {
                let Some(refresh) = refresh_token else {
                    return Ok(false);
                };
                let mut u = reqwest::Url::parse(url).map_err(|e| ProviderError::Request {
                    provider,
                    endpoint: "oauth configuration".into(),
                    status: None,
                    message: format!("invalid revocation URL: {e}"),
                })?;
                u.path_segments_mut()
                    .map_err(|_| ProviderError::Request {
                        provider,
                        endpoint: "oauth configuration".into(),
                        status: None,
                        message: "invalid revocation URL".into(),
                    })?
                    .push(refresh.expose());
                (format!("DELETE {url}/{{token}}"), self.http.delete(u))
            }
            Provider::Salesforce => {
                let token = refresh_token.unwrap_or(access_token);
                (
                    format!("POST {url}"),
                    self.http.post(url).form(&[("token", token.expose())]),
                )
            }
            Provider::Linkedin => (
                format!("POST {url}"),
                self.http.post(url).form(&[
                    ("client_id", self.cfg.client_id.as_str()),
                    ("client_secret", self.cfg.client_secret.expose()),
                    ("token", access_token.expose()),
                ]),
            ),
        };
        let answer = request.send().await;
        let answer = match answer {
            Ok(r) => r,
            Err(e) => {
                crate::metrics::provider_request(provider, None);
                // Without the URL: HubSpot's carries the token.
                let e = e.without_url();
                return Err(ProviderError::Request {
                    provider,
                    endpoint,
                    status: None,
                    message: format!("no answer: {e}"),
                });
            }
        };
        let status = answer.status();
        crate::metrics::provider_request(provider, Some(status.as_u16()));
        if status.is_success() {
            return Ok(true);
        }
        let body = answer.bytes().await.unwrap_or_default();
        Err(ProviderError::Request {
            provider,
            endpoint,
            status: Some(status.as_u16()),
            message: crate::providers::http::excerpt(&body),
        })
    }

    /// Ok(Some) = tokens, Ok(None) = retry, Err = give up.
    fn settle(
        &self,
        result: Result<ProviderTokenResponse, RequestTokenError<AdapterError, ProviderTokenError>>,
        grant: Grant,
        attempt: u32,
        used_refresh: Option<&Secret>,
    ) -> Result<Option<TokenSet>, ProviderError> {
        let provider = self.cfg.provider;
        let endpoint = format!("POST {}", self.cfg.token_url);
        match result {
            Ok(r) => {
                // Salesforce says where the org's API is; every later call carries the token
                // there, so only a Salesforce host (or our configured sandbox) is believed.
                if provider == Provider::Salesforce
                    && let Some(instance) = r.instance_url.as_deref()
                    && let Err(detail) = crate::providers::salesforce::check_instance_url(
                        instance,
                        &self.cfg.token_url,
                    )
                {
                    return Err(ProviderError::BadPayload {
                        provider,
                        endpoint,
                        detail,
                    });
                }
                let new_refresh = r.refresh_token.map(|t| Secret::new(t.into_secret()));
                let rotated = matches!((&new_refresh, used_refresh), (Some(n), Some(o)) if n != o);
                Ok(Some(TokenSet {
                    access_token: Secret::new(r.access_token.into_secret()),
                    refresh_token: new_refresh.or_else(|| used_refresh.cloned()),
                    refresh_token_rotated: rotated,
                    expires_in: r.expires_in.map(Duration::from_secs),
                    refresh_token_expires_in: r.refresh_token_expires_in.map(Duration::from_secs),
                    scope: r.scope,
                    instance_url: r.instance_url,
                    identity: r.id,
                }))
            }
            Err(RequestTokenError::Request(AdapterError::Unavailable(cause))) => {
                if attempt >= self.cfg.retry.max_attempts.max(1) {
                    Err(ProviderError::Outage {
                        provider,
                        cause,
                        attempts: attempt,
                    })
                } else {
                    Ok(None)
                }
            }
            Err(RequestTokenError::Request(AdapterError::TooLarge(detail))) => {
                Err(ProviderError::BadPayload {
                    provider,
                    endpoint,
                    detail,
                })
            }
            Err(RequestTokenError::Request(AdapterError::Build(m))) => {
                Err(ProviderError::Request {
                    provider,
                    endpoint,
                    status: None,
                    message: m,
                })
            }
            Err(RequestTokenError::ServerResponse(e)) => {
                let code = e.code();
                let text = e.text();
                let refused = grant == Grant::Refresh
                    && (code == "invalid_grant" || code == "BAD_REFRESH_TOKEN");
                if refused {
                    // The words alone rarely say expired or revoked; the policy may (see
                    // `failure::grant_refusal`), and the vault completes it with the deadline.
                    Err(ProviderError::GrantRefused {
                        provider,
                        reason: grant_refusal(&text, self.cfg.refresh_policy),
                        provider_message: text,
                    })
                } else {
                    Err(ProviderError::Request {
                        provider,
                        endpoint,
                        status: None,
                        message: format!("{code}: {text}"),
                    })
                }
            }
            // Never include the body: a token endpoint body may hold tokens.
            Err(RequestTokenError::Parse(e, _body)) => Err(ProviderError::BadPayload {
                provider,
                endpoint,
                detail: format!(
                    "token response did not parse at {}: {}",
                    e.path(),
                    e.inner()
                ),
            }),
            Err(RequestTokenError::Other(m)) => Err(ProviderError::BadPayload {
                provider,
                endpoint,
                detail: m,
            }),
        }
    }
}
