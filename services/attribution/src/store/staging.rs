//! Records waiting for their sync: a sync's RecordsPulled batches are staged by log position and
//! applied when that sync completes.

use chrono::{DateTime, Utc};
use prost::Message;
use rp_platform::contracts::events::v1 as ev;
use rp_platform::eventlog::RecordedEvent;
use sqlx::PgConnection;

/// Stages a RecordsPulled batch (by its log position) until its sync completes. A batch without
/// a sync, or of a sync that already ended, is applied with the next completed sync.
pub async fn stage_records(
    conn: &mut PgConnection,
    ws: &str,
    position: i64,
    run: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_staged_records (workspace_id, position, sync_run_id, ready) \
         SELECT $1, $2, $3, $3 = '' OR EXISTS (SELECT 1 FROM attribution_ended_runs \
           WHERE workspace_id = $1 AND sync_run_id = $3) \
         ON CONFLICT (workspace_id, position) DO NOTHING",
    )
    .bind(ws)
    .bind(position)
    .bind(run)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `run` ended (completed its attribution step, or failed): its staged batches are
/// applied with the next completed sync.
pub async fn end_run(conn: &mut PgConnection, ws: &str, run: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_ended_runs (workspace_id, sync_run_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(ws)
    .bind(run)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE attribution_staged_records SET ready = true WHERE workspace_id = $1 AND sync_run_id = $2",
    )
    .bind(ws)
    .bind(run)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the batches to apply when `run` completes (its own, and the ready ones), in log order.
pub async fn take_staged(
    conn: &mut PgConnection,
    ws: &str,
    run: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH taken AS (DELETE FROM attribution_staged_records \
           WHERE workspace_id = $1 AND (sync_run_id = $2 OR ready) RETURNING position) \
         SELECT position FROM taken ORDER BY position",
    )
    .bind(ws)
    .bind(run)
    .fetch_all(conn)
    .await
}

/// Why staged records could not be read back from the log.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error("reading staged records: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the event at position {position} cannot be decoded: {source}")]
    Corrupt {
        position: i64,
        source: prost::DecodeError,
    },
}

/// The events at `positions`, from the log, in position order.
pub async fn read_events(
    conn: &mut PgConnection,
    positions: &[i64],
) -> Result<Vec<RecordedEvent>, ReadBackError> {
    type Row = (i64, String, i64, DateTime<Utc>, Vec<u8>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT position, stream_id, version, recorded_at, payload FROM events \
         WHERE position = ANY($1) ORDER BY position",
    )
    .bind(positions)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(position, stream_id, version, recorded_at, payload)| {
            let envelope = ev::Envelope::decode(payload.as_slice())
                .map_err(|source| ReadBackError::Corrupt { position, source })?;
            Ok(RecordedEvent {
                position,
                stream_id,
                version,
                recorded_at,
                envelope,
            })
        })
        .collect()
}
