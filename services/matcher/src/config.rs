//! Configuration from the environment. A malformed value stops the service at startup with an
//! error that names the variable.

use rp_platform::config::{ConfigError, parse_or};
use std::net::SocketAddr;

/// The service's own settings (the platform's come from `PlatformConfig`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `MATCHER_GRPC_ADDR` (default `127.0.0.1:50052`).
    pub grpc_addr: SocketAddr,
    /// `MATCHER_INDEX_CACHE_RECORDS` (default 500,000): the most records (CRM accounts and
    /// LinkedIn companies) of workspaces' match indexes kept in memory between matching steps;
    /// past it the least recently used are dropped and rebuilt from the projection when next
    /// needed. Each index counts [`crate::handlers::INDEX_OVERHEAD`] records more for its fixed
    /// part. About 0.75 KiB a record in a large index: the default holds about nine typical
    /// workspaces (50k CRM companies, 5k LinkedIn), around 400 MiB.
    pub index_cache_records: usize,
}

impl Config {
    pub const DEFAULT_INDEX_CACHE_RECORDS: usize = 500_000;

    pub const DEFAULT_GRPC_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50052);

    /// `MATCHER_METRICS_ADDR`'s default: where Prometheus scrapes the service's `/metrics`.
    pub const DEFAULT_METRICS_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9102);

    /// `MATCHER_METRICS_ADDR` (default `127.0.0.1:9102`): the metrics endpoint's address.
    pub fn metrics_addr() -> Result<SocketAddr, ConfigError> {
        rp_platform::metrics::addr_from_env("MATCHER_METRICS_ADDR", Self::DEFAULT_METRICS_ADDR)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            grpc_addr: parse_or("MATCHER_GRPC_ADDR", Self::DEFAULT_GRPC_ADDR)?,
            index_cache_records: parse_or(
                "MATCHER_INDEX_CACHE_RECORDS",
                Self::DEFAULT_INDEX_CACHE_RECORDS,
            )?,
        })
    }
}
