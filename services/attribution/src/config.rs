//! Configuration from the environment. A malformed value stops the service at startup with an
//! error that names the variable.

use crate::domain::HalfLife;
use rp_platform::config::{ConfigError, parse_or, var_or};
use rp_platform::plans::{DEFAULT_PLANS, Plans};
use std::net::SocketAddr;

/// What the numbers depend on besides the log. A rebuild must use the same settings as the live
/// service to give the same numbers; each dashboard version records its half-life.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `RP_PLANS`: each plan's lookback windows (shared with the connector).
    pub plans: Plans,
    /// `ATTRIBUTION_HALF_LIFE_DAYS` (default 7): the time-decay model's half-life.
    pub half_life: HalfLife,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let spec = var_or("RP_PLANS", DEFAULT_PLANS);
        let plans = Plans::parse(&spec).map_err(|problem| ConfigError::Invalid {
            var: "RP_PLANS".into(),
            value: spec.clone(),
            problem,
        })?;
        let days: u32 = parse_or("ATTRIBUTION_HALF_LIFE_DAYS", HalfLife::DEFAULT_DAYS)?;
        let half_life = HalfLife::days(days).map_err(|problem| ConfigError::Invalid {
            var: "ATTRIBUTION_HALF_LIFE_DAYS".into(),
            value: days.to_string(),
            problem,
        })?;
        Ok(Self { plans, half_life })
    }
}

/// The service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// `ATTRIBUTION_GRPC_ADDR` (default `127.0.0.1:50053`).
    pub grpc_addr: SocketAddr,
}

impl Config {
    pub const DEFAULT_GRPC_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50053);

    /// `ATTRIBUTION_METRICS_ADDR`'s default: where Prometheus scrapes the service's `/metrics`.
    pub const DEFAULT_METRICS_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9103);

    /// `ATTRIBUTION_METRICS_ADDR` (default `127.0.0.1:9103`): the metrics endpoint's address.
    pub fn metrics_addr() -> Result<SocketAddr, ConfigError> {
        rp_platform::metrics::addr_from_env("ATTRIBUTION_METRICS_ADDR", Self::DEFAULT_METRICS_ADDR)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            settings: Settings::from_env()?,
            grpc_addr: parse_or("ATTRIBUTION_GRPC_ADDR", Self::DEFAULT_GRPC_ADDR)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_half_life_is_seven_days() {
        assert_eq!(HalfLife::default().as_days(), 7);
        assert_eq!(Config::DEFAULT_GRPC_ADDR.to_string(), "127.0.0.1:50053");
    }
}
