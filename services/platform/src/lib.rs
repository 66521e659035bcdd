//! Shared plumbing of the Revenue Proven sync platform: the protobuf contracts, the PostgreSQL
//! event log, the NATS JetStream bus and its relay, the consumer runtime, telemetry and config.
//! Every service under `services/` stands on it.

pub mod apikeys;
pub mod bus;
pub mod config;
pub mod consumer;
pub mod contracts;
pub mod db;
pub mod eventlog;
pub mod grpc;
pub mod ids;
pub mod metrics;
pub mod nats_auth;
pub mod paging;
pub mod plans;
pub mod provider;
pub mod ratelimit;
pub mod relay;
pub mod runtime;
pub mod storage;
pub mod streams;
pub mod telemetry;
pub mod testing;

/// Installs rustls' ring crypto provider for the process (TLS to PostgreSQL, NATS, providers).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
