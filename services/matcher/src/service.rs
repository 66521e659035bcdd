//! The long-running matcher service (NATS events, Postgres projection, gRPC).
//!
//! Placeholder until the service wiring is built on top of [`crate::domain::MatchIndex`].

/// Runs the service.
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("service wiring not built yet")
}
