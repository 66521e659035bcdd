//! The connector's PostgreSQL tables (migrations/): connections, the token vault, OAuth states,
//! workspaces' plans and pull jobs. Every query the connector runs against them is here.
//!
//! Checkpoints are not a table: they are the last event of `checkpoint-<id>-<object>` in the
//! log ([`read_last_event`]).

use chrono::{DateTime, Utc};
use rp_platform::eventlog::{EventStore, ReadError, RecordedEvent};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::crypto::Sealed;
use crate::domain::{ConnectionStatus, DisconnectReason, IntegrationId, Provider};

/// Applies the connector's migrations (beside the platform's; each ignores the other's).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

// ---- connections ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    pub integration_id: IntegrationId,
    pub workspace_id: Uuid,
    pub provider: Provider,
    pub status: ConnectionStatus,
    pub external_account_id: String,
    pub scopes: Vec<String>,
    pub connected_at: Option<DateTime<Utc>>,
    pub authorized_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub disconnect_reason: Option<DisconnectReason>,
    pub provider_message: String,
}

const CONNECTION_COLUMNS: &str = "integration_id, workspace_id, provider, status, \
    external_account_id, scopes, connected_at, authorized_at, disconnected_at, \
    disconnect_reason, provider_message";

fn connection_row(row: &sqlx::postgres::PgRow) -> Result<ConnectionRow, sqlx::Error> {
    let provider: String = row.try_get("provider")?;
    let status: String = row.try_get("status")?;
    let reason: Option<String> = row.try_get("disconnect_reason")?;
    let decode = |what: &str, v: &str| sqlx::Error::Decode(format!("{what} {v:?}").into());
    Ok(ConnectionRow {
        integration_id: IntegrationId::new(row.try_get("integration_id")?),
        workspace_id: row.try_get("workspace_id")?,
        provider: Provider::from_slug(&provider).ok_or_else(|| decode("provider", &provider))?,
        status: status.parse().map_err(|_| decode("status", &status))?,
        external_account_id: row.try_get("external_account_id")?,
        scopes: row.try_get("scopes")?,
        connected_at: row.try_get("connected_at")?,
        authorized_at: row.try_get("authorized_at")?,
        disconnected_at: row.try_get("disconnected_at")?,
        disconnect_reason: reason.as_deref().and_then(DisconnectReason::parse),
        provider_message: row.try_get("provider_message")?,
    })
}

pub async fn connection(
    conn: &mut PgConnection,
    id: IntegrationId,
) -> Result<Option<ConnectionRow>, sqlx::Error> {
    let sql =
        format!("SELECT {CONNECTION_COLUMNS} FROM connector_connections WHERE integration_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(connection_row)
        .transpose()
}

/// The connection, locked until the transaction ends (state changes go through this).
pub async fn lock_connection(
    conn: &mut PgConnection,
    id: IntegrationId,
) -> Result<Option<ConnectionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connector_connections WHERE integration_id = $1 FOR UPDATE"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(connection_row)
        .transpose()
}

pub async fn list_connections(
    pool: &PgPool,
    workspace_id: Uuid,
) -> Result<Vec<ConnectionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connector_connections \
         WHERE workspace_id = $1 AND status <> 'pending' ORDER BY provider"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(workspace_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(connection_row)
        .collect()
}

/// The workspace's integration with `provider`, created as `pending` when there is none. Locked.
pub async fn ensure_connection(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    provider: Provider,
) -> Result<ConnectionRow, sqlx::Error> {
    sqlx::query(
        "INSERT INTO connector_connections (integration_id, workspace_id, provider, status) \
         VALUES ($1, $2, $3, 'pending') ON CONFLICT (workspace_id, provider) DO NOTHING",
    )
    .bind(IntegrationId::generate().as_uuid())
    .bind(workspace_id)
    .bind(provider.slug())
    .execute(&mut *conn)
    .await?;
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connector_connections \
         WHERE workspace_id = $1 AND provider = $2 FOR UPDATE"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(workspace_id)
        .bind(provider.slug())
        .fetch_one(conn)
        .await?;
    connection_row(&row)
}

pub async fn mark_connected(
    conn: &mut PgConnection,
    id: IntegrationId,
    external_account_id: &str,
    scopes: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connector_connections SET status = 'connected', external_account_id = $2, \
             scopes = $3, connected_at = COALESCE(connected_at, now()), authorized_at = now(), \
             disconnected_at = NULL, disconnect_reason = NULL, provider_message = '', \
             updated_at = now() \
         WHERE integration_id = $1",
    )
    .bind(id.as_uuid())
    .bind(external_account_id)
    .bind(scopes)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_disconnected(
    conn: &mut PgConnection,
    id: IntegrationId,
    reason: DisconnectReason,
    provider_message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connector_connections SET status = 'disconnected', disconnected_at = now(), \
             disconnect_reason = $2, provider_message = $3, updated_at = now() \
         WHERE integration_id = $1",
    )
    .bind(id.as_uuid())
    .bind(reason.as_str())
    .bind(provider_message)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- token vault ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub sealed: Sealed,
    pub api_base: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub generation: i64,
}

fn token_row(row: &sqlx::postgres::PgRow) -> Result<TokenRow, sqlx::Error> {
    Ok(TokenRow {
        sealed: Sealed {
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        },
        api_base: row.try_get("api_base")?,
        access_expires_at: row.try_get("access_expires_at")?,
        generation: row.try_get("generation")?,
    })
}

pub async fn tokens(
    conn: &mut PgConnection,
    id: IntegrationId,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query(
        "SELECT key_id, nonce, ciphertext, api_base, access_expires_at, generation \
         FROM connector_tokens WHERE integration_id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(token_row)
    .transpose()
}

/// The vault row, locked: replicas refreshing the same connection wait here, then re-read.
pub async fn lock_tokens(
    conn: &mut PgConnection,
    id: IntegrationId,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query(
        "SELECT key_id, nonce, ciphertext, api_base, access_expires_at, generation \
         FROM connector_tokens WHERE integration_id = $1 FOR UPDATE",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(token_row)
    .transpose()
}

/// Up to `limit` vault rows not sealed under `active`, after `after` in integration id order,
/// locked as [`lock_tokens`] locks one (`rp tokens rewrap`).
pub async fn lock_stale_tokens(
    conn: &mut PgConnection,
    active: &str,
    after: uuid::Uuid,
    limit: i64,
) -> Result<Vec<(IntegrationId, TokenRow)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT integration_id, key_id, nonce, ciphertext, api_base, access_expires_at, \
             generation \
         FROM connector_tokens WHERE key_id <> $1 AND integration_id > $2 \
         ORDER BY integration_id LIMIT $3 FOR UPDATE",
    )
    .bind(active)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let id: uuid::Uuid = r.try_get("integration_id")?;
            Ok((IntegrationId::new(id), token_row(r)?))
        })
        .collect()
}

/// Writes (or replaces) the sealed tokens; returns the new generation.
pub async fn put_tokens(
    conn: &mut PgConnection,
    id: IntegrationId,
    sealed: &Sealed,
    api_base: Option<&str>,
    access_expires_at: Option<DateTime<Utc>>,
    refreshed: bool,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO connector_tokens (integration_id, key_id, nonce, ciphertext, api_base, \
             access_expires_at, refreshed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END) \
         ON CONFLICT (integration_id) DO UPDATE SET key_id = EXCLUDED.key_id, \
             nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, \
             api_base = COALESCE(EXCLUDED.api_base, connector_tokens.api_base), \
             access_expires_at = EXCLUDED.access_expires_at, \
             generation = connector_tokens.generation + 1, \
             refreshed_at = COALESCE(EXCLUDED.refreshed_at, connector_tokens.refreshed_at), \
             updated_at = now() \
         RETURNING generation",
    )
    .bind(id.as_uuid())
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(api_base)
    .bind(access_expires_at)
    .bind(refreshed)
    .fetch_one(conn)
    .await
}

pub async fn delete_tokens(conn: &mut PgConnection, id: IntegrationId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM connector_tokens WHERE integration_id = $1")
        .bind(id.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

// ---- OAuth states --------------------------------------------------------------------------

pub struct NewState<'a> {
    pub state_sha256: &'a [u8],
    pub workspace_id: Uuid,
    pub integration_id: IntegrationId,
    pub provider: Provider,
    pub verifier: &'a Sealed,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_state(conn: &mut PgConnection, s: NewState<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connector_oauth_states (state_sha256, workspace_id, integration_id, \
             provider, key_id, nonce, verifier, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.state_sha256)
    .bind(s.workspace_id)
    .bind(s.integration_id.as_uuid())
    .bind(s.provider.slug())
    .bind(&s.verifier.key_id)
    .bind(&s.verifier.nonce)
    .bind(&s.verifier.ciphertext)
    .bind(s.expires_at)
    .execute(&mut *conn)
    .await?;
    // Old states are of no use to anyone: keep the table small.
    sqlx::query("DELETE FROM connector_oauth_states WHERE expires_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug)]
pub struct StateRow {
    pub workspace_id: Uuid,
    pub integration_id: IntegrationId,
    pub provider: Provider,
    pub verifier: Sealed,
}

#[derive(Debug)]
pub enum StateLookup {
    /// Valid, now used up.
    Valid(StateRow),
    /// Never issued by us.
    Unknown,
    /// Issued, but already used once.
    Used,
    /// Issued, but too old (now used up as well).
    Expired,
}

/// Uses a state up, atomically: of two callbacks with the same state, one gets `Valid`.
pub async fn consume_state(
    conn: &mut PgConnection,
    state_sha256: &[u8],
) -> Result<StateLookup, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE connector_oauth_states SET used_at = now() \
         WHERE state_sha256 = $1 AND used_at IS NULL \
         RETURNING workspace_id, integration_id, provider, key_id, nonce, verifier, \
             expires_at < now() AS expired",
    )
    .bind(state_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let used: Option<bool> = sqlx::query_scalar(
            "SELECT used_at IS NOT NULL FROM connector_oauth_states WHERE state_sha256 = $1",
        )
        .bind(state_sha256)
        .fetch_optional(conn)
        .await?;
        return Ok(match used {
            Some(_) => StateLookup::Used,
            None => StateLookup::Unknown,
        });
    };
    if row.try_get::<bool, _>("expired")? {
        return Ok(StateLookup::Expired);
    }
    let provider: String = row.try_get("provider")?;
    let Some(provider) = Provider::from_slug(&provider) else {
        return Ok(StateLookup::Unknown);
    };
    Ok(StateLookup::Valid(StateRow {
        workspace_id: row.try_get("workspace_id")?,
        integration_id: IntegrationId::new(row.try_get("integration_id")?),
        provider,
        verifier: Sealed {
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("verifier")?,
        },
    }))
}

/// Keeps the provider's authorization code of a consumed state until CompleteConnect, sealed
/// under the SHA-256 of its single-use completion handle (issue 15.8).
pub async fn hold_code(
    conn: &mut PgConnection,
    state_sha256: &[u8],
    completion_sha256: &[u8],
    code: &Sealed,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connector_oauth_states SET completion_sha256 = $2, code_key_id = $3, \
             code_nonce = $4, code = $5, completion_expires_at = $6 \
         WHERE state_sha256 = $1",
    )
    .bind(state_sha256)
    .bind(completion_sha256)
    .bind(&code.key_id)
    .bind(&code.nonce)
    .bind(&code.ciphertext)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// An authorization waiting to be completed.
#[derive(Debug)]
pub struct HeldCode {
    pub state_sha256: Vec<u8>,
    pub state: StateRow,
    pub code: Sealed,
}

#[derive(Debug)]
pub enum CompletionLookup {
    /// Valid for this workspace, now used up.
    Valid(Box<HeldCode>),
    /// Never issued.
    Unknown,
    /// Started in another workspace (now used up: a forwarded link is spent).
    Foreign { provider: Provider },
    /// This workspace's, already completed once.
    Used,
    /// This workspace's, too old (now used up as well).
    Expired,
}

/// Uses up a completion handle for `workspace_id`, atomically (of two calls with the same
/// handle, one gets `Valid`). A handle of another workspace is used up too.
pub async fn take_completion(
    conn: &mut PgConnection,
    completion_sha256: &[u8],
    workspace_id: Uuid,
) -> Result<CompletionLookup, sqlx::Error> {
    let row = sqlx::query(
        "SELECT state_sha256, workspace_id, integration_id, provider, key_id, nonce, verifier, \
             code_key_id, code_nonce, code, completed_at IS NOT NULL AS used, \
             completion_expires_at < now() AS expired \
         FROM connector_oauth_states WHERE completion_sha256 = $1 FOR UPDATE",
    )
    .bind(completion_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(CompletionLookup::Unknown);
    };
    let used: bool = row.try_get("used")?;
    let owner: Uuid = row.try_get("workspace_id")?;
    if !used {
        sqlx::query(
            "UPDATE connector_oauth_states SET completed_at = now() WHERE completion_sha256 = $1",
        )
        .bind(completion_sha256)
        .execute(&mut *conn)
        .await?;
    }
    let provider: String = row.try_get("provider")?;
    let Some(provider) = Provider::from_slug(&provider) else {
        return Ok(CompletionLookup::Unknown);
    };
    if owner != workspace_id {
        return Ok(CompletionLookup::Foreign { provider });
    }
    if used {
        return Ok(CompletionLookup::Used);
    }
    if row.try_get::<Option<bool>, _>("expired")?.unwrap_or(true) {
        return Ok(CompletionLookup::Expired);
    }
    let (Some(key_id), Some(nonce), Some(ciphertext)) = (
        row.try_get::<Option<String>, _>("code_key_id")?,
        row.try_get::<Option<Vec<u8>>, _>("code_nonce")?,
        row.try_get::<Option<Vec<u8>>, _>("code")?,
    ) else {
        return Ok(CompletionLookup::Unknown);
    };
    Ok(CompletionLookup::Valid(Box::new(HeldCode {
        state_sha256: row.try_get("state_sha256")?,
        state: StateRow {
            workspace_id: owner,
            integration_id: IntegrationId::new(row.try_get("integration_id")?),
            provider,
            verifier: Sealed {
                key_id: row.try_get("key_id")?,
                nonce: row.try_get("nonce")?,
                ciphertext: row.try_get("verifier")?,
            },
        },
        code: Sealed {
            key_id,
            nonce,
            ciphertext,
        },
    })))
}

// ---- workspaces ----------------------------------------------------------------------------

pub async fn set_plan(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    plan: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connector_workspaces (workspace_id, plan) VALUES ($1, $2) \
         ON CONFLICT (workspace_id) DO UPDATE SET plan = EXCLUDED.plan, updated_at = now()",
    )
    .bind(workspace_id)
    .bind(plan)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn plan_of(pool: &PgPool, workspace_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT plan FROM connector_workspaces WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_optional(pool)
        .await
}

// ---- pull jobs -----------------------------------------------------------------------------

/// Channel the pull workers LISTEN on; a queued job NOTIFYs it when its transaction commits.
pub const JOBS_CHANNEL: &str = "connector_pull_jobs";

#[derive(Debug, Clone)]
pub struct NewJob {
    pub sync_run_id: String,
    pub integration_id: IntegrationId,
    pub workspace_id: Uuid,
    pub correlation_id: String,
    pub causation_id: String,
    pub traceparent: String,
    pub tracestate: String,
}

/// Records a pull job (idempotent: a redelivered SyncRequested finds it there). Returns whether
/// it is new.
pub async fn enqueue_job(conn: &mut PgConnection, job: &NewJob) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO pull_jobs (sync_run_id, integration_id, workspace_id, correlation_id, \
             causation_id, traceparent, tracestate) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sync_run_id) DO NOTHING",
    )
    .bind(&job.sync_run_id)
    .bind(job.integration_id.as_uuid())
    .bind(job.workspace_id)
    .bind(&job.correlation_id)
    .bind(&job.causation_id)
    .bind(&job.traceparent)
    .bind(&job.tracestate)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(JOBS_CHANNEL)
            .execute(&mut *conn)
            .await?;
        // Finished jobs are of no use after a while: keep the table small. Safe for
        // idempotency: a SyncRequested that old can only come back through a replay, which the
        // consumer's processed mark or floor skips (docs/bus.md, "Retention").
        sqlx::query(
            "DELETE FROM pull_jobs WHERE state IN ('done', 'failed') \
             AND finished_at < now() - make_interval(days => $1)",
        )
        .bind(PULL_JOB_RETENTION_DAYS)
        .execute(conn)
        .await?;
    }
    Ok(inserted)
}

/// Days a finished pull job is kept.
pub const PULL_JOB_RETENTION_DAYS: i32 = 40;

#[derive(Debug, Clone)]
pub struct JobRow {
    pub sync_run_id: String,
    pub integration_id: IntegrationId,
    pub workspace_id: Uuid,
    pub correlation_id: String,
    pub causation_id: String,
    pub traceparent: String,
    pub tracestate: String,
    pub attempts: i32,
}

/// Claims the oldest runnable job: queued with no running job of its integration, or running
/// under a lease that ran out (its worker died). `FOR UPDATE SKIP LOCKED` lets workers claim
/// in parallel; the unique index on running jobs per integration settles any race, and the
/// loser (unique violation) just reports nothing claimed.
pub async fn claim_job(
    pool: &PgPool,
    owner: &str,
    lease: std::time::Duration,
) -> Result<Option<JobRow>, sqlx::Error> {
    claim_job_except(pool, owner, lease, &[]).await
}

/// [`claim_job`], never one of `running_here` (jobs this process is still running, say
/// retrying through a database outage that outlasted their lease: it is alive, not dead).
/// `owner` should be new for every claim, so that an earlier holder's renewals fail.
pub async fn claim_job_except(
    pool: &PgPool,
    owner: &str,
    lease: std::time::Duration,
    running_here: &[String],
) -> Result<Option<JobRow>, sqlx::Error> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut contended = 0;
    let row = loop {
        let res = sqlx::query(
            "WITH candidate AS ( \
                 SELECT j.sync_run_id FROM pull_jobs j \
                 WHERE (j.state = 'queued' AND NOT EXISTS ( \
                            SELECT 1 FROM pull_jobs r \
                            WHERE r.integration_id = j.integration_id AND r.state = 'running')) \
                    OR (j.state = 'running' AND j.lease_until < now() \
                        AND NOT (j.sync_run_id = ANY($3))) \
                 ORDER BY j.created_at, j.sync_run_id \
                 LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE pull_jobs p SET state = 'running', lease_owner = $1, \
                 lease_until = now() + make_interval(secs => $2::double precision / 1000), \
                 attempts = p.attempts + 1, started_at = COALESCE(p.started_at, now()) \
             FROM candidate WHERE p.sync_run_id = candidate.sync_run_id \
             RETURNING p.sync_run_id, p.integration_id, p.workspace_id, p.correlation_id, \
                 p.causation_id, p.traceparent, p.tracestate, p.attempts",
        )
        .bind(owner)
        .bind(lease_ms)
        .bind(running_here)
        .fetch_optional(pool)
        .await;
        match res {
            Ok(r) => break r,
            // Another worker started a job of the same integration meanwhile: look again.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                contended += 1;
                if contended >= 5 {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    };
    row.map(|r| {
        Ok(JobRow {
            sync_run_id: r.try_get("sync_run_id")?,
            integration_id: IntegrationId::new(r.try_get("integration_id")?),
            workspace_id: r.try_get("workspace_id")?,
            correlation_id: r.try_get("correlation_id")?,
            causation_id: r.try_get("causation_id")?,
            traceparent: r.try_get("traceparent")?,
            tracestate: r.try_get("tracestate")?,
            attempts: r.try_get("attempts")?,
        })
    })
    .transpose()
}

/// Extends the lease; false when the job is no longer ours (taken over or finished).
pub async fn renew_lease(
    conn: &mut PgConnection,
    sync_run_id: &str,
    owner: &str,
    lease: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    Ok(sqlx::query(
        "UPDATE pull_jobs SET lease_until = now() + make_interval(secs => $3::double precision / 1000) \
         WHERE sync_run_id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(sync_run_id)
    .bind(owner)
    .bind(lease_ms)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// How long until the first lease of a job running elsewhere runs out (`None`: no such job),
/// so a worker looks for it then instead of at its next poll.
pub async fn next_lease_expiry(
    pool: &PgPool,
    running_here: &[String],
) -> Result<Option<std::time::Duration>, sqlx::Error> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM MIN(lease_until) - now())::float8 FROM pull_jobs \
         WHERE state = 'running' AND NOT (sync_run_id = ANY($1))",
    )
    .bind(running_here)
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))))
}

/// Records where a running job is (pull/progress.rs), in the transaction of the append it
/// describes; false when the job is not ours.
pub async fn save_progress(
    conn: &mut PgConnection,
    sync_run_id: &str,
    owner: &str,
    progress: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE pull_jobs SET progress = $3 \
         WHERE sync_run_id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(sync_run_id)
    .bind(owner)
    .bind(sqlx::types::Json(progress))
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Where the job was when its last append committed (`None`: nothing recorded yet).
pub async fn load_progress(
    pool: &PgPool,
    sync_run_id: &str,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, Option<sqlx::types::Json<serde_json::Value>>>(
            "SELECT progress FROM pull_jobs WHERE sync_run_id = $1",
        )
        .bind(sync_run_id)
        .fetch_optional(pool)
        .await?
        .flatten()
        .map(|j| j.0),
    )
}

/// Ends the job (in the transaction that appends its last event); false when it is not ours.
pub async fn finish_job(
    conn: &mut PgConnection,
    sync_run_id: &str,
    owner: &str,
    failed: bool,
    outcome: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE pull_jobs SET state = CASE WHEN $3 THEN 'failed' ELSE 'done' END, outcome = $4, \
             finished_at = now(), lease_owner = NULL, lease_until = NULL \
         WHERE sync_run_id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(sync_run_id)
    .bind(owner)
    .bind(failed)
    .bind(outcome)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Gives a job back (shutdown): another worker, here or in a replica, picks it up.
pub async fn release_job(pool: &PgPool, sync_run_id: &str, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pull_jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
             attempts = GREATEST(attempts - 1, 0) \
         WHERE sync_run_id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(sync_run_id)
    .bind(owner)
    .execute(pool)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(pool)
        .await?;
    Ok(())
}

/// The state of a job (tests, diagnostics).
pub async fn job_state(pool: &PgPool, sync_run_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM pull_jobs WHERE sync_run_id = $1")
        .bind(sync_run_id)
        .fetch_optional(pool)
        .await
}

/// Who holds a job's lease now (tests, diagnostics); `None` when nobody does.
pub async fn lease_owner(pool: &PgPool, sync_run_id: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT lease_owner FROM pull_jobs WHERE sync_run_id = $1",
    )
    .bind(sync_run_id)
    .fetch_optional(pool)
    .await?
    .flatten())
}

// ---- the log -------------------------------------------------------------------------------

/// The last event of a stream and the stream's version (`None`: the stream does not exist).
pub async fn read_last_event(
    store: &EventStore,
    stream: &str,
) -> Result<Option<RecordedEvent>, ReadError> {
    let Some(version) = store.stream_version(stream).await? else {
        return Ok(None);
    };
    Ok(store
        .read_stream(stream, version, 1)
        .await?
        .into_iter()
        .next())
}
