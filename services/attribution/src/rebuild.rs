//! Rebuilding the projection from the event log: empty it, then replay every event it is made of,
//! in log order, through the same [`handlers::apply`] the live consumer runs. Each dashboard
//! version is recomputed as of the time of the event that completed its sync (recorded in the
//! log), so the rebuilt numbers equal the live ones.
//!
//! One transaction holds the projection's tables in EXCLUSIVE mode: readers keep the old numbers
//! until it commits, and the live consumer waits for it. Run it with the service stopped for an
//! exact replay; with the service running, events the consumer has not handled yet are applied
//! again afterwards, which the handlers' upserts make harmless.

use crate::config::Settings;
use crate::handlers;
use crate::store;
use rp_platform::eventlog::{EventStore, ReadError, ReadFilter};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("attribution rebuild: {0}")]
    Database(#[from] sqlx::Error),
    #[error("attribution rebuild: {0}")]
    Read(#[from] ReadError),
    #[error("attribution rebuild: {0}")]
    Apply(#[from] handlers::ApplyError),
}

/// What a rebuild replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    /// Completed syncs whose numbers were recomputed.
    pub switches: u64,
    pub last_position: i64,
}

const PAGE: i64 = 500;

pub async fn rebuild(pool: &PgPool, settings: &Settings) -> Result<RebuildReport, RebuildError> {
    let log = EventStore::new(pool.clone());
    let filter = ReadFilter {
        event_types: handlers::EVENT_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        workspace_id: None,
    };
    let mut tx = pool.begin().await?;
    store::clear(&mut tx).await?;
    let mut report = RebuildReport::default();
    loop {
        let page = log.read_all(report.last_position, PAGE, &filter).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            report.last_position = event.position;
            report.events += 1;
            if handlers::apply(&mut tx, event, settings).await?.is_some() {
                report.switches += 1;
            }
        }
    }
    tx.commit().await?;
    tracing::info!(
        events = report.events,
        switches = report.switches,
        last_position = report.last_position,
        "attribution projection rebuilt from the log"
    );
    Ok(report)
}
