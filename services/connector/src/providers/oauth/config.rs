//! Where each provider's OAuth server lives, the scopes we ask for, and who we are to it.

use crate::domain::failure::{RefreshPolicy, refresh_policy_of};
use crate::domain::provider::{Provider, Secret};
use crate::providers::http::{RetryPolicy, join};

/// Where a provider's OAuth server lives and who we are to it.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub provider: Provider,
    pub authorize_url: String,
    pub token_url: String,
    /// Where the grant is revoked on Disconnect (docs/connector.md, "Disconnect"): LinkedIn
    /// `POST /oauth/v2/revoke`, HubSpot `DELETE /oauth/v1/refresh-tokens/{token}` (this is the
    /// URL without the token), Salesforce `POST /services/oauth2/revoke`. `None`: not revoked.
    pub revoke_url: Option<String>,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub retry: RetryPolicy,
    /// How long the provider's refresh tokens live (its documented policy by default; a
    /// Salesforce connected app whose policy expires them sets its life here).
    pub refresh_policy: RefreshPolicy,
    /// Whether the flow carries PKCE (S256): where the provider supports it for a web app
    /// with a client secret (HubSpot, Salesforce), never where it does not (LinkedIn's
    /// standard 3-legged flow has no PKCE). See docs/providers.md.
    pub pkce: bool,
}

/// PKCE per provider (docs/providers.md, "OAuth"): HubSpot documents `code_challenge` /
/// `code_verifier` as optional and Salesforce supports PKCE for web-server flows, so both get
/// it (a stolen code is useless without the verifier); LinkedIn's standard web flow does not
/// take PKCE (only its native-app flow does), so it is not sent there.
pub fn pkce_of(provider: Provider) -> bool {
    match provider {
        Provider::Linkedin => false,
        Provider::Hubspot | Provider::Salesforce => true,
    }
}

impl OAuthConfig {
    /// `auth_base`: `https://www.linkedin.com` or `<sandbox>/linkedin`.
    pub fn linkedin(
        auth_base: &str,
        client_id: &str,
        client_secret: Secret,
        redirect_uri: &str,
    ) -> Self {
        Self::build(
            Provider::Linkedin,
            join(auth_base, "/oauth/v2/authorization"),
            join(auth_base, "/oauth/v2/accessToken"),
            client_id,
            client_secret,
            redirect_uri,
            &["r_ads", "r_ads_reporting", "r_organization_social"],
        )
        .revoking_at(join(auth_base, "/oauth/v2/revoke"))
    }

    /// `auth_base`: `https://app.hubspot.com` for authorize; the token endpoint is on the API
    /// host (`https://api.hubapi.com`). Against the sandbox both are `<sandbox>/hubspot`.
    pub fn hubspot(
        auth_base: &str,
        api_base: &str,
        client_id: &str,
        client_secret: Secret,
        redirect_uri: &str,
    ) -> Self {
        Self::build(
            Provider::Hubspot,
            join(auth_base, "/oauth/authorize"),
            join(api_base, "/oauth/v1/token"),
            client_id,
            client_secret,
            redirect_uri,
            &[
                "crm.objects.companies.read",
                "crm.objects.contacts.read",
                "crm.objects.deals.read",
            ],
        )
        .revoking_at(join(api_base, "/oauth/v1/refresh-tokens"))
    }

    /// `auth_base`: `https://login.salesforce.com` or `<sandbox>/salesforce`.
    pub fn salesforce(
        auth_base: &str,
        client_id: &str,
        client_secret: Secret,
        redirect_uri: &str,
    ) -> Self {
        Self::build(
            Provider::Salesforce,
            join(auth_base, "/services/oauth2/authorize"),
            join(auth_base, "/services/oauth2/token"),
            client_id,
            client_secret,
            redirect_uri,
            &["api", "refresh_token"],
        )
        .revoking_at(join(auth_base, "/services/oauth2/revoke"))
    }

    fn revoking_at(mut self, url: String) -> Self {
        self.revoke_url = Some(url);
        self
    }

    fn build(
        provider: Provider,
        authorize_url: String,
        token_url: String,
        client_id: &str,
        client_secret: Secret,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> Self {
        OAuthConfig {
            provider,
            authorize_url,
            token_url,
            revoke_url: None,
            client_id: client_id.to_string(),
            client_secret,
            redirect_uri: redirect_uri.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            retry: RetryPolicy::default(),
            refresh_policy: refresh_policy_of(provider),
            pkce: pkce_of(provider),
        }
    }
}
