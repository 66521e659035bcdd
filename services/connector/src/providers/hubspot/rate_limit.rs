//! The client-side rate limiter: HubSpot's rolling window mirrored locally, so a sync uses its
//! budget without ever being answered 429.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::domain::provider::{Provider, ProviderError};

/// The largest window the limiter believes a header about (HubSpot's real windows are 100 to
/// 190 requests per 10 s): a bigger claim is clamped, never allocated.
pub(super) const MAX_WINDOW: u32 = 10_000;
/// The longest and shortest window interval believed from a header.
const MAX_INTERVAL: Duration = Duration::from_secs(600);
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct LimiterState {
    enabled: bool,
    max: u32,
    interval: Duration,
    /// When each request of the current window was answered.
    log: VecDeque<Instant>,
    in_flight: u32,
    daily_remaining: Option<u64>,
    /// Headers neither change nor switch off this budget.
    fixed: bool,
    /// Its name in `rp_provider_rate_limit_used_ratio`: `general` or `search`.
    budget: &'static str,
}

impl LimiterState {
    /// The window's use as a request takes its slot, for the metrics.
    fn report(&self) {
        if self.enabled {
            let used = self.log.len() as u64 + u64::from(self.in_flight);
            crate::metrics::rate_limit_used(
                Provider::Hubspot,
                self.budget,
                used,
                u64::from(self.max),
            );
        }
    }
}

/// A sliding-window limiter that mirrors HubSpot's rolling window. A slot is held from sending
/// until `interval` after the response arrived, which is never earlier than HubSpot counted
/// the request, so the window HubSpot sees is never over the limit. Headers update the limit
/// and shrink our budget when other clients of the same account use theirs.
#[derive(Debug)]
pub(super) struct RateLimiter {
    state: Mutex<LimiterState>,
}

pub(super) fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl RateLimiter {
    pub(super) fn new(max: u32, interval: Duration) -> Self {
        RateLimiter {
            state: Mutex::new(LimiterState {
                enabled: true,
                max,
                interval,
                log: VecDeque::new(),
                in_flight: 0,
                daily_remaining: None,
                fixed: false,
                budget: "general",
            }),
        }
    }

    /// A budget that answers' headers never change nor switch off (HubSpot's search limit).
    pub(super) fn fixed(max: u32, interval: Duration) -> Self {
        let l = Self::new(max, interval);
        {
            let mut s = l.lock();
            s.fixed = true;
            s.budget = "search";
        }
        l
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn acquire(&self) -> Result<(), ProviderError> {
        loop {
            let wait = {
                let mut s = self.lock();
                if s.daily_remaining == Some(0) {
                    return Err(ProviderError::RateLimited {
                        provider: Provider::Hubspot,
                        retry_after: None,
                        message: "the daily API request limit is used up".into(),
                    });
                }
                let now = Instant::now();
                let interval = s.interval;
                while s.log.front().is_some_and(|t| *t + interval <= now) {
                    s.log.pop_front();
                }
                if !s.enabled || (s.log.len() as u32 + s.in_flight) < s.max {
                    s.in_flight += 1;
                    s.report();
                    return Ok(());
                }
                match s.log.front() {
                    Some(t) => (*t + interval).saturating_duration_since(now),
                    // Every slot is in flight: wait for a response.
                    None => Duration::from_millis(5),
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    pub(super) fn release(&self, headers: Option<&HeaderMap>) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        let now = Instant::now();
        s.log.push_back(now);
        let Some(h) = headers.filter(|_| !s.fixed) else {
            return;
        };
        let max = header_u64(h, "x-hubspot-ratelimit-max");
        let interval = header_u64(h, "x-hubspot-ratelimit-interval-milliseconds");
        let remaining = header_u64(h, "x-hubspot-ratelimit-remaining");
        s.daily_remaining = header_u64(h, "x-hubspot-ratelimit-daily-remaining");
        match (max, interval) {
            (Some(m), Some(i)) if m > 0 && i > 0 => {
                s.enabled = true;
                // Clamped: a header is the provider's word, not a size to allocate.
                s.max = m.min(u64::from(MAX_WINDOW)) as u32;
                s.interval = Duration::from_millis(i).clamp(MIN_INTERVAL, MAX_INTERVAL);
            }
            // No rate-limit headers: HubSpot is not limiting this client.
            _ if remaining.is_none() => s.enabled = false,
            _ => {}
        }
        if let Some(rem) = remaining {
            let used = s.log.len() as u64 + u64::from(s.in_flight);
            let local = u64::from(s.max.min(MAX_WINDOW)).saturating_sub(used);
            // Someone else shares the account's budget: count their requests as ours.
            for _ in rem..local {
                s.log.push_back(now);
            }
        }
    }

    /// After a 429: treat the window as full for a whole interval.
    pub(super) fn saturate(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        let (max, used) = (s.max.min(MAX_WINDOW) as usize, s.log.len());
        for _ in used..max {
            s.log.push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn no_limit_answer() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-hubspot-correlation-id", HeaderValue::from_static("c"));
        h
    }

    #[tokio::test]
    async fn a_fixed_budget_is_not_switched_off_by_an_answer_without_headers() {
        let general = RateLimiter::new(2, Duration::from_secs(60));
        let search = RateLimiter::fixed(2, Duration::from_secs(60));
        for l in [&general, &search] {
            for _ in 0..2 {
                l.acquire().await.unwrap();
                l.release(Some(&no_limit_answer()));
            }
        }
        // The general limiter reads "no headers" as "not limited"; the search budget stays.
        assert!(!general.lock().fixed && !general.lock().enabled);
        let s = search.lock();
        assert!(s.enabled && s.log.len() == 2 && s.max == 2);
    }

    /// Issue 15.10: a hostile or broken answer's window size must not make the limiter
    /// allocate an entry per claimed request (4,000,000,000 would be 64 GB).
    #[tokio::test]
    async fn an_absurd_window_in_the_headers_is_clamped() {
        for claimed in ["4000000", "4000000000"] {
            let l = RateLimiter::new(100, Duration::from_secs(10));
            let mut h = HeaderMap::new();
            h.insert("x-hubspot-ratelimit-max", HeaderValue::from_static(claimed));
            h.insert(
                "x-hubspot-ratelimit-interval-milliseconds",
                HeaderValue::from_static("10000"),
            );
            h.insert(
                "x-hubspot-ratelimit-remaining",
                HeaderValue::from_static("0"),
            );
            l.acquire().await.unwrap();
            l.release(Some(&h));
            l.saturate();
            let s = l.lock();
            assert!(s.max <= MAX_WINDOW, "{claimed}: max {}", s.max);
            assert!(
                s.log.len() <= MAX_WINDOW as usize,
                "{claimed}: {} entries",
                s.log.len()
            );
        }
    }
}
