//! `sandbox` binary: serve the provider sandbox for `make run`, demos and manual testing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;
use sandbox::{Provider, RateLimit, Sandbox, SandboxConfig, SearchLimit, Sizes};

/// Plays LinkedIn, HubSpot and Salesforce (APIs and OAuth) over generated data.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SANDBOX_ADDR", default_value = "127.0.0.1:7700")]
    addr: SocketAddr,
    /// Seed of the generated data.
    #[arg(long, env = "SANDBOX_SEED", default_value_t = 42)]
    seed: u64,
    #[arg(long, env = "SANDBOX_COMPANIES", default_value_t = Sizes::TYPICAL.companies)]
    companies: usize,
    #[arg(long, env = "SANDBOX_CONTACTS", default_value_t = Sizes::TYPICAL.contacts)]
    contacts: usize,
    #[arg(long, env = "SANDBOX_DEALS", default_value_t = Sizes::TYPICAL.deals)]
    deals: usize,
    /// LinkedIn organizations with engagement.
    #[arg(long, env = "SANDBOX_ORGS", default_value_t = Sizes::TYPICAL.engaged_orgs)]
    orgs: usize,
    /// Days of engagement history.
    #[arg(long, env = "SANDBOX_DAYS", default_value_t = Sizes::TYPICAL.days)]
    days: u32,
    /// "Today" of the data, YYYY-MM-DD (default: the real current date).
    #[arg(long, env = "SANDBOX_ANCHOR")]
    anchor: Option<NaiveDate>,
    /// Access token lifetime in seconds.
    #[arg(long, env = "SANDBOX_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Issue a new refresh token on every refresh.
    #[arg(long, env = "SANDBOX_ROTATE_REFRESH", default_value_t = false)]
    rotate_refresh: bool,
    /// Check OAuth client_id / client_secret.
    #[arg(long, env = "SANDBOX_CHECK_CLIENT", default_value_t = true, action = clap::ArgAction::Set)]
    check_client: bool,
    /// HubSpot limit as MAX/INTERVAL_MS (e.g. 100/10000), or "off".
    #[arg(long, env = "SANDBOX_HUBSPOT_RATE_LIMIT", default_value = "100/10000")]
    hubspot_rate_limit: String,
    /// HubSpot's search limit as MAX/INTERVAL_MS (applies while the rate limit is on).
    #[arg(long, env = "SANDBOX_HUBSPOT_SEARCH_LIMIT", default_value = "5/1000")]
    hubspot_search_limit: String,
    /// Salesforce daily API request limit, or "off".
    #[arg(long, env = "SANDBOX_SALESFORCE_DAILY_LIMIT", default_value = "100000")]
    salesforce_daily_limit: String,
    /// Keep the OAuth state (grants, tokens, codes) and the clock in this directory across
    /// restarts; unset = in memory only.
    #[arg(long, env = "SANDBOX_STATE_DIR")]
    state_dir: Option<std::path::PathBuf>,
}

fn parse_rate(s: &str) -> anyhow::Result<Option<RateLimit>> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (max, interval) = s
        .split_once('/')
        .context("hubspot rate limit must be MAX/INTERVAL_MS or off")?;
    Ok(Some(RateLimit {
        max: max.trim().parse().context("rate limit MAX")?,
        interval_ms: interval.trim().parse().context("rate limit INTERVAL_MS")?,
        daily: RateLimit::HUBSPOT_DEFAULT.daily,
    }))
}

fn parse_search_limit(s: &str) -> anyhow::Result<SearchLimit> {
    let (max, interval) = s
        .split_once('/')
        .context("hubspot search limit must be MAX/INTERVAL_MS")?;
    let limit = SearchLimit {
        max: max.trim().parse().context("search limit MAX")?,
        interval_ms: interval
            .trim()
            .parse()
            .context("search limit INTERVAL_MS")?,
    };
    anyhow::ensure!(
        limit.max > 0 && limit.interval_ms > 0,
        "hubspot search limit: MAX and INTERVAL_MS must be positive"
    );
    Ok(limit)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = SandboxConfig {
        addr: args.addr,
        seed: args.seed,
        sizes: Sizes {
            companies: args.companies,
            contacts: args.contacts,
            deals: args.deals,
            engaged_orgs: args.orgs,
            days: args.days,
        },
        anchor: args.anchor,
        access_token_ttl: Duration::from_secs(args.token_ttl_secs),
        check_client_credentials: args.check_client,
        rotate_refresh_tokens: args.rotate_refresh,
        hubspot_rate_limit: parse_rate(&args.hubspot_rate_limit)?,
        hubspot_search_limit: parse_search_limit(&args.hubspot_search_limit)?,
        salesforce_daily_limit: if args.salesforce_daily_limit.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(
                args.salesforce_daily_limit
                    .parse()
                    .context("salesforce daily limit must be a number or off")?,
            )
        },
        state_dir: args.state_dir.filter(|d| !d.as_os_str().is_empty()),
        ..SandboxConfig::default()
    };
    let started = std::time::Instant::now();
    let sb = Sandbox::spawn(config).await?;
    tracing::info!(
        addr = %sb.addr(),
        anchor = %sb.anchor(),
        startup_ms = started.elapsed().as_millis() as u64,
        linkedin = %sb.url(Provider::Linkedin),
        hubspot = %sb.url(Provider::Hubspot),
        salesforce = %sb.url(Provider::Salesforce),
        admin = %sb.admin_url(),
        "sandbox serving (client credentials: GET /admin/config)"
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            sb.shutdown().await;
        }
        _ = wait_forever() => {}
    }
    Ok(())
}

async fn wait_forever() {
    std::future::pending::<()>().await
}
