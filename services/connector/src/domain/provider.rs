//! The connector's words for talking to a provider: the secrets it holds, why a provider
//! refused or failed a call, and what a call returns (a page of records, a deleted record).
//! Pure types; the providers' HTTP clients produce them, the pull and connect flows
//! act on them.
//!
//! Every failure of a provider call is a [`ProviderError`] that says what the caller should do:
//!
//! | error | caller |
//! |---|---|
//! | [`ProviderError::Unauthorized`] | refresh the access token once, then retry |
//! | [`ProviderError::GrantRefused`] | the connection is gone: mark it disconnected |
//! | [`ProviderError::Outage`] | retry the sync run later (the client already retried) |
//! | [`ProviderError::RateLimited`] | a budget the client cannot wait out (daily): retry later |
//! | [`ProviderError::BadPayload`] | the provider answered garbage: retry later, alert if it lasts |
//! | [`ProviderError::Request`] | our bug or bad configuration: alert |
//! | [`ProviderError::Denied`] | the user declined on the consent screen |

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use rp_platform::provider::Provider;

/// A secret (access token, refresh token, client secret, PKCE verifier). Debug prints `***`;
/// there is no Display, so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Why an access token was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRejection {
    Expired,
    Revoked,
    Invalid,
}

/// Why a refresh (the grant) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantRefusal {
    Revoked,
    Expired,
    /// The answer does not say which (LinkedIn's "invalid, expired or revoked"): what we know of
    /// the grant's life decides (`failure::refusal_cause`).
    Unclear,
}

/// What made a provider unavailable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutageCause {
    /// HTTP 5xx.
    Status(u16),
    /// No response within the client's timeout.
    Timeout,
    /// Could not connect, or the connection broke.
    Connection(String),
}

impl fmt::Display for OutageCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutageCause::Status(s) => write!(f, "HTTP {s}"),
            OutageCause::Timeout => f.write_str("timeout"),
            OutageCause::Connection(e) => write!(f, "connection failed: {e}"),
        }
    }
}

/// Every failure of a provider call, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The access token was rejected. Refresh once and retry.
    #[error("{provider} rejected the access token ({reason:?}): {message}")]
    Unauthorized {
        provider: Provider,
        reason: TokenRejection,
        message: String,
    },
    /// The refresh token (the grant) was refused. The connection must be re-authorized.
    #[error("{provider} refused the grant ({reason:?}): {provider_message}")]
    GrantRefused {
        provider: Provider,
        reason: GrantRefusal,
        provider_message: String,
    },
    /// 5xx or timeouts, after the client's own retries.
    #[error("{provider} is unavailable ({cause}) after {attempts} attempt(s)")]
    Outage {
        provider: Provider,
        cause: OutageCause,
        attempts: u32,
    },
    /// A limit the client cannot wait out (e.g. a daily budget).
    #[error("{provider} rate limit: {message}")]
    RateLimited {
        provider: Provider,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The provider answered with malformed or unexpected JSON.
    #[error("{provider} returned an unexpected payload from {endpoint}: {detail}")]
    BadPayload {
        provider: Provider,
        endpoint: String,
        detail: String,
    },
    /// The provider refused the request as wrong (our bug or configuration).
    #[error("{provider} refused {endpoint} (HTTP {status:?}): {message}")]
    Request {
        provider: Provider,
        endpoint: String,
        status: Option<u16>,
        message: String,
    },
    /// The provider no longer accepts the API version we send (LinkedIn: 426
    /// `NONEXISTENT_VERSION`). An operator must move us to a current version.
    #[error("{provider} refused API version {version} at {endpoint}: {message}")]
    ApiVersionRefused {
        provider: Provider,
        endpoint: String,
        version: String,
        message: String,
    },
    /// The user declined on the provider's consent screen.
    #[error("{provider} authorization was declined: {error}: {description}")]
    Denied {
        provider: Provider,
        error: String,
        description: String,
    },
}

impl ProviderError {
    pub fn provider(&self) -> Provider {
        match self {
            ProviderError::Unauthorized { provider, .. }
            | ProviderError::GrantRefused { provider, .. }
            | ProviderError::Outage { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::BadPayload { provider, .. }
            | ProviderError::Request { provider, .. }
            | ProviderError::ApiVersionRefused { provider, .. }
            | ProviderError::Denied { provider, .. } => *provider,
        }
    }
}

/// A record the CRM deleted (HubSpot: archived), and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedRecord {
    pub id: String,
    pub deleted_at: chrono::DateTime<chrono::Utc>,
}

/// One page of records and the cursor for the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub records: Vec<T>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("AQVsupersecret");
        assert_eq!(format!("{s:?}"), "***");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        assert!(!format!("{:?}", Holder { token: s }).contains("AQV"));
    }
}

/// A paged read of one object: every cursor followed once, at most `max` pages. A provider
/// that names a cursor again, or pages on past any size the object could have, would keep a
/// pull alive for ever (renewing its lease, blocking the integration's later syncs and a pull
/// slot); the read stops as bad data instead (issue 15.10).
#[derive(Debug, Clone)]
pub struct PageGuard {
    seen: std::collections::HashSet<String>,
    pages: u64,
    max: u64,
}

impl PageGuard {
    /// A read of at most `max` pages (`CONNECTOR_MAX_PAGES`), `pages` of them read already
    /// (a read resumed from its walk).
    pub fn new(max: u64, pages: u64) -> Self {
        PageGuard {
            seen: std::collections::HashSet::new(),
            pages,
            max: max.max(1),
        }
    }

    /// Before reading the page at `cursor` (`None`: the first page): `Err` says why this read
    /// must stop.
    pub fn next(&mut self, cursor: Option<&str>) -> Result<(), String> {
        if let Some(c) = cursor
            && !self.seen.insert(c.to_string())
        {
            let shown: String = c.chars().take(64).collect();
            return Err(format!(
                "the paging cursor {shown:?} came again: the pages would never end"
            ));
        }
        self.pages += 1;
        if self.pages > self.max {
            return Err(format!(
                "more than {} pages of one object (CONNECTOR_MAX_PAGES): the pages would never end",
                self.max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod page_guard_tests {
    use super::PageGuard;

    #[test]
    fn a_cursor_named_again_stops_the_read() {
        let mut g = PageGuard::new(100, 0);
        assert!(g.next(None).is_ok());
        assert!(g.next(Some("a")).is_ok());
        assert!(g.next(Some("b")).is_ok());
        let e = g.next(Some("a")).unwrap_err();
        assert!(e.contains("\"a\" came again"), "{e}");
    }

    #[test]
    fn pages_past_the_cap_stop_the_read_counting_a_resumed_reads_pages() {
        let mut g = PageGuard::new(3, 1);
        assert!(g.next(Some("1")).is_ok());
        assert!(g.next(Some("2")).is_ok());
        let e = g.next(Some("3")).unwrap_err();
        assert!(e.contains("more than 3 pages"), "{e}");
    }
}
