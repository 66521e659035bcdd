//! `web`: serves the page and forwards its gRPC-Web calls (see the crate docs and README.md).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = rp_platform::telemetry::init("web")?;
    let config = web::Config::from_env()?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let serving = web::serve(&config, cancel.clone()).await?;
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("web: shutting down");
        cancel.cancel();
    });
    tracing::info!(
        "the page: http://{} (backends: connector {}, matcher {}, attribution {}, notification {})",
        serving.local_addr,
        config.connector,
        config.matcher,
        config.attribution,
        config.notification
    );
    serving.task.await??;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
