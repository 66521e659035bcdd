//! How the LinkedIn client is set up: where LinkedIn is, the API version, and the limits its
//! responses have.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::providers::RetryPolicy;

/// The real API truncates adAnalytics responses at this many elements.
pub const ANALYTICS_CAP: usize = 15_000;
/// At most this many ids per organizations batch call.
pub const ORG_BATCH: usize = 100;

/// The cap clients built from now on assume, when set (0 = [`ANALYTICS_CAP`]).
static CAP_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Sets the truncation cap every LinkedIn client built from now on assumes, for a LinkedIn that
/// truncates elsewhere (a sandbox started with a low cap, so tests truncate days with little
/// data). Process-wide: it belongs in `ProvidersConfig` once that can carry it.
pub fn assume_analytics_cap(cap: usize) {
    CAP_IN_USE.store(cap.max(1), Ordering::Relaxed);
}

fn analytics_cap() -> usize {
    match CAP_IN_USE.load(Ordering::Relaxed) {
        0 => ANALYTICS_CAP,
        n => n,
    }
}

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
}

impl LinkedinConfig {
    pub fn new(api_base: &str) -> Self {
        LinkedinConfig {
            api_base: api_base.to_string(),
            version: "202501".into(),
            analytics_cap: analytics_cap(),
            initial_chunk_days: 31,
            retry: RetryPolicy::default(),
        }
    }
}
