//! The token endpoint's bodies, tolerant of every provider's variant: LinkedIn's success
//! without `token_type`, Salesforce's without `expires_in` (with `instance_url`), HubSpot's
//! non-standard errors.

use std::fmt;
use std::time::Duration;

use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, ErrorResponse, RefreshToken, Scope, TokenResponse};
use serde::{Deserialize, Serialize};

/// Token endpoint success body, tolerant of every provider's variant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderTokenResponse {
    pub(super) access_token: AccessToken,
    #[serde(default)]
    pub(super) token_type: Option<String>,
    #[serde(skip, default = "bearer")]
    pub(super) basic_type: BasicTokenType,
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
    #[serde(default)]
    pub(super) refresh_token: Option<RefreshToken>,
    #[serde(default)]
    pub(super) refresh_token_expires_in: Option<u64>,
    #[serde(default)]
    pub(super) scope: Option<String>,
    #[serde(default)]
    pub(super) instance_url: Option<String>,
    /// Salesforce: the identity URL, `https://login.salesforce.com/id/<org id>/<user id>`.
    #[serde(default)]
    pub(super) id: Option<String>,
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

impl TokenResponse for ProviderTokenResponse {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.basic_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

/// Token endpoint error body: RFC 6749 (`error`, `error_description`; LinkedIn, Salesforce) or
/// HubSpot's (`status`, `message`, `correlationId`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderTokenError {
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) error_description: Option<String>,
    #[serde(default)]
    pub(super) status: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

impl ProviderTokenError {
    pub(super) fn code(&self) -> String {
        match (&self.error, &self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(serde_json::Value::String(s))) => s.clone(),
            (None, Some(v)) => v.to_string(),
            (None, None) => "unknown_error".into(),
        }
    }
    pub(super) fn text(&self) -> String {
        self.error_description
            .clone()
            .or_else(|| self.message.clone())
            .unwrap_or_default()
    }
}

impl fmt::Display for ProviderTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.text())
    }
}

impl ErrorResponse for ProviderTokenError {}
