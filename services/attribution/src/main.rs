//! The attribution service: wiring only (config, telemetry, consumers, shutdown).

use attribution::handlers::AttributionStep;
use rp_platform::consumer::{ConsumerConfig, Ordering};
use rp_platform::runtime::Service;
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attribution: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut svc = Service::start("attribution").await?;
    svc.consume(
        ConsumerConfig::new("attribution", Ordering::PerWorkspace)
            .event_types(AttributionStep::EVENT_TYPES),
        Arc::new(AttributionStep),
    );
    svc.wait().await
}
