//! Sandbox configuration: data sizes, seed, anchor date, OAuth clients, limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One of the three providers the sandbox plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Linkedin,
    Hubspot,
    Salesforce,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Linkedin, Provider::Hubspot, Provider::Salesforce];

    /// Path prefix (without slashes) under which the provider is served.
    pub fn prefix(self) -> &'static str {
        match self {
            Provider::Linkedin => "linkedin",
            Provider::Hubspot => "hubspot",
            Provider::Salesforce => "salesforce",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Provider::Linkedin => 0,
            Provider::Hubspot => 1,
            Provider::Salesforce => 2,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "linkedin" => Ok(Provider::Linkedin),
            "hubspot" => Ok(Provider::Hubspot),
            "salesforce" => Ok(Provider::Salesforce),
            other => Err(format!(
                "unknown provider {other:?} (expected linkedin, hubspot or salesforce)"
            )),
        }
    }
}

/// How much data to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// CRM companies (served by both HubSpot and Salesforce).
    pub companies: usize,
    /// CRM contacts.
    pub contacts: usize,
    /// CRM deals / opportunities.
    pub deals: usize,
    /// LinkedIn organizations with ad engagement.
    pub engaged_orgs: usize,
    /// Days of engagement history before the anchor date.
    pub days: u32,
}

impl Sizes {
    /// A typical customer workspace (what `make run` and benchmarks use).
    pub const TYPICAL: Sizes = Sizes {
        companies: 50_000,
        contacts: 200_000,
        deals: 20_000,
        engaged_orgs: 5_000,
        days: 365,
    };

    /// Small enough for unit and integration tests.
    pub const TINY: Sizes = Sizes {
        companies: 60,
        contacts: 150,
        deals: 40,
        engaged_orgs: 30,
        days: 60,
    };
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes::TYPICAL
    }
}

/// OAuth client credentials one provider's authorization server accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

impl OAuthClient {
    pub fn for_provider(p: Provider) -> Self {
        OAuthClient {
            client_id: format!("sandbox-{}-client", p.prefix()),
            client_secret: format!("sandbox-{}-secret", p.prefix()),
        }
    }
}

/// HubSpot-style rolling-window rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per rolling interval.
    pub max: u32,
    /// Interval length in milliseconds.
    pub interval_ms: u64,
    /// Requests allowed per day.
    pub daily: u64,
}

impl RateLimit {
    /// HubSpot's default for private/OAuth apps: 100 requests per 10 seconds.
    pub const HUBSPOT_DEFAULT: RateLimit = RateLimit {
        max: 100,
        interval_ms: 10_000,
        daily: 250_000,
    };
}

/// HubSpot's separate limit on the CRM search endpoints (`POST /crm/v3/objects/{type}/search`):
/// a rolling window of its own, per account, next to the general one. Applies while the HubSpot
/// rate limit is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchLimit {
    /// Searches allowed per rolling interval.
    pub max: u32,
    /// Interval length in milliseconds.
    pub interval_ms: u64,
}

impl SearchLimit {
    /// HubSpot's documented search limit: 5 requests per second per account.
    pub const HUBSPOT_DEFAULT: SearchLimit = SearchLimit {
        max: 5,
        interval_ms: 1_000,
    };
}

/// Everything the sandbox needs to start.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Address to bind. Tests use `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// Seed for the generated data: same seed and sizes, same data.
    pub seed: u64,
    pub sizes: Sizes,
    /// "Today" for the generated data. `None` = the real current date (UTC).
    /// When pinned, the sandbox clock starts at this date's midnight UTC.
    pub anchor: Option<NaiveDate>,
    /// Lifetime of issued access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    /// Whether the token endpoints check client_id / client_secret.
    pub check_client_credentials: bool,
    /// Accepted OAuth clients, per provider (index: LinkedIn, HubSpot, Salesforce).
    pub clients: [OAuthClient; 3],
    /// Issue a new refresh token on every refresh (per provider, changeable at runtime).
    pub rotate_refresh_tokens: bool,
    /// HubSpot rate limit; `None` = off.
    pub hubspot_rate_limit: Option<RateLimit>,
    /// HubSpot's search limit, applied while `hubspot_rate_limit` is on.
    pub hubspot_search_limit: SearchLimit,
    /// Salesforce daily API request limit; `None` = unlimited.
    pub salesforce_daily_limit: Option<u64>,
    /// LinkedIn adAnalytics truncation (the real API returns at most 15,000 elements).
    pub linkedin_analytics_cap: usize,
    /// HubSpot search: results past this many cannot be paged (real: 10,000).
    pub hubspot_search_cap: usize,
    /// Salesforce query batch size (real default: 2,000).
    pub salesforce_batch_size: usize,
    /// Request log capacity (oldest entries are dropped).
    pub request_log_capacity: usize,
    /// Where the sandbox keeps what a real provider never forgets across a restart: its OAuth
    /// state (grants, refresh and access tokens, pending authorization codes) and its clock.
    /// Loaded at start, rewritten atomically whenever it changes. `None` = in memory only.
    pub state_dir: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 42,
            sizes: Sizes::TYPICAL,
            anchor: None,
            access_token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(600),
            check_client_credentials: true,
            clients: [
                OAuthClient::for_provider(Provider::Linkedin),
                OAuthClient::for_provider(Provider::Hubspot),
                OAuthClient::for_provider(Provider::Salesforce),
            ],
            rotate_refresh_tokens: false,
            hubspot_rate_limit: Some(RateLimit::HUBSPOT_DEFAULT),
            hubspot_search_limit: SearchLimit::HUBSPOT_DEFAULT,
            salesforce_daily_limit: Some(100_000),
            linkedin_analytics_cap: 15_000,
            hubspot_search_cap: 10_000,
            salesforce_batch_size: 2_000,
            request_log_capacity: 200_000,
            state_dir: None,
        }
    }
}

impl SandboxConfig {
    /// Tiny data, pinned anchor, limits as in production: what most tests want.
    pub fn for_tests() -> Self {
        SandboxConfig {
            sizes: Sizes::TINY,
            anchor: NaiveDate::from_ymd_opt(2025, 6, 30),
            ..SandboxConfig::default()
        }
    }

    pub fn client(&self, p: Provider) -> &OAuthClient {
        &self.clients[p.index()]
    }
}
