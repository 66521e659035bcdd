//! The pull worker: claims runnable pull jobs (`FOR UPDATE SKIP LOCKED`, woken by NOTIFY,
//! polling as a fallback, and when the first lease held elsewhere runs out) and runs each, at
//! most `concurrency` at a time.
//!
//! Every claim has its own lease owner (`<worker>-<n>`), so a job this worker lost (taken over
//! after a long database outage) can never be renewed by the old run. A job this process is
//! still running is never claimed by it again, even with its lease run out: it is alive here.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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
        let here: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut claims = 0u64;
        tracing::info!(owner = %self.owner, concurrency = self.concurrency, "pull worker started");
        loop {
            while let Ok(permit) = permits.clone().try_acquire_owned() {
                claims += 1;
                let owner = format!("{}-{claims}", self.owner);
                let except = running_here(&here);
                match store::claim_job_except(&self.ctx.pool, &owner, self.ctx.lease, &except).await
                {
                    Ok(Some(job)) => {
                        tracing::info!(
                            sync_run_id = %job.sync_run_id,
                            attempt = job.attempts,
                            %owner,
                            "pull job claimed"
                        );
                        lock(&here).insert(job.sync_run_id.clone());
                        let (ctx, cancel, here) = (self.ctx.clone(), cancel.clone(), here.clone());
                        running.spawn(async move {
                            let id = job.sync_run_id.clone();
                            execute_job(ctx, owner, job, cancel).await;
                            lock(&here).remove(&id);
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
            let look_again = self.next_look(&here).await;
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
                _ = tokio::time::sleep(look_again) => {}
            }
        }
        while running.join_next().await.is_some() {}
        tracing::info!(owner = %self.owner, "pull worker stopped");
        Ok(())
    }

    /// When to look for jobs again unless woken: at the poll, or just after the first lease
    /// held elsewhere runs out (a crashed worker's job is taken over then, not a poll later).
    async fn next_look(&self, here: &Mutex<HashSet<String>>) -> Duration {
        let except = running_here(here);
        match store::next_lease_expiry(&self.ctx.pool, &except).await {
            Ok(Some(d)) => (d + Duration::from_millis(20)).min(self.poll),
            _ => self.poll,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn running_here(here: &Mutex<HashSet<String>>) -> Vec<String> {
    lock(here).iter().cloned().collect()
}
