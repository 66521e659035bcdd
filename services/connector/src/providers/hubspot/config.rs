//! How the HubSpot client is set up: where HubSpot is, page sizes and the rate-limit budget
//! assumed until HubSpot's headers say otherwise.

use std::time::Duration;

use crate::providers::RetryPolicy;

#[derive(Clone, Debug)]
pub struct HubspotConfig {
    /// `https://api.hubapi.com` or `<sandbox>/hubspot`.
    pub api_base: String,
    pub retry: RetryPolicy,
    /// Records per list / search page (HubSpot allows up to 100 for both here).
    pub page_size: usize,
    /// Budget assumed until HubSpot's headers say otherwise.
    pub default_limit: (u32, Duration),
    /// The search endpoints' own budget: HubSpot documents 5 requests per second per account,
    /// separate from the general one, and its search answers carry no rate-limit headers.
    pub search_limit: (u32, Duration),
    /// 429s tolerated (each waited out) before giving up with `RateLimited`.
    pub max_throttled_retries: u32,
    /// The most bytes one answer may have (`CONNECTOR_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// The longest a 429's `Retry-After` is waited (`CONNECTOR_MAX_RETRY_AFTER`).
    pub max_retry_after: Duration,
}

/// The longest a 429's `Retry-After` is waited by default; HubSpot's windows are 10 s.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl HubspotConfig {
    pub fn new(api_base: &str) -> Self {
        HubspotConfig {
            api_base: api_base.to_string(),
            retry: RetryPolicy::default(),
            page_size: 100,
            default_limit: (100, Duration::from_secs(10)),
            search_limit: (5, Duration::from_secs(1)),
            max_throttled_retries: 5,
            max_response_bytes: crate::providers::DEFAULT_MAX_RESPONSE_BYTES,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}
