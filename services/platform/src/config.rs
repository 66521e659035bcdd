//! Configuration from environment variables, with defaults that fit the local dev stack.
//!
//! A missing or malformed value stops the service at startup with an error that names the
//! variable and says what is wrong with it.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {problem} (got {value:?})")]
    Invalid {
        var: String,
        value: String,
        problem: String,
    },
    #[error("{var} is required but not set: {hint}")]
    Missing { var: String, hint: String },
}

/// Reads a variable, falling back to `default` when unset or empty.
pub fn var_or(var: &str, default: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_string(),
    }
}

/// Reads a required variable.
pub fn required(var: &str, hint: &str) -> Result<String, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing {
            var: var.into(),
            hint: hint.into(),
        }),
    }
}

/// Parses a variable with `FromStr`, falling back to `default` when unset.
pub fn parse_or<T>(var: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                var: var.into(),
                value: v.clone(),
                problem: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// Parses a duration variable written as a number with a unit: `250ms`, `30s`, `5m`, `2h`, `7d`.
pub fn duration_or(var: &str, default: Duration) -> Result<Duration, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            parse_duration(v.trim()).map_err(|problem| ConfigError::Invalid {
                var: var.into(),
                value: v.clone(),
                problem,
            })
        }
        _ => Ok(default),
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| "a duration needs a unit: ms, s, m, h or d (e.g. 30s)".to_string())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "a duration starts with a whole number (e.g. 30s)".to_string())?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| "duration too large".to_string())
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        other => Err(format!(
            "unknown duration unit {other:?}: use ms, s, m, h or d"
        )),
    }
}

/// Where the shared infrastructure is, and how the event stream is laid out on the bus.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// `DATABASE_URL`: the PostgreSQL database that holds the event log and projections.
    pub database_url: String,
    /// `RP_MIGRATE_DATABASE_URL`: the owner's URL for migrations, when `DATABASE_URL` is the
    /// service role (which cannot create tables; `rp migrate --service-role`). `None`:
    /// `DATABASE_URL` migrates.
    pub migrate_database_url: Option<String>,
    /// `NATS_URL`.
    pub nats_url: String,
    pub bus: crate::bus::BusConfig,
    /// `RP_DB_STATEMENT_TIMEOUT`, `RP_DB_LOCK_TIMEOUT`, `RP_DB_IDLE_IN_TRANSACTION_TIMEOUT`.
    pub db_limits: crate::db::SessionLimits,
    /// `RP_PROCESSED_RETENTION`, `RP_DEAD_LETTER_RETENTION`.
    pub retention: crate::consumer::Retention,
    /// `RP_CONSUMER_MAX_DELIVER`, `RP_CONSUMER_RETRY_DELAYS`.
    pub consumer_retry: ConsumerRetry,
}

/// Every consumer's retry schedule, when the environment overrides it (`RP_CONSUMER_MAX_DELIVER`:
/// deliveries before a failing event is dead-lettered; `RP_CONSUMER_RETRY_DELAYS`: the delays
/// before the 1st, 2nd, ... redelivery, comma-separated, the last repeating). Unset, each
/// consumer keeps its own (`ConsumerConfig::new`: 6 deliveries, 1 s, 5 s, 30 s, 2 min, 5 min).
/// Shortened, a fault outlasts the schedule in seconds instead of minutes (`make chaos`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerRetry {
    pub max_deliver: Option<i64>,
    pub retry_delays: Option<Vec<Duration>>,
}

impl ConsumerRetry {
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::parse(
            var("RP_CONSUMER_MAX_DELIVER").as_deref(),
            var("RP_CONSUMER_RETRY_DELAYS").as_deref(),
        )
    }

    /// The schedule from the variables' values (`None`: unset).
    pub fn parse(
        max_deliver: Option<&str>,
        retry_delays: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let max_deliver = match max_deliver {
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "RP_CONSUMER_MAX_DELIVER".into(),
                        value: v.into(),
                        problem: "a whole number of deliveries, at least 1".into(),
                    });
                }
            },
            None => None,
        };
        let retry_delays = match retry_delays {
            Some(v) => Some(
                v.split(',')
                    .map(|d| parse_duration(d.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|problem| ConfigError::Invalid {
                        var: "RP_CONSUMER_RETRY_DELAYS".into(),
                        value: v.into(),
                        problem: format!("comma-separated durations (1s,5s,30s): {problem}"),
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            max_deliver,
            retry_delays,
        })
    }

    /// `cfg` with the overridden parts of the schedule.
    pub fn apply(&self, cfg: &mut crate::consumer::ConsumerConfig) {
        if let Some(n) = self.max_deliver {
            cfg.max_deliver = n;
        }
        if let Some(d) = &self.retry_delays {
            cfg.retry_delays = d.clone();
        }
    }
}

impl PlatformConfig {
    pub const DEFAULT_DATABASE_URL: &'static str = "postgres://postgres@127.0.0.1:5432/rp";
    pub const DEFAULT_NATS_URL: &'static str = "nats://127.0.0.1:4222";

    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = var_or("DATABASE_URL", Self::DEFAULT_DATABASE_URL);
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL".into(),
                value: database_url,
                problem: "must be a postgres:// URL".into(),
            });
        }
        let nats_url = var_or("NATS_URL", Self::DEFAULT_NATS_URL);
        if !(nats_url.starts_with("nats://")
            || nats_url.starts_with("tls://")
            || nats_url.contains(':'))
        {
            return Err(ConfigError::Invalid {
                var: "NATS_URL".into(),
                value: nats_url,
                problem: "must be a nats:// URL (host:port)".into(),
            });
        }
        let bus = crate::bus::BusConfig::from_env()?;
        let migrate_database_url = match std::env::var("RP_MIGRATE_DATABASE_URL") {
            Ok(u) if !u.trim().is_empty() => {
                let u = u.trim().to_string();
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                    return Err(ConfigError::Invalid {
                        var: "RP_MIGRATE_DATABASE_URL".into(),
                        value: "<not shown>".into(),
                        problem: "must be a postgres:// URL".into(),
                    });
                }
                Some(u)
            }
            _ => None,
        };
        Ok(Self {
            database_url,
            migrate_database_url,
            nats_url,
            db_limits: crate::db::SessionLimits::from_env()?,
            retention: crate::consumer::Retention::from_env(bus.max_age)?,
            consumer_retry: ConsumerRetry::from_env()?,
            bus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn a_consumer_retry_schedule_overrides_only_what_is_set() {
        let mut cfg = crate::consumer::ConsumerConfig::new(
            "c",
            crate::consumer::Ordering::Unordered { concurrency: 1 },
        );
        let defaults = (cfg.max_deliver, cfg.retry_delays.clone());
        ConsumerRetry::parse(None, None).unwrap().apply(&mut cfg);
        assert_eq!((cfg.max_deliver, cfg.retry_delays.clone()), defaults);
        ConsumerRetry::parse(Some("3"), Some("200ms, 1s"))
            .unwrap()
            .apply(&mut cfg);
        assert_eq!(cfg.max_deliver, 3);
        assert_eq!(
            cfg.retry_delays,
            vec![Duration::from_millis(200), Duration::from_secs(1)]
        );
        for (max, delays) in [(Some("0"), None), (Some("x"), None), (None, Some("1s,5"))] {
            let e = ConsumerRetry::parse(max, delays).unwrap_err().to_string();
            assert!(e.contains("RP_CONSUMER_"), "{e}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(parse_duration("30").unwrap_err().contains("unit"));
        assert!(parse_duration("s").unwrap_err().contains("whole number"));
        assert!(
            parse_duration("3w")
                .unwrap_err()
                .contains("unknown duration unit")
        );
    }
}
