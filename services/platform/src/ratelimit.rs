//! Rate limits by key (issue 15.2), on the `governor` crate (GCRA: one timestamp per key, no
//! allocation per request): every gRPC method per API key ([`grpc_per_key`], checked by
//! [`crate::apikeys::authenticate`], which every method calls), and the OAuth callback per client
//! address (the connector).
//!
//! | variable | default | what |
//! |---|---|---|
//! | `RP_GRPC_RATE_PER_KEY` | `100` | gRPC calls per second one API key may sustain |
//! | `RP_GRPC_BURST_PER_KEY` | `200` | calls one key may make at once before the rate applies |

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys tracked before idle ones are forgotten (a key whose bucket is full again holds nothing
/// worth keeping): bounds the memory of limiters keyed by something a caller chooses.
const PRUNE_ABOVE: usize = 10_000;

/// A sustained rate with a burst, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Rate {
    /// `per_second` and `burst`, each at least 1.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Rate {
            per_second: NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// A rate limiter with one bucket per key.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    rate: Rate,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("rate", &self.rate)
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        KeyedLimiter {
            inner: RateLimiter::keyed(quota),
            rate,
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Counts a call of `key`: `Err(wait)` when it is over its rate, with how long until it may
    /// call again.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.inner.len() > PRUNE_ABOVE {
            self.inner.retain_recent();
        }
        self.inner
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

fn env_u32(var: &str, default: u32) -> u32 {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(var, value = %v, default, "not a positive whole number; using the default");
                default
            }
        },
        _ => default,
    }
}

/// The per-key rate of gRPC calls from the environment (`RP_GRPC_RATE_PER_KEY`,
/// `RP_GRPC_BURST_PER_KEY`).
pub fn grpc_rate_from_env() -> Rate {
    Rate::new(
        env_u32("RP_GRPC_RATE_PER_KEY", 100),
        env_u32("RP_GRPC_BURST_PER_KEY", 200),
    )
}

static GRPC: LazyLock<RwLock<Arc<KeyedLimiter<String>>>> =
    LazyLock::new(|| RwLock::new(Arc::new(KeyedLimiter::new(grpc_rate_from_env()))));

/// The process's limiter of gRPC calls per API key.
pub fn grpc_per_key() -> Arc<KeyedLimiter<String>> {
    match GRPC.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Replaces the per-key gRPC rate (tests, or a service configuring it other than from the
/// environment); buckets start full again.
pub fn set_grpc_rate(rate: Rate) {
    let limiter = Arc::new(KeyedLimiter::new(rate));
    match GRPC.write() {
        Ok(mut g) => *g = limiter,
        Err(poisoned) => *poisoned.into_inner() = limiter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_waits_and_another_key_does_not() {
        let l = KeyedLimiter::new(Rate::new(1, 3));
        for _ in 0..3 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(l.check(&"b").is_ok());
    }

    #[test]
    fn zero_is_read_as_one() {
        assert_eq!(Rate::new(0, 0), Rate::new(1, 1));
    }
}
