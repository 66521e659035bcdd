//! One pull job's life: the run's appends (each renewing the lease and checking the connection),
//! its token, its checkpoints, and how it ends (completed, failed, given back, or taken over).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rp_platform::contracts::events::v1::{
    self as ev, CheckpointAdvanced, FailureKind, ObjectCount, SyncFailed, SyncStarted, SyncStep,
    SyncStepStarted, envelope::Event,
};
use rp_platform::eventlog::{self, AppendError, Appended, ExpectedVersion, NewEvent};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::progress::Progress;
use super::{PullContext, crm, linkedin};
use crate::domain::batch::Oversized;
use crate::domain::failure::{Verdict, classify, disconnected_message};
use crate::domain::provider::{PageGuard, ProviderError, Secret};
use crate::domain::{
    ConnectionStatus, DisconnectReason, IntegrationId, ObjectKind, Provider, SyncRunId,
};
use crate::store::{self, JobRow};
use crate::vault::{Access, Cause, VaultError};

/// Why a run stopped early.
#[derive(Debug)]
pub enum RunError {
    /// End the run with SyncFailed.
    Failed {
        kind: FailureKind,
        message: String,
        location: String,
    },
    /// The provider refused our authorization; the connection was disconnected.
    Disconnected {
        reason: DisconnectReason,
        provider_message: String,
    },
    /// The connection is not connected (the user disconnected it meanwhile).
    NotConnected,
    /// Shutdown: give the job back.
    Shutdown,
    /// Another worker holds the job now: write nothing more.
    LeaseLost,
    /// The database or the log failed: a fault of ours that heals (retried within the run).
    Infra(String),
    /// A fault of ours that retrying cannot heal (unreadable tokens): the run fails at once.
    Internal(String),
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        RunError::Infra(e.to_string())
    }
}

impl From<AppendError> for RunError {
    fn from(e: AppendError) -> Self {
        RunError::Infra(e.to_string())
    }
}

impl From<rp_platform::eventlog::ReadError> for RunError {
    fn from(e: rp_platform::eventlog::ReadError) -> Self {
        RunError::Infra(e.to_string())
    }
}

/// Calls a provider with the run's access token; on a 401 refreshes once and calls again; any
/// other failure ends the run classified. `$token` is bound to the token for `$call`.
macro_rules! with_token {
    ($run:expr, $token:ident => $call:expr) => {{
        let mut refreshed = false;
        loop {
            let $token = $run.token().await?;
            match $call.await {
                Ok(v) => break v,
                Err(e) => $run.recover(e, &mut refreshed).await?,
            }
        }
    }};
}
pub(crate) use with_token;

/// One appended stream of a transaction: stream, expected version, events.
pub type Append = (String, ExpectedVersion, Vec<NewEvent>);

/// First wait before retrying after a fault of ours; it doubles up to [`RETRY_MAX_DELAY`].
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(250);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// One pull job being run.
pub struct Run {
    ctx: Arc<PullContext>,
    owner: String,
    job: JobRow,
    pub run_id: SyncRunId,
    pub provider: Provider,
    cause: Cause,
    access: Option<Access>,
    /// When to ask the vault again (it refreshes ahead of expiry).
    refresh_at: Option<DateTime<Utc>>,
    /// Where the run is, for SyncFailed.location ("companies page 3").
    pub position: String,
    counts: Vec<(ObjectKind, u64)>,
    /// Where the job was at its last committed append (pull/progress.rs), read again before
    /// every try.
    pub progress: Progress,
    /// SyncStarted is in the log (appended by this process).
    started_announced: bool,
    /// Steps whose SyncStepStarted is in the log.
    steps_announced: Vec<SyncStep>,
    /// Appends committed by this process (a retry that got further starts a new retry bound).
    appends: AtomicU64,
    /// When the oldest database call not yet followed by a successful one began (µs after
    /// `started`, 0: none): a call can wait for a connection a while before it fails, and the
    /// retry bound counts from when the trouble began, not from the error.
    db_waiting_since: AtomicU64,
    /// Time spent appending (the rest is the provider and our own work), for the logs.
    append_micros: std::sync::atomic::AtomicU64,
    /// Records left out as too large to travel, reported when the pull ends.
    oversized: std::sync::Mutex<Vec<Oversized>>,
    started: std::time::Instant,
}

impl Run {
    pub fn ctx(&self) -> &PullContext {
        &self.ctx
    }

    pub fn integration_id(&self) -> IntegrationId {
        self.job.integration_id
    }

    pub fn workspace_id(&self) -> uuid::Uuid {
        self.job.workspace_id
    }

    /// A new event of this run: its workspace, integration and causal chain.
    pub fn event(&self, event: Event) -> NewEvent {
        NewEvent::new(self.job.workspace_id.to_string(), event)
            .integration(self.job.integration_id.to_string())
            .correlation(self.job.correlation_id.clone())
            .causation(self.job.causation_id.clone())
    }

    /// The access token, refreshed ahead of its expiry.
    pub async fn token(&mut self) -> Result<Secret, RunError> {
        let due = match (&self.access, self.refresh_at) {
            (None, _) => true,
            (Some(_), Some(at)) => at <= Utc::now(),
            (Some(_), None) => false,
        };
        if due {
            let access = self
                .ctx
                .vault
                .access(self.job.integration_id, &self.cause)
                .await
                .map_err(|e| self.vault_error(e))?;
            self.refresh_at = self.ctx.vault.refresh_at(&access);
            self.access = Some(access);
        }
        match &self.access {
            Some(a) => Ok(a.token.clone()),
            None => Err(RunError::NotConnected),
        }
    }

    /// The Salesforce instance URL of the connection.
    pub async fn api_base(&mut self) -> Result<Option<String>, RunError> {
        self.token().await?;
        Ok(self.access.as_ref().and_then(|a| a.api_base.clone()))
    }

    fn vault_error(&self, e: VaultError) -> RunError {
        match e {
            VaultError::NotConnected => RunError::NotConnected,
            VaultError::Disconnected {
                reason,
                provider_message,
            } => RunError::Disconnected {
                reason,
                provider_message,
            },
            VaultError::Provider(p) => self.failure(&p, true),
            VaultError::Crypto(_) | VaultError::Corrupt(_) => RunError::Internal(e.to_string()),
            other @ (VaultError::Database(_) | VaultError::Append(_)) => {
                RunError::Infra(other.to_string())
            }
        }
    }

    /// The provider's answers cannot go on (a cursor named again, pages past the cap): the
    /// run fails as bad data from `endpoint`.
    pub fn bad_data(&self, endpoint: &str, detail: String) -> RunError {
        let e = ProviderError::BadPayload {
            provider: self.provider,
            endpoint: endpoint.to_string(),
            detail,
        };
        self.failure(&e, false)
    }

    /// Before reading the page at `cursor` of `endpoint`: a cursor named again, or a page past
    /// `CONNECTOR_MAX_PAGES`, fails the run as bad data.
    pub fn next_page(
        &self,
        guard: &mut PageGuard,
        endpoint: &str,
        cursor: Option<&str>,
    ) -> Result<(), RunError> {
        guard
            .next(cursor)
            .map_err(|detail| self.bad_data(endpoint, detail))
    }

    /// A guard for one paged read (`CONNECTOR_MAX_PAGES`).
    pub fn page_guard(&self, pages_read: u64) -> PageGuard {
        PageGuard::new(self.ctx.clients.max_pages(), pages_read)
    }

    fn failure(&self, e: &ProviderError, refreshed: bool) -> RunError {
        match classify(e, refreshed) {
            Verdict::Fail { kind, message } => {
                let location = match e {
                    ProviderError::BadPayload { endpoint, .. }
                    | ProviderError::Request { endpoint, .. } => {
                        format!("{endpoint}, {}", self.position)
                    }
                    _ => self.position.clone(),
                };
                RunError::Failed {
                    kind,
                    message,
                    location,
                }
            }
            Verdict::Disconnect {
                reason,
                provider_message,
            } => RunError::Disconnected {
                reason,
                provider_message,
            },
            // A 401 on a token we just refreshed.
            Verdict::Refresh => RunError::Failed {
                kind: FailureKind::Authorization,
                message: format!("{} rejected our access token", self.provider),
                location: self.position.clone(),
            },
        }
    }

    /// After a failed provider call: refresh and let the caller retry (once), or end the run.
    pub async fn recover(
        &mut self,
        e: ProviderError,
        refreshed: &mut bool,
    ) -> Result<(), RunError> {
        match classify(&e, *refreshed) {
            Verdict::Refresh => {
                let stale = self.access.as_ref().map_or(0, |a| a.generation);
                tracing::info!(position = %self.position, "access token rejected: refreshing once");
                let access = self
                    .ctx
                    .vault
                    .refresh(self.job.integration_id, stale, &self.cause)
                    .await
                    .map_err(|e| self.vault_error(e))?;
                self.refresh_at = self.ctx.vault.refresh_at(&access);
                self.access = Some(access);
                *refreshed = true;
                Ok(())
            }
            _ => Err(self.failure(&e, *refreshed)),
        }
    }

    /// The provider's clock now.
    pub async fn provider_now(&self) -> Result<DateTime<Utc>, RunError> {
        self.ctx.clock.now().await.map_err(RunError::Infra)
    }

    /// In the transaction of an append: renew the lease (false: the job is not ours any more)
    /// and check the connection is still connected.
    async fn fence(&self, conn: &mut sqlx::PgConnection) -> Result<(), RunError> {
        if !store::renew_lease(conn, &self.job.sync_run_id, &self.owner, self.ctx.lease).await? {
            return Err(RunError::LeaseLost);
        }
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM connector_connections WHERE integration_id = $1 FOR SHARE",
        )
        .bind(self.job.integration_id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
        if status.as_deref() != Some(ConnectionStatus::Connected.as_str()) {
            return Err(RunError::NotConnected);
        }
        Ok(())
    }

    /// Appends in a fenced transaction of its own.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, RunError> {
        let mut appended = self
            .append_with(vec![(stream.to_string(), expected, events)], None)
            .await?;
        appended
            .pop()
            .ok_or_else(|| RunError::Infra("nothing appended".into()))
    }

    /// Appends to each stream in one fenced transaction, recording `progress` (where a
    /// successor continues) in the same transaction.
    pub async fn append_with(
        &self,
        appends: Vec<Append>,
        progress: Option<&Progress>,
    ) -> Result<Vec<Appended>, RunError> {
        self.db_call();
        let t = std::time::Instant::now();
        let mut tx = self.ctx.pool.begin().await?;
        self.fence(&mut tx).await?;
        let mut out = Vec::with_capacity(appends.len());
        for (stream, expected, events) in appends {
            let appended = eventlog::append_in(&mut tx, &stream, expected, events)
                .await
                .map_err(|e| match e {
                    // Only checkpoints are appended at an exact version: someone else moved
                    // it, so another worker runs this job now.
                    AppendError::Conflict { .. } => RunError::LeaseLost,
                    other => other.into(),
                })?;
            out.push(appended);
        }
        if let Some(p) = progress
            && !store::save_progress(&mut tx, &self.job.sync_run_id, &self.owner, &p.to_json())
                .await?
        {
            return Err(RunError::LeaseLost);
        }
        tx.commit().await?;
        self.db_ok();
        self.appends.fetch_add(1, AtomicOrdering::Relaxed);
        self.append_micros.fetch_add(
            u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX),
            AtomicOrdering::Relaxed,
        );
        Ok(out)
    }

    /// A database call begins (the first since the last success marks when trouble began).
    fn db_call(&self) {
        let now = u64::try_from(self.started.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self.db_waiting_since.compare_exchange(
            0,
            now,
            AtomicOrdering::Relaxed,
            AtomicOrdering::Relaxed,
        );
    }

    fn db_ok(&self) {
        self.db_waiting_since.store(0, AtomicOrdering::Relaxed);
    }

    /// When the database calls that have not succeeded since began.
    fn db_waiting_since(&self) -> Option<Instant> {
        match self.db_waiting_since.load(AtomicOrdering::Relaxed) {
            0 => None,
            us => Some(self.started + Duration::from_micros(us)),
        }
    }

    /// SyncStepStarted, once per run and step (a retry, or a successor that finds the step
    /// under way in the progress, does not announce it again).
    pub async fn step(&mut self, step: SyncStep) -> Result<(), RunError> {
        if self.steps_announced.contains(&step) {
            return Ok(());
        }
        let e = self.event(Event::SyncStepStarted(SyncStepStarted {
            sync_run_id: self.run_id.to_string(),
            step: step as i32,
        }));
        self.append(&self.run_id.run_stream(), ExpectedVersion::Any, vec![e])
            .await?;
        self.steps_announced.push(step);
        Ok(())
    }

    /// Appends a full batch of records.
    pub async fn emit_batch(&self, batch: ev::RecordsPulled) -> Result<(), RunError> {
        self.emit_batch_with(batch, None).await
    }

    /// Appends a batch of records and, in the same transaction, where a successor continues.
    pub async fn emit_batch_with(
        &self,
        batch: ev::RecordsPulled,
        progress: Option<&Progress>,
    ) -> Result<(), RunError> {
        let e = self.event(Event::RecordsPulled(batch));
        self.append_with(
            vec![(self.run_id.records_stream(), ExpectedVersion::Any, vec![e])],
            progress,
        )
        .await?;
        Ok(())
    }

    /// The last CheckpointAdvanced of `kind`, and the version to append the next one at.
    pub async fn checkpoint(
        &self,
        kind: ObjectKind,
    ) -> Result<(Option<CheckpointAdvanced>, ExpectedVersion), RunError> {
        self.checkpoint_in(&self.job.integration_id.checkpoint_stream(kind.slug()))
            .await
    }

    /// The last CheckpointAdvanced of `kind`'s deletions, and the version to append the next at.
    pub async fn deletions_checkpoint(
        &self,
        kind: ObjectKind,
    ) -> Result<(Option<CheckpointAdvanced>, ExpectedVersion), RunError> {
        self.checkpoint_in(
            &self
                .job
                .integration_id
                .deletions_checkpoint_stream(kind.slug()),
        )
        .await
    }

    async fn checkpoint_in(
        &self,
        stream: &str,
    ) -> Result<(Option<CheckpointAdvanced>, ExpectedVersion), RunError> {
        let last = store::read_last_event(&self.ctx.store, stream).await?;
        Ok(match last {
            None => (None, ExpectedVersion::NoStream),
            Some(e) => {
                let expected = ExpectedVersion::Exact(e.version);
                match e.envelope.event {
                    Some(Event::CheckpointAdvanced(c)) => (Some(c), expected),
                    // A newer producer's event type: no checkpoint we can read; start over.
                    _ => (None, expected),
                }
            }
        })
    }

    /// Moves the checkpoint of `kind`; only call once the batches it covers are appended.
    pub async fn advance(
        &self,
        kind: ObjectKind,
        cursor: String,
        boundary_ids: Vec<String>,
        expected: ExpectedVersion,
    ) -> Result<(), RunError> {
        let stream = self.job.integration_id.checkpoint_stream(kind.slug());
        self.advance_in(&stream, kind, cursor, boundary_ids, expected)
            .await
    }

    async fn advance_in(
        &self,
        stream: &str,
        kind: ObjectKind,
        cursor: String,
        boundary_ids: Vec<String>,
        expected: ExpectedVersion,
    ) -> Result<(), RunError> {
        let (stream, expected, events) =
            self.checkpoint_append(stream, kind, cursor, boundary_ids, expected);
        self.append(&stream, expected, events).await?;
        Ok(())
    }

    /// The CheckpointAdvanced of `kind` in `stream`, to append with others.
    pub fn checkpoint_append(
        &self,
        stream: &str,
        kind: ObjectKind,
        cursor: String,
        boundary_ids: Vec<String>,
        expected: ExpectedVersion,
    ) -> Append {
        let e = self.event(Event::CheckpointAdvanced(CheckpointAdvanced {
            object_type: kind.to_event() as i32,
            cursor,
            boundary_ids,
            sync_run_id: self.run_id.to_string(),
        }));
        (stream.to_string(), expected, vec![e])
    }

    /// Ends an object: its checkpoints (`appends`) move and the progress records it finished,
    /// all in one transaction, so a successor either skips it whole or reads it again whole.
    pub async fn object_done(
        &mut self,
        kind: ObjectKind,
        taken: u64,
        appends: Vec<Append>,
    ) -> Result<(), RunError> {
        let progress = self.progress.with_done(kind.slug(), taken);
        self.append_with(appends, Some(&progress)).await?;
        self.progress = progress;
        Ok(())
    }

    pub fn count(&mut self, kind: ObjectKind, n: u64) {
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.counts.push((kind, n)),
        }
    }

    /// The counts of the given kinds, for PullCompleted.
    pub fn counts(&self, kinds: &[ObjectKind]) -> Vec<ObjectCount> {
        kinds
            .iter()
            .map(|k| ObjectCount {
                object_type: k.to_event() as i32,
                records: self
                    .counts
                    .iter()
                    .find(|(x, _)| x == k)
                    .map_or(0, |(_, c)| *c),
            })
            .collect()
    }

    /// Records left out of a batch as too large to travel (a batcher's `take_oversized`).
    pub fn note_oversized(&self, left_out: Vec<Oversized>) {
        if left_out.is_empty() {
            return;
        }
        for o in &left_out {
            tracing::warn!(id = %o.id, bytes = o.bytes, "a record too large to travel was left out");
        }
        if let Ok(mut v) = self.oversized.lock() {
            v.extend(left_out);
        }
    }

    /// What was left out, for the user: `None` when nothing was.
    fn oversized_report(&self) -> Option<String> {
        let v = self.oversized.lock().map(|v| v.clone()).unwrap_or_default();
        v.first()?;
        let max = crate::domain::batch::MAX_RECORD_BYTES;
        let what = |o: &Oversized| {
            let object = match o.object_type {
                ev::ObjectType::CrmCompany => "company",
                ev::ObjectType::CrmContact => "contact",
                ev::ObjectType::CrmDeal => "deal",
                ev::ObjectType::CrmPipeline => "pipeline",
                ev::ObjectType::LinkedinOrganization => "organization",
                _ => "record",
            };
            format!("{object} {} ({} bytes)", o.id, o.bytes)
        };
        let named: Vec<String> = v.iter().take(5).map(what).collect();
        let more = v.len().saturating_sub(named.len());
        Some(format!(
            "{p} sent {n} record{s} larger than one record may be ({max} bytes): {list}{more}. {it} left out and everything else synced; shorten {them} in {p} and the next sync picks {them} up.",
            p = self.provider,
            n = v.len(),
            s = if v.len() == 1 { "" } else { "s" },
            list = named.join(", "),
            more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            it = if v.len() == 1 { "It was" } else { "They were" },
            them = if v.len() == 1 { "it" } else { "them" },
        ))
    }

    /// Ends the job with its last events, in one transaction.
    async fn finish(&self, last: Vec<Event>, failed: bool, outcome: &str) -> Result<(), RunError> {
        let mut tx = self.ctx.pool.begin().await?;
        if !store::finish_job(&mut tx, &self.job.sync_run_id, &self.owner, failed, outcome).await? {
            return Err(RunError::LeaseLost);
        }
        eventlog::append_in(
            &mut tx,
            &self.run_id.run_stream(),
            ExpectedVersion::Any,
            last.into_iter().map(|e| self.event(e)).collect(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs the pull. A fault of ours (the database gone, as in a PostgreSQL restart) is
    /// retried with a doubling wait, each try continuing from the progress of the last
    /// committed append, until it has lasted `retry_for` without the pull getting any further;
    /// only then does it end the run (internal).
    async fn execute_retrying(&mut self) -> Result<Event, RunError> {
        // (when the trouble began, appends committed by then)
        let mut trouble: Option<(Instant, u64)> = None;
        let mut delay = RETRY_FIRST_DELAY;
        loop {
            let result = match self.reload_progress().await {
                Ok(()) => self.execute().await,
                Err(e) => Err(e),
            };
            let cause = match result {
                Err(RunError::Infra(cause)) => cause,
                other => return other,
            };
            let appends = self.appends.load(AtomicOrdering::Relaxed);
            let mut since = match trouble {
                Some((since, at)) if at == appends => since,
                _ => {
                    delay = RETRY_FIRST_DELAY;
                    Instant::now()
                }
            };
            if let Some(waiting) = self.db_waiting_since()
                && waiting < since
            {
                since = waiting;
            }
            trouble = Some((since, appends));
            let left = self.ctx.retry_for.saturating_sub(since.elapsed());
            if left.is_zero() {
                tracing::error!(
                    error = %cause,
                    failing_for_secs = since.elapsed().as_secs_f64(),
                    "a fault of ours did not heal within CONNECTOR_PULL_RETRY_FOR: ending the run"
                );
                return Err(RunError::Infra(cause));
            }
            let wait = delay.min(left);
            tracing::warn!(
                error = %cause,
                position = %self.position,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "a fault of ours interrupted the pull: retrying from the last appended page"
            );
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(RETRY_MAX_DELAY);
        }
    }

    /// Reads where the job is (what its last committed append recorded) before a try.
    async fn reload_progress(&mut self) -> Result<(), RunError> {
        self.db_call();
        let stored = store::load_progress(&self.ctx.pool, &self.job.sync_run_id).await?;
        self.db_ok();
        self.progress = Progress::parse(stored);
        if !self.progress.is_empty() && !self.steps_announced.contains(&SyncStep::CrmPull) {
            // Only CRM pulls record progress, after announcing their step.
            self.steps_announced.push(SyncStep::CrmPull);
        }
        if let Some(w) = &self.progress.walk {
            tracing::info!(
                object = %w.object,
                pages = w.pages,
                records = w.taken,
                done = ?self.progress.done,
                "continuing the pull from its last appended page"
            );
        }
        self.counts.clear();
        Ok(())
    }

    async fn execute(&mut self) -> Result<Event, RunError> {
        if self.job.attempts == 1 && !self.started_announced {
            let e = self.event(Event::SyncStarted(SyncStarted {
                sync_run_id: self.run_id.to_string(),
                provider: self.provider.to_event() as i32,
            }));
            self.append(&self.run_id.run_stream(), ExpectedVersion::Any, vec![e])
                .await?;
            self.started_announced = true;
        }
        match self.provider {
            Provider::Linkedin => linkedin::pull(self).await,
            Provider::Hubspot => crm::hubspot(self).await,
            Provider::Salesforce => crm::salesforce(self).await,
        }
    }
}

/// Runs one claimed job to its end (or gives it back on shutdown).
pub async fn execute_job(
    ctx: Arc<PullContext>,
    owner: String,
    job: JobRow,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!(
        "pull",
        sync_run_id = %job.sync_run_id,
        integration_id = %job.integration_id,
        workspace_id = %job.workspace_id,
        attempt = job.attempts,
        provider = tracing::field::Empty,
    );
    rp_platform::telemetry::set_remote_parent(&span, &job.traceparent, &job.tracestate);
    run_claimed(ctx, owner, job, cancel).instrument(span).await
}

async fn run_claimed(ctx: Arc<PullContext>, owner: String, job: JobRow, cancel: CancellationToken) {
    let sync_run_id = job.sync_run_id.clone();
    let run_id = match SyncRunId::parse(&job.sync_run_id) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "pull job with an unusable run id");
            return;
        }
    };
    let conn = match ctx.pool.acquire().await {
        Ok(mut c) => store::connection(&mut c, job.integration_id).await,
        Err(e) => Err(e),
    };
    let provider = match conn {
        Ok(Some(c)) => c.provider,
        Ok(None) => {
            tracing::error!("pull job for an integration that does not exist");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the connection; the job will be retried");
            return;
        }
    };
    tracing::Span::current().record("provider", tracing::field::display(provider));
    let cause = Cause {
        correlation_id: job.correlation_id.clone(),
        causation_id: job.causation_id.clone(),
    };
    let mut run = Run {
        ctx: ctx.clone(),
        owner: owner.clone(),
        job,
        run_id,
        provider,
        cause,
        access: None,
        refresh_at: None,
        position: "start".into(),
        counts: Vec::new(),
        progress: Progress::default(),
        started_announced: false,
        steps_announced: Vec::new(),
        appends: AtomicU64::new(0),
        db_waiting_since: AtomicU64::new(0),
        append_micros: std::sync::atomic::AtomicU64::new(0),
        oversized: std::sync::Mutex::new(Vec::new()),
        started: std::time::Instant::now(),
    };

    // The lease is renewed in the background, every heartbeat, whatever the pull is doing (a
    // provider can be slower than a lease); losing it stops the run.
    let lost = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let renewer = {
        let (pool, sync_run_id, owner, lease, heartbeat) = (
            ctx.pool.clone(),
            sync_run_id.clone(),
            owner.clone(),
            ctx.lease,
            ctx.heartbeat,
        );
        let (lost, stop) = (lost.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(heartbeat) => {}
                }
                let renewed = match pool.acquire().await {
                    Ok(mut c) => store::renew_lease(&mut c, &sync_run_id, &owner, lease).await,
                    Err(e) => Err(e),
                };
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, AtomicOrdering::SeqCst);
                        stop.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the pull lease"),
                }
            }
        })
    };

    let result = if run.job.attempts > ctx.max_attempts {
        Err(RunError::Failed {
            kind: FailureKind::Internal,
            message: format!(
                "the pull was interrupted {} times; giving up until the next sync",
                run.job.attempts - 1
            ),
            location: String::new(),
        })
    } else {
        tokio::select! {
            r = run.execute_retrying() => r,
            _ = cancel.cancelled() => Err(RunError::Shutdown),
            _ = stop.cancelled() => Err(RunError::LeaseLost),
        }
    };
    stop.cancel();
    let _ = renewer.await;
    let result = match result {
        Err(RunError::Shutdown) if lost.load(AtomicOrdering::SeqCst) => Err(RunError::LeaseLost),
        other => other,
    };
    end_run(&run, result, &cancel).await;
}

/// Records the end of the job with its last event, waiting for the database to come back if
/// it is away (until shutdown, or until another worker holds the job).
async fn record_end(
    run: &Run,
    last: Vec<Event>,
    failed: bool,
    outcome: &str,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let mut delay = RETRY_FIRST_DELAY;
    loop {
        match run.finish(last.clone(), failed, outcome).await {
            Err(RunError::Infra(e)) => {
                tracing::warn!(error = %e, outcome, "cannot record the end of the pull yet: retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(RunError::Infra(e)),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_MAX_DELAY);
            }
            other => return other,
        }
    }
}

async fn end_run(run: &Run, result: Result<Event, RunError>, cancel: &CancellationToken) {
    let (kind, message, location) = match result {
        Ok(last) => {
            // Records too large to travel were left out: the pull's step completes (so the
            // rest goes on downstream), and the run reports the bad data, naming them.
            let (events, failed, outcome) = match run.oversized_report() {
                None => (vec![last], false, "completed"),
                Some(message) => {
                    let next_attempt_at = run
                        .ctx
                        .schedule
                        .next_scheduled_sync(run.integration_id())
                        .await
                        .map(rp_platform::contracts::timestamp);
                    let bad = Event::SyncFailed(SyncFailed {
                        sync_run_id: run.run_id.to_string(),
                        kind: FailureKind::BadPayload as i32,
                        step: current_step(run.provider, &run.position) as i32,
                        message,
                        location: run.position.clone(),
                        next_attempt_at,
                    });
                    (vec![last, bad], true, FailureKind::BadPayload.as_str_name())
                }
            };
            match record_end(run, events, failed, outcome, cancel).await {
                Ok(()) => tracing::info!(
                    counts = ?run.counts,
                    secs = run.started.elapsed().as_secs_f64(),
                    appending_secs = run.append_micros.load(AtomicOrdering::Relaxed) as f64 / 1e6,
                    "pull completed"
                ),
                Err(e) => tracing::warn!(error = ?e, "could not record the end of the pull"),
            }
            return;
        }
        Err(RunError::Shutdown) => {
            tracing::info!("shutting down: giving the pull job back");
            if let Err(e) = store::release_job(&run.ctx.pool, run.run_id.as_str(), &run.owner).await
            {
                tracing::warn!(error = %e, "could not give the job back; its lease will run out");
            }
            return;
        }
        Err(RunError::LeaseLost) => {
            tracing::warn!("another worker took the pull job over: stopping without writing");
            return;
        }
        Err(RunError::Failed {
            kind,
            message,
            location,
        }) => (kind, message, location),
        Err(RunError::Disconnected {
            reason,
            provider_message,
        }) => (
            FailureKind::Authorization,
            disconnected_message(run.provider, reason, &provider_message),
            run.position.clone(),
        ),
        Err(RunError::NotConnected) => (
            FailureKind::Authorization,
            format!(
                "{p} was disconnected: syncing has stopped. Reconnect {p} on the Connections page.",
                p = run.provider
            ),
            run.position.clone(),
        ),
        Err(RunError::Infra(cause) | RunError::Internal(cause)) => {
            tracing::error!(error = %cause, "the pull failed on our side");
            (
                FailureKind::Internal,
                "An internal error interrupted the sync; the next sync continues from the last \
                 checkpoint."
                    .to_string(),
                run.position.clone(),
            )
        }
    };
    let next_attempt_at = match kind {
        FailureKind::ProviderOutage
        | FailureKind::RateLimited
        | FailureKind::BadPayload
        | FailureKind::ApiVersion
        | FailureKind::Internal => run
            .ctx
            .schedule
            .next_scheduled_sync(run.integration_id())
            .await
            .map(rp_platform::contracts::timestamp),
        _ => None,
    };
    tracing::warn!(kind = kind.as_str_name(), %location, %message, "pull failed");
    let failed = Event::SyncFailed(SyncFailed {
        sync_run_id: run.run_id.to_string(),
        kind: kind as i32,
        step: current_step(run.provider, &run.position) as i32,
        message,
        location,
        next_attempt_at,
    });
    if let Err(e) = record_end(run, vec![failed], true, kind.as_str_name(), cancel).await {
        tracing::warn!(error = ?e, "could not record the failure; the job will be retried when its lease runs out");
    }
}

/// The step a failure happened in, from where the run was.
fn current_step(provider: Provider, position: &str) -> SyncStep {
    match provider {
        Provider::Linkedin if position.starts_with("organizations") => SyncStep::CompanyResolution,
        Provider::Linkedin => SyncStep::LinkedinPull,
        Provider::Hubspot | Provider::Salesforce => SyncStep::CrmPull,
    }
}
