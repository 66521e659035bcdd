//! Configuration from the environment. A malformed value stops the service at startup with an
//! error that names the variable.

use crate::domain;
use rp_platform::config::{ConfigError, parse_or, var_or};
use std::net::SocketAddr;

/// The service's own settings (the platform's come from `PlatformConfig`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `NOTIFICATION_GRPC_ADDR` (default `127.0.0.1:50054`).
    pub grpc_addr: SocketAddr,
    /// `RP_APP_BASE_URL` (default `http://localhost:3000`) + `RP_CONNECTIONS_PATH` (default
    /// `/workspace/connections`): where every notification links to.
    pub connections_link: domain::ConnectionsLink,
}

impl Config {
    pub const DEFAULT_GRPC_ADDR: &'static str = "127.0.0.1:50054";
    pub const DEFAULT_APP_BASE_URL: &'static str = "http://localhost:3000";
    pub const DEFAULT_CONNECTIONS_PATH: &'static str = "/workspace/connections";

    /// `NOTIFICATION_METRICS_ADDR`'s default: where Prometheus scrapes the service's `/metrics`.
    pub const DEFAULT_METRICS_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9104);

    /// `NOTIFICATION_METRICS_ADDR` (default `127.0.0.1:9104`): the metrics endpoint's address.
    pub fn metrics_addr() -> Result<SocketAddr, ConfigError> {
        rp_platform::metrics::addr_from_env("NOTIFICATION_METRICS_ADDR", Self::DEFAULT_METRICS_ADDR)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let default_addr = SocketAddr::from(([127, 0, 0, 1], 50054));
        let grpc_addr = parse_or("NOTIFICATION_GRPC_ADDR", default_addr)?;
        let base = var_or("RP_APP_BASE_URL", Self::DEFAULT_APP_BASE_URL);
        let path = var_or("RP_CONNECTIONS_PATH", Self::DEFAULT_CONNECTIONS_PATH);
        let connections_link = domain::ConnectionsLink::new(&base, &path).map_err(|e| match e {
            domain::LinkError::BaseUrl(problem) => ConfigError::Invalid {
                var: "RP_APP_BASE_URL".into(),
                value: base.clone(),
                problem,
            },
            domain::LinkError::Path(problem) => ConfigError::Invalid {
                var: "RP_CONNECTIONS_PATH".into(),
                value: path.clone(),
                problem,
            },
        })?;
        Ok(Self {
            grpc_addr,
            connections_link,
        })
    }
}
