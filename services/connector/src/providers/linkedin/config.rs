//! How the LinkedIn client is set up: where LinkedIn is, the API version, and the limits its
//! responses have.

use crate::providers::RetryPolicy;

/// The `LinkedIn-Version` sent unless `LINKEDIN_API_VERSION` says otherwise. LinkedIn supports a
/// version for 12 months (202611: until November 2027); how to move to the next one is in
/// docs/providers.md.
pub const DEFAULT_VERSION: &str = "202611";

/// The real API truncates adAnalytics responses at this many elements.
pub const ANALYTICS_CAP: usize = 15_000;
/// At most this many ids per organizations batch call.
pub const ORG_BATCH: usize = 100;

#[derive(Clone, Debug)]
pub struct LinkedinConfig {
    /// `https://api.linkedin.com` or `<sandbox>/linkedin`.
    pub api_base: String,
    /// `LinkedIn-Version` header, YYYYMM.
    pub version: String,
    /// Split a date range when a response has this many elements.
    pub analytics_cap: usize,
    /// Walks start with ranges of at most this many days (fewer wasted truncated calls).
    pub initial_chunk_days: u32,
    pub retry: RetryPolicy,
    /// The most bytes one answer may have (`CONNECTOR_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
}

impl LinkedinConfig {
    pub fn new(api_base: &str) -> Self {
        LinkedinConfig {
            api_base: api_base.to_string(),
            version: DEFAULT_VERSION.into(),
            analytics_cap: ANALYTICS_CAP,
            initial_chunk_days: 31,
            retry: RetryPolicy::default(),
            max_response_bytes: crate::providers::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}
