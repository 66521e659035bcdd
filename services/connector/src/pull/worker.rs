//! The pull worker: claims runnable pull jobs (`FOR UPDATE SKIP LOCKED`, woken by NOTIFY,
//! polling as a fallback) and runs each, at most `concurrency` at a time.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::PullContext;
use super::run::execute_job;
use crate::store::{self, JOBS_CHANNEL};

/// Runs pull jobs until cancelled.
pub struct PullWorker {
    ctx: Arc<PullContext>,
    owner: String,
    concurrency: usize,
    poll: Duration,
}

impl PullWorker {
    pub fn new(ctx: Arc<PullContext>, concurrency: usize, poll: Duration) -> Self {
        let owner = format!(
            "connector-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            ctx,
            owner,
            concurrency: concurrency.max(1),
            poll,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(&self.ctx.pool).await?;
        listener.listen(JOBS_CHANNEL).await?;
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        tracing::info!(owner = %self.owner, concurrency = self.concurrency, "pull worker started");
        loop {
            while let Ok(permit) = permits.clone().try_acquire_owned() {
                match store::claim_job(&self.ctx.pool, &self.owner, self.ctx.lease).await {
                    Ok(Some(job)) => {
                        let (ctx, owner, cancel) =
                            (self.ctx.clone(), self.owner.clone(), cancel.clone());
                        running.spawn(async move {
                            execute_job(ctx, owner, job, cancel).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim pull jobs; retrying shortly");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                n = listener.recv() => {
                    if let Err(e) = n {
                        tracing::warn!(error = %e, "pull job notifications interrupted; reconnecting");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        while running.join_next().await.is_some() {}
        tracing::info!(owner = %self.owner, "pull worker stopped");
        Ok(())
    }
}
