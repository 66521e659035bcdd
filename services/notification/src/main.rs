//! `notification`: serves the notification bell. `notification rebuild` instead empties the
//! projection, replays it from the event log and exits.

use rp_platform::runtime::Service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = notification::Config::from_env()?;
    let metrics_addr = notification::Config::metrics_addr()?;
    let mut svc = Service::start("notification").await?;
    if std::env::args().nth(1).as_deref() == Some("rebuild") {
        notification::store::migrate(&svc.migration_pool).await?;
        let report = notification::store::rebuild(&svc.pool).await?;
        println!(
            "rebuilt from {} events: {} notifications, {} integrations (log position {})",
            report.events, report.notifications, report.integrations, report.last_position
        );
        svc.cancel.cancel();
        return svc.wait().await;
    }
    svc.serve_metrics(metrics_addr).await?;
    notification::start(&mut svc, &config).await?;
    svc.wait().await
}
