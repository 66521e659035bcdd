//! Records waiting for their sync: a sync's RecordsPulled batches are staged by log position and
//! applied when that sync completes, then read back from the log with
//! [`rp_platform::eventlog::read_positions_in`].

use rp_platform::ids::SyncRunId;
use sqlx::PgConnection;

/// Stages a RecordsPulled batch (by its log position) until its sync completes. A batch without
/// a sync, or of a sync that already ended, is applied with the next completed sync.
pub async fn stage_records(
    conn: &mut PgConnection,
    ws: &str,
    position: i64,
    run: Option<&SyncRunId>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_staged_records (workspace_id, position, sync_run_id, ready) \
         SELECT $1, $2, $3, $3 = '' OR EXISTS (SELECT 1 FROM attribution_ended_runs \
           WHERE workspace_id = $1 AND sync_run_id = $3) \
         ON CONFLICT (workspace_id, position) DO NOTHING",
    )
    .bind(ws)
    .bind(position)
    .bind(run.map_or("", SyncRunId::as_str))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `run` ended (completed its attribution step, or failed): its staged batches are
/// applied with the next completed sync.
pub async fn end_run(
    conn: &mut PgConnection,
    ws: &str,
    run: &SyncRunId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_ended_runs (workspace_id, sync_run_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(ws)
    .bind(run.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE attribution_staged_records SET ready = true WHERE workspace_id = $1 AND sync_run_id = $2",
    )
    .bind(ws)
    .bind(run.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the batches to apply when `run` completes (its own, and the ready ones), in log order.
pub async fn take_staged(
    conn: &mut PgConnection,
    ws: &str,
    run: &SyncRunId,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH taken AS (DELETE FROM attribution_staged_records \
           WHERE workspace_id = $1 AND (sync_run_id = $2 OR ready) RETURNING position) \
         SELECT position FROM taken ORDER BY position",
    )
    .bind(ws)
    .bind(run.as_str())
    .fetch_all(conn)
    .await
}
