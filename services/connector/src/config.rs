//! The connector's configuration, from the environment. A missing or malformed value stops the
//! service at startup with an error that names the variable and says what to do.
//! Every variable is listed in docs/connector.md.

use std::net::SocketAddr;
use std::time::Duration;

use rp_platform::config::{ConfigError, duration_or, parse_or, var_or};

use crate::crypto::KeyRing;
use crate::domain::plans::{DEFAULT_PLANS, Plans};
use crate::domain::provider::{Provider, Secret};

/// The sandbox's address, which every provider URL defaults to (`make run`, demos).
pub const SANDBOX_BASE: &str = "http://127.0.0.1:7700";

/// One provider's endpoints and our OAuth client there.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// API base (`LINKEDIN_API_BASE`, `HUBSPOT_API_BASE`); Salesforce's comes with the token.
    pub api_base: String,
    /// OAuth base (`*_AUTH_BASE`).
    pub auth_base: String,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub linkedin: ProviderSettings,
    pub hubspot: ProviderSettings,
    pub salesforce: ProviderSettings,
    /// Per-request timeout of provider calls (`CONNECTOR_HTTP_TIMEOUT`).
    pub http_timeout: Duration,
    /// Attempts per provider call before an outage is declared (`CONNECTOR_PROVIDER_ATTEMPTS`).
    pub attempts: u32,
    /// First retry delay; doubles (`CONNECTOR_PROVIDER_RETRY_DELAY`).
    pub retry_delay: Duration,
    /// Rows at which LinkedIn truncates an adAnalytics answer (`CONNECTOR_LINKEDIN_ANALYTICS_CAP`,
    /// 15,000 as the real API; the sandbox can be started with another).
    pub linkedin_analytics_cap: usize,
    /// The `LinkedIn-Version` header, YYYYMM (`LINKEDIN_API_VERSION`, default
    /// [`crate::providers::linkedin::DEFAULT_VERSION`]); LinkedIn sunsets each after 12 months.
    pub linkedin_api_version: String,
    /// The most bytes one provider answer may have (`CONNECTOR_MAX_RESPONSE_BYTES`, 16 MiB: a
    /// full LinkedIn analytics answer of 15,000 rows is about 6 MB); read incrementally, a larger
    /// answer is refused as bad data once the cap is passed, never held whole.
    pub max_response_bytes: usize,
    /// The most pages one paged read of one object may take in one run
    /// (`CONNECTOR_MAX_PAGES`, 100,000: ten million HubSpot records); past it, or at a cursor
    /// the read already followed, the run fails as bad data naming the endpoint.
    pub max_pages: u64,
    /// The longest a provider's `Retry-After` is waited (`CONNECTOR_MAX_RETRY_AFTER`, 60 s;
    /// HubSpot's windows are 10 s): a longer one is waited this long, so a claimed wait of years
    /// cannot park a pull.
    pub max_retry_after: Duration,
}

/// A LinkedIn API version as the header takes it: YYYYMM, month 01-12.
pub fn linkedin_version(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    let month = v.get(4..).and_then(|m| m.parse::<u32>().ok());
    if v.len() == 6 && v.bytes().all(|b| b.is_ascii_digit()) && matches!(month, Some(1..=12)) {
        Ok(v.to_string())
    } else {
        Err("must be a LinkedIn API version, YYYYMM such as 202611".into())
    }
}

/// How the pull worker runs jobs.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Pull jobs one process runs at once (`CONNECTOR_PULL_CONCURRENCY`).
    pub concurrency: usize,
    /// A claimed job is another worker's to take over when not renewed for this long
    /// (`CONNECTOR_PULL_LEASE`, 10 s): how long a crashed worker's pull waits for a successor.
    pub lease: Duration,
    /// How often a running pull renews its lease (`CONNECTOR_PULL_HEARTBEAT`, 3 s; at most half
    /// the lease, so one missed heartbeat does not lose it).
    pub heartbeat: Duration,
    /// How long a pull retries a fault of ours (the database gone, say during a PostgreSQL
    /// restart) before the run fails as internal (`CONNECTOR_PULL_RETRY_FOR`, 2 min).
    pub retry_for: Duration,
    /// How often the worker looks for runnable jobs besides being woken (`CONNECTOR_PULL_POLL`).
    pub poll: Duration,
    /// Claims of one job before it is given up (`CONNECTOR_PULL_MAX_ATTEMPTS`).
    pub max_attempts: i32,
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The OAuth redirect URI registered with the providers: our `/oauth/callback`.
    pub redirect_url: String,
    /// Where the browser goes after the callback: `RP_APP_BASE_URL` + `RP_CONNECTIONS_PATH`.
    pub connections_page: String,
    pub providers: ProvidersConfig,
    pub keys: KeyRing,
    pub oauth_state_ttl: Duration,
    /// Refresh access tokens this long before they expire (`CONNECTOR_REFRESH_MARGIN`).
    pub refresh_margin: Duration,
    /// CRM signposts are the provider's clock minus this (`CONNECTOR_SIGNPOST_MARGIN`).
    pub signpost_margin: Duration,
    /// A URL answering `{"now_ms": ..}` to read the provider's clock from (the sandbox's
    /// `/admin/clock`); `None` = this machine's clock (right for the real providers).
    pub provider_clock_url: Option<String>,
    pub plans: Plans,
    pub pull: PullConfig,
    /// OAuth callbacks one client address may make (`CONNECTOR_CALLBACK_RATE_PER_ADDR` per
    /// second, 10, in bursts of `CONNECTOR_CALLBACK_BURST_PER_ADDR`, 60); beyond: 429.
    pub callback_rate: rp_platform::ratelimit::Rate,
}

fn invalid(var: &str, value: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var: var.into(),
        value: value.into(),
        problem: problem.into(),
    }
}

/// The token key ring from `CONNECTOR_TOKEN_KEYS` and `CONNECTOR_TOKEN_KEY_ID`: the connector's,
/// and `rp tokens rewrap`'s. Errors never echo the keys.
pub fn key_ring_from_env() -> Result<KeyRing, ConfigError> {
    let hint =
        "the token encryption keys, e.g. k1:$(openssl rand -base64 32) (see docs/connector.md)";
    let keys_spec = rp_platform::config::required("CONNECTOR_TOKEN_KEYS", hint)?;
    let active = rp_platform::config::required(
        "CONNECTOR_TOKEN_KEY_ID",
        "the id of the key in CONNECTOR_TOKEN_KEYS that seals new tokens, e.g. k1",
    )?;
    KeyRing::parse(&keys_spec, &active)
        .map_err(|problem| invalid("CONNECTOR_TOKEN_KEYS", "<not shown>", problem))
}

fn addr(var: &str, default: &str) -> Result<SocketAddr, ConfigError> {
    let v = var_or(var, default);
    v.trim()
        .parse()
        .map_err(|_| invalid(var, &v, "must be host:port, e.g. 127.0.0.1:50051"))
}

fn http_url(var: &str, default: &str) -> Result<String, ConfigError> {
    let v = var_or(var, default)
        .trim()
        .trim_end_matches('/')
        .to_string();
    let ok =
        (v.starts_with("http://") || v.starts_with("https://")) && reqwest::Url::parse(&v).is_ok();
    if ok {
        Ok(v)
    } else {
        Err(invalid(var, &v, "must be an absolute http(s) URL"))
    }
}

fn provider(
    prefix: &str,
    api_default: &str,
    auth_default: &str,
) -> Result<ProviderSettings, ConfigError> {
    let api_var = format!("{prefix}_API_BASE");
    let auth_var = format!("{prefix}_AUTH_BASE");
    let api_base = http_url(&api_var, api_default)?;
    let auth_base = http_url(&auth_var, auth_default)?;
    let sandbox = auth_base.starts_with(SANDBOX_BASE) && api_base.starts_with(SANDBOX_BASE);
    let slug = prefix.to_ascii_lowercase();
    let id_var = format!("{prefix}_CLIENT_ID");
    let secret_var = format!("{prefix}_CLIENT_SECRET");
    let (client_id, client_secret) = if sandbox {
        (
            var_or(&id_var, &format!("sandbox-{slug}-client")),
            var_or(&secret_var, &format!("sandbox-{slug}-secret")),
        )
    } else {
        let hint = format!(
            "the OAuth client registered with {prefix} (required when {auth_var} is not the sandbox)"
        );
        (
            rp_platform::config::required(&id_var, &hint)?,
            rp_platform::config::required(&secret_var, &hint)?,
        )
    };
    Ok(ProviderSettings {
        api_base,
        auth_base,
        client_id: client_id.trim().to_string(),
        client_secret: Secret::new(client_secret.trim().to_string()),
    })
}

impl ConnectorConfig {
    /// `CONNECTOR_METRICS_ADDR`'s default: where Prometheus scrapes the connector's `/metrics`.
    pub const DEFAULT_METRICS_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9101);

    /// `CONNECTOR_METRICS_ADDR` (default `127.0.0.1:9101`): the metrics endpoint's address.
    pub fn metrics_addr() -> Result<SocketAddr, ConfigError> {
        rp_platform::metrics::addr_from_env("CONNECTOR_METRICS_ADDR", Self::DEFAULT_METRICS_ADDR)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let grpc_addr = addr("CONNECTOR_GRPC_ADDR", "127.0.0.1:50051")?;
        let http_addr = addr("CONNECTOR_HTTP_ADDR", "127.0.0.1:8081")?;
        let redirect_url = http_url(
            "CONNECTOR_REDIRECT_URL",
            &format!("http://{http_addr}/oauth/callback"),
        )?;
        let app = http_url("RP_APP_BASE_URL", "http://localhost:3000")?;
        let path = var_or("RP_CONNECTIONS_PATH", "/workspace/connections");
        if !path.starts_with('/') {
            return Err(invalid("RP_CONNECTIONS_PATH", &path, "must start with /"));
        }
        let providers = ProvidersConfig {
            linkedin: provider(
                "LINKEDIN",
                &format!("{SANDBOX_BASE}/linkedin"),
                &format!("{SANDBOX_BASE}/linkedin"),
            )?,
            hubspot: provider(
                "HUBSPOT",
                &format!("{SANDBOX_BASE}/hubspot"),
                &format!("{SANDBOX_BASE}/hubspot"),
            )?,
            salesforce: provider(
                "SALESFORCE",
                &format!("{SANDBOX_BASE}/salesforce"),
                &format!("{SANDBOX_BASE}/salesforce"),
            )?,
            http_timeout: duration_or("CONNECTOR_HTTP_TIMEOUT", Duration::from_secs(30))?,
            attempts: parse_or("CONNECTOR_PROVIDER_ATTEMPTS", 4u32)?.max(1),
            retry_delay: duration_or("CONNECTOR_PROVIDER_RETRY_DELAY", Duration::from_millis(500))?,
            linkedin_analytics_cap: parse_or(
                "CONNECTOR_LINKEDIN_ANALYTICS_CAP",
                crate::providers::linkedin::ANALYTICS_CAP,
            )?
            .max(1),
            linkedin_api_version: {
                let raw = var_or(
                    "LINKEDIN_API_VERSION",
                    crate::providers::linkedin::DEFAULT_VERSION,
                );
                linkedin_version(&raw)
                    .map_err(|problem| invalid("LINKEDIN_API_VERSION", &raw, problem))?
            },
            max_response_bytes: parse_or(
                "CONNECTOR_MAX_RESPONSE_BYTES",
                crate::providers::DEFAULT_MAX_RESPONSE_BYTES,
            )?
            .max(64 * 1024),
            max_pages: parse_or("CONNECTOR_MAX_PAGES", crate::providers::DEFAULT_MAX_PAGES)?.max(1),
            max_retry_after: duration_or(
                "CONNECTOR_MAX_RETRY_AFTER",
                crate::providers::hubspot::DEFAULT_MAX_RETRY_AFTER,
            )?,
        };
        let keys = key_ring_from_env()?;
        let plans_spec = var_or("RP_PLANS", DEFAULT_PLANS);
        let plans = Plans::parse(&plans_spec)
            .map_err(|problem| invalid("RP_PLANS", &plans_spec, problem))?;
        let provider_clock_url = match std::env::var("CONNECTOR_PROVIDER_CLOCK_URL") {
            Ok(v) if !v.trim().is_empty() => Some(http_url("CONNECTOR_PROVIDER_CLOCK_URL", "")?),
            _ => None,
        };
        let concurrency: usize = parse_or("CONNECTOR_PULL_CONCURRENCY", 4usize)?;
        if concurrency == 0 {
            return Err(invalid(
                "CONNECTOR_PULL_CONCURRENCY",
                "0",
                "must be at least 1",
            ));
        }
        let lease = duration_or("CONNECTOR_PULL_LEASE", Duration::from_secs(10))?;
        if lease < Duration::from_secs(3) {
            return Err(invalid(
                "CONNECTOR_PULL_LEASE",
                &format!("{lease:?}"),
                "must be at least 3s",
            ));
        }
        // Unset: 3 s, or a third of a lease shorter than 9 s.
        let heartbeat = duration_or(
            "CONNECTOR_PULL_HEARTBEAT",
            Duration::from_secs(3).min(lease / 3),
        )?;
        if heartbeat.is_zero() || heartbeat * 2 > lease {
            return Err(invalid(
                "CONNECTOR_PULL_HEARTBEAT",
                &format!("{heartbeat:?}"),
                format!("must be more than 0 and at most half of CONNECTOR_PULL_LEASE ({lease:?})"),
            ));
        }
        Ok(Self {
            grpc_addr,
            http_addr,
            redirect_url,
            connections_page: format!("{app}{path}"),
            providers,
            keys,
            oauth_state_ttl: duration_or("CONNECTOR_OAUTH_STATE_TTL", Duration::from_secs(600))?,
            refresh_margin: duration_or("CONNECTOR_REFRESH_MARGIN", Duration::from_secs(300))?,
            signpost_margin: duration_or("CONNECTOR_SIGNPOST_MARGIN", Duration::from_secs(300))?,
            provider_clock_url,
            plans,
            callback_rate: rp_platform::ratelimit::Rate::new(
                parse_or("CONNECTOR_CALLBACK_RATE_PER_ADDR", 10u32)?,
                parse_or("CONNECTOR_CALLBACK_BURST_PER_ADDR", 60u32)?,
            ),
            pull: PullConfig {
                concurrency,
                lease,
                heartbeat,
                retry_for: duration_or("CONNECTOR_PULL_RETRY_FOR", Duration::from_secs(120))?,
                poll: duration_or("CONNECTOR_PULL_POLL", Duration::from_secs(5))?,
                max_attempts: parse_or("CONNECTOR_PULL_MAX_ATTEMPTS", 3i32)?.max(1),
            },
        })
    }

    pub fn provider(&self, p: Provider) -> &ProviderSettings {
        match p {
            Provider::Linkedin => &self.providers.linkedin,
            Provider::Hubspot => &self.providers.hubspot,
            Provider::Salesforce => &self.providers.salesforce,
        }
    }
}
