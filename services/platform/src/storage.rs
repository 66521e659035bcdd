//! What the database occupies, table by table (`rp storage`, docs/storage.md).
//!
//! Every table of the current schema with its heap, TOAST and index bytes (PostgreSQL's own
//! accounting: `pg_table_size`, `pg_indexes_size`, `pg_total_relation_size`), its rows (the
//! planner's estimate, or the statistics collector's live count before the first ANALYZE) and
//! dead rows, grouped by the service that owns it. The event log is the source of truth; every
//! other service's tables are projections that can be rebuilt from it, so the figure operators
//! watch is projections ÷ event log, and how the whole grows from one measurement to the next.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// Who owns a table: the event log itself, a service's projection, or the platform's
/// bookkeeping (consumers' processed marks, dead letters, API keys, relay checkpoints,
/// migrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    EventLog,
    Connector,
    Matcher,
    Attribution,
    Notification,
    Platform,
}

impl Owner {
    pub const ALL: [Owner; 6] = [
        Owner::EventLog,
        Owner::Connector,
        Owner::Matcher,
        Owner::Attribution,
        Owner::Notification,
        Owner::Platform,
    ];

    /// The owner of `table`, by the names the migrations give (a table no service claims is
    /// the platform's).
    pub fn of(table: &str) -> Owner {
        match table {
            "events" | "event_streams" => Owner::EventLog,
            t if t.starts_with("attribution_") => Owner::Attribution,
            t if t.starts_with("matcher_") => Owner::Matcher,
            t if t.starts_with("notification") => Owner::Notification,
            t if t.starts_with("connector_") || t.starts_with("sync_") || t == "pull_jobs" => {
                Owner::Connector
            }
            _ => Owner::Platform,
        }
    }

    /// A service's projection (rebuildable from the log), as opposed to the log itself and the
    /// platform's bookkeeping.
    pub fn is_projection(self) -> bool {
        matches!(
            self,
            Owner::Connector | Owner::Matcher | Owner::Attribution | Owner::Notification
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Owner::EventLog => "event log",
            Owner::Connector => "connector",
            Owner::Matcher => "matcher",
            Owner::Attribution => "attribution",
            Owner::Notification => "notification",
            Owner::Platform => "platform",
        }
    }
}

/// One table's footprint, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSize {
    pub table: String,
    pub owner: Owner,
    /// The planner's row estimate (`reltuples`), or the live rows counted since the last
    /// statistics reset when the table was never analyzed.
    pub rows: i64,
    /// Rows deleted or updated away that VACUUM has not reclaimed yet.
    pub dead_rows: i64,
    /// The table itself: main fork, free space map and visibility map.
    pub heap: i64,
    /// Out-of-line values (large payloads, arrays, JSON) and the TOAST index.
    pub toast: i64,
    pub indexes: i64,
    /// heap + toast + indexes (`pg_total_relation_size`).
    pub total: i64,
}

/// Every table of the schema at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageReport {
    /// Largest first.
    pub tables: Vec<TableSize>,
}

/// Reads every table's footprint in the connection's current schema (the test databases and
/// production alike keep everything in one schema).
pub async fn measure(pool: &PgPool) -> Result<StorageReport, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT c.relname::text, \
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE COALESCE(s.n_live_tup, 0) END, \
           COALESCE(s.n_dead_tup, 0), \
           pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), \
           COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), \
           pg_indexes_size(c.oid), \
           pg_total_relation_size(c.oid) \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
         WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() \
         ORDER BY pg_total_relation_size(c.oid) DESC, c.relname",
    )
    .fetch_all(pool)
    .await?;
    Ok(StorageReport {
        tables: rows
            .into_iter()
            .map(
                |(table, rows, dead_rows, heap, toast, indexes, total)| TableSize {
                    owner: Owner::of(&table),
                    table,
                    rows,
                    dead_rows,
                    heap,
                    toast,
                    indexes,
                    total,
                },
            )
            .collect(),
    })
}

/// Runs a plain `VACUUM (ANALYZE)` on every table of the schema: what autovacuum does in its
/// own time (dead rows become free space the table reuses; the file does not shrink). Never
/// `VACUUM FULL`, which rewrites tables under an exclusive lock and is not the normal state.
pub async fn vacuum_analyze(pool: &PgPool) -> Result<(), sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for t in tables {
        // Quoted as an identifier: the names come from the catalog, not from input.
        let quoted = format!("\"{}\"", t.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {quoted}")))
            .execute(pool)
            .await?;
    }
    Ok(())
}

impl StorageReport {
    /// Bytes owned by `owner`.
    pub fn owner_total(&self, owner: Owner) -> i64 {
        self.tables
            .iter()
            .filter(|t| t.owner == owner)
            .map(|t| t.total)
            .sum()
    }

    pub fn total(&self) -> i64 {
        self.tables.iter().map(|t| t.total).sum()
    }

    pub fn event_log(&self) -> i64 {
        self.owner_total(Owner::EventLog)
    }

    /// The services' projections (connector, matcher, attribution, notification).
    pub fn projections(&self) -> i64 {
        self.tables
            .iter()
            .filter(|t| t.owner.is_projection())
            .map(|t| t.total)
            .sum()
    }

    /// Projections ÷ event log (`None` while the log is empty).
    pub fn projections_per_log(&self) -> Option<f64> {
        ratio(self.projections(), self.event_log())
    }

    /// Everything but the log (projections and the platform's bookkeeping) ÷ event log.
    pub fn rest_per_log(&self) -> Option<f64> {
        ratio(self.total() - self.event_log(), self.event_log())
    }

    /// This total ÷ `before`'s total.
    pub fn growth_since(&self, before: &StorageReport) -> Option<f64> {
        ratio(self.total(), before.total())
    }

    pub fn table(&self, name: &str) -> Option<&TableSize> {
        self.tables.iter().find(|t| t.table == name)
    }
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Bytes as megabytes (10^6 bytes) with one decimal: `12.3 MB`.
pub fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_table_has_the_owner_its_migrations_give_it() {
        assert_eq!(Owner::of("events"), Owner::EventLog);
        assert_eq!(Owner::of("event_streams"), Owner::EventLog);
        assert_eq!(Owner::of("attribution_engagement"), Owner::Attribution);
        assert_eq!(Owner::of("matcher_crm"), Owner::Matcher);
        assert_eq!(Owner::of("notifications"), Owner::Notification);
        assert_eq!(Owner::of("notification_integrations"), Owner::Notification);
        assert_eq!(Owner::of("sync_runs"), Owner::Connector);
        assert_eq!(Owner::of("pull_jobs"), Owner::Connector);
        assert_eq!(Owner::of("connector_tokens"), Owner::Connector);
        assert_eq!(Owner::of("processed_events"), Owner::Platform);
        assert_eq!(Owner::of("_sqlx_migrations"), Owner::Platform);
        assert!(!Owner::Platform.is_projection() && !Owner::EventLog.is_projection());
    }

    fn t(table: &str, total: i64) -> TableSize {
        TableSize {
            table: table.into(),
            owner: Owner::of(table),
            rows: 0,
            dead_rows: 0,
            heap: total,
            toast: 0,
            indexes: 0,
            total,
        }
    }

    #[test]
    fn ratios_are_projections_over_the_log_and_none_without_a_log() {
        let r = StorageReport {
            tables: vec![
                t("events", 100),
                t("attribution_engagement", 150),
                t("matcher_crm", 50),
                t("processed_events", 20),
            ],
        };
        assert_eq!(r.projections(), 200);
        assert_eq!(r.projections_per_log(), Some(2.0));
        assert_eq!(r.rest_per_log(), Some(2.2));
        let empty = StorageReport { tables: vec![] };
        assert_eq!(empty.projections_per_log(), None);
        assert_eq!(r.growth_since(&empty), None);
        assert_eq!(
            r.growth_since(&StorageReport {
                tables: vec![t("events", 320)]
            }),
            Some(1.0)
        );
    }
}
