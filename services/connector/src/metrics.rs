//! The connector's metrics besides the sync run's ([`crate::sync::metrics`]): provider requests,
//! retries and 429s, HubSpot's rate-limit budget, token refreshes and disconnections
//! (docs/metrics.md). Labels come from closed sets: the provider's slug, a status class, a
//! budget's name, a reason.

use std::sync::LazyLock;

use rp_platform::contracts::events::v1 as ev;
use rp_platform::metrics::{Counter, Family, GaugeF64, Labels, enum_label, register};

use crate::domain::{DisconnectReason, Provider};

/// The connector's families.
pub struct ConnectorMetrics {
    /// `provider`, `class` (`2xx`, `3xx`, `4xx`, `5xx`, or `error` when no answer came).
    pub provider_requests: Family<Labels<2>, Counter>,
    pub provider_retries: Family<Labels<1>, Counter>,
    pub provider_rate_limited: Family<Labels<1>, Counter>,
    /// `provider`, `budget` (`general`, `search`).
    pub rate_limit_used: Family<Labels<2>, GaugeF64>,
    pub token_refreshes: Family<Labels<1>, Counter>,
    /// `provider`, `reason` (`refused`, `no_refresh_token`, `provider_error`).
    pub token_refresh_failures: Family<Labels<2>, Counter>,
    /// `provider`, `reason` (a `DisconnectReason`).
    pub disconnections: Family<Labels<2>, Counter>,
    /// `provider`, `result` (`revoked`, `failed`, `skipped`): Disconnect's revocation of the
    /// grant at the provider.
    pub grant_revocations: Family<Labels<2>, Counter>,
    /// `provider`, `result`: CompleteConnect's outcomes (see [`OAUTH_COMPLETION_RESULTS`]).
    pub oauth_completions: Family<Labels<2>, Counter>,
}

/// The `result` label of `rp_connector_oauth_completions_total`: `connected`; `foreign_workspace`
/// (an authorization started in another workspace brought back to this one: a forwarded connect
/// link, issue 15.8); `refused` (used, expired, or the integration already connected); `failed`
/// (the provider did not give us tokens).
pub const OAUTH_COMPLETION_RESULTS: [&str; 4] =
    ["connected", "foreign_workspace", "refused", "failed"];

static METRICS: LazyLock<ConnectorMetrics> = LazyLock::new(|| {
    let m = ConnectorMetrics {
        provider_requests: Family::default(),
        provider_retries: Family::default(),
        provider_rate_limited: Family::default(),
        rate_limit_used: Family::default(),
        token_refreshes: Family::default(),
        token_refresh_failures: Family::default(),
        disconnections: Family::default(),
        grant_revocations: Family::default(),
        oauth_completions: Family::default(),
    };
    register(
        "rp_provider_requests",
        "HTTP requests sent to a provider's API (each attempt, retries included), by answer class",
        m.provider_requests.clone(),
    );
    register(
        "rp_provider_retries",
        "Provider requests retried after a 5xx, a timeout or a broken connection",
        m.provider_retries.clone(),
    );
    register(
        "rp_provider_rate_limited_responses",
        "Provider answers 429 Too Many Requests",
        m.provider_rate_limited.clone(),
    );
    register(
        "rp_provider_rate_limit_used_ratio",
        "Share of a provider's rate-limit window in use (HubSpot: requests in the rolling window over its limit), as the last request through a limiter left it",
        m.rate_limit_used.clone(),
    );
    register(
        "rp_connector_token_refreshes",
        "Access tokens refreshed",
        m.token_refreshes.clone(),
    );
    register(
        "rp_connector_token_refresh_failures",
        "Token refreshes that failed: refused (the connection is disconnected), no refresh token, or the token endpoint failed",
        m.token_refresh_failures.clone(),
    );
    register(
        "rp_connector_disconnections",
        "ConnectionDisconnected events appended, by provider and reason",
        m.disconnections.clone(),
    );
    register(
        "rp_connector_grant_revocations",
        "Disconnect's revocation of the grant at the provider: revoked, failed (the disconnect happened anyway), or skipped (nothing to revoke)",
        m.grant_revocations.clone(),
    );
    register(
        "rp_connector_oauth_completions",
        "Authorizations completed from the Connections page (CompleteConnect), by result: connected, foreign_workspace (a connect link brought back to another workspace than the one that started it), refused, failed",
        m.oauth_completions.clone(),
    );
    m
});

/// The connector's families.
pub fn metrics() -> &'static ConnectorMetrics {
    &METRICS
}

fn provider(p: Provider) -> String {
    p.slug().to_string()
}

/// Registers the connector's families (and the sync run's), with the series alerts watch at 0
/// from the start: an alert on a counter's increase then sees its first event.
pub fn init() {
    let m = metrics();
    for p in Provider::ALL {
        let _ = m
            .provider_retries
            .get_or_create(&[("provider", provider(p))]);
        let _ = m
            .provider_rate_limited
            .get_or_create(&[("provider", provider(p))]);
        let _ = m
            .token_refreshes
            .get_or_create(&[("provider", provider(p))]);
        for reason in ["refused", "no_refresh_token", "provider_error"] {
            let _ = m
                .token_refresh_failures
                .get_or_create(&[("provider", provider(p)), ("reason", reason.into())]);
        }
        for result in ["revoked", "failed", "skipped"] {
            let _ = m
                .grant_revocations
                .get_or_create(&[("provider", provider(p)), ("result", result.into())]);
        }
        for result in OAUTH_COMPLETION_RESULTS {
            let _ = m
                .oauth_completions
                .get_or_create(&[("provider", provider(p)), ("result", result.into())]);
        }
        for reason in disconnect_reasons() {
            let _ = m
                .disconnections
                .get_or_create(&[("provider", provider(p)), ("reason", reason)]);
        }
    }
    crate::sync::metrics::init();
}

fn disconnect_reasons() -> impl Iterator<Item = String> {
    (1..64)
        .map_while(|n| ev::DisconnectReason::try_from(n).ok())
        .map(|r| enum_label(r.as_str_name(), "DISCONNECT_REASON_"))
}

/// One attempt of a provider request: its answer's status, or `None` when none came.
pub fn provider_request(p: Provider, status: Option<u16>) {
    let class = match status {
        Some(s @ 100..=599) => format!("{}xx", s / 100),
        _ => "error".to_string(),
    };
    metrics()
        .provider_requests
        .get_or_create(&[("provider", provider(p)), ("class", class)])
        .inc();
    if status == Some(429) {
        metrics()
            .provider_rate_limited
            .get_or_create(&[("provider", provider(p))])
            .inc();
    }
}

/// CompleteConnect's outcome, one of [`OAUTH_COMPLETION_RESULTS`].
pub fn oauth_completion(p: Provider, result: &'static str) {
    metrics()
        .oauth_completions
        .get_or_create(&[("provider", provider(p)), ("result", result.into())])
        .inc();
}

/// Disconnect's revocation at the provider: `revoked`, `failed` or `skipped`.
pub fn grant_revocation(p: Provider, result: &'static str) {
    metrics()
        .grant_revocations
        .get_or_create(&[("provider", provider(p)), ("result", result.into())])
        .inc();
}

pub fn provider_retry(p: Provider) {
    metrics()
        .provider_retries
        .get_or_create(&[("provider", provider(p))])
        .inc();
}

/// A rate limiter's window use after a request: `used` of `max` requests.
pub fn rate_limit_used(p: Provider, budget: &'static str, used: u64, max: u64) {
    let ratio = if max == 0 {
        0.0
    } else {
        used as f64 / max as f64
    };
    metrics()
        .rate_limit_used
        .get_or_create(&[("provider", provider(p)), ("budget", budget.into())])
        .set(ratio);
}

pub fn token_refreshed(p: Provider) {
    metrics()
        .token_refreshes
        .get_or_create(&[("provider", provider(p))])
        .inc();
}

/// `reason`: `refused`, `no_refresh_token` or `provider_error`.
pub fn token_refresh_failed(p: Provider, reason: &'static str) {
    metrics()
        .token_refresh_failures
        .get_or_create(&[("provider", provider(p)), ("reason", reason.into())])
        .inc();
}

pub fn disconnected(p: Provider, reason: DisconnectReason) {
    let reason = enum_label(reason.to_event().as_str_name(), "DISCONNECT_REASON_");
    metrics()
        .disconnections
        .get_or_create(&[("provider", provider(p)), ("reason", reason)])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_reasons_are_labels() {
        let reasons: Vec<String> = disconnect_reasons().collect();
        assert_eq!(
            reasons,
            [
                "user_requested",
                "authorization_revoked",
                "authorization_expired",
                "authorization_expired_or_revoked"
            ]
        );
    }

    #[test]
    fn requests_are_counted_by_answer_class() {
        init();
        provider_request(Provider::Salesforce, Some(429));
        provider_request(Provider::Salesforce, None);
        let text = rp_platform::metrics::encode_all().unwrap();
        assert!(
            text.contains(r#"rp_provider_requests_total{provider="salesforce",class="4xx"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rp_provider_requests_total{provider="salesforce",class="error"}"#)
        );
        assert!(
            text.contains(r#"rp_provider_rate_limited_responses_total{provider="salesforce"}"#)
        );
        assert!(
            text.contains(r#"rp_sync_failures_total{provider="linkedin",kind="api_version"} 0"#)
        );
    }
}
