//! The attribution projection in PostgreSQL (`services/attribution/migrations`).
//!
//! * The "now" tables hold what the log says: engagement rows, deals, pipeline stages, matches,
//!   names and plans. Every write is an upsert or a delete keyed by the provider's ids, so
//!   applying an event twice leaves the same rows (replays never double count). A sync's records
//!   are staged (by log position) and applied when that sync completes, so an overlapping sync of
//!   another integration never shows half its records.
//! * Engagement rows are versioned in place: a row belongs to the dashboard versions from
//!   `valid_from` up to (not including) `valid_to`. Rows pulled during a cycle carry the pending
//!   version (the workspace's last version + 1); a changed row is closed at it and a new one
//!   opened. Deals, matches and the drill-down's deal lists are versioned in place the same way;
//!   the pipeline stages (a dozen rows) are copied per version when it is written.
//!   So the inputs of every kept version stay readable, and the drill-down recomputes a deal's
//!   explanation from them with the same code that computed the numbers.
//! * A dashboard version is a complete set of numbers for a workspace, written by
//!   [`write_version`] and made visible by [`switch_to`] in the same transaction: readers go
//!   through `attribution_workspaces.current_version` inside one snapshot ([`read_snapshot`]),
//!   so they see the whole old set or the whole new one, never a mix. The current and the
//!   previous versions are kept; older ones, and the versioned rows only they read, are deleted
//!   in the switch (docs/storage.md, "The rule").
//!
//! One file per concern: [`now`] (the tables as the log says now), [`staging`] (records waiting
//! for their sync), [`inputs`] (loading what the numbers are made of), [`versions`] (writing and
//! switching dashboard versions), [`reading`] (what the API reads).

mod inputs;
mod now;
mod reading;
mod staging;
mod versions;

pub use inputs::*;
pub use now::*;
pub use reading::*;
pub use staging::*;
pub use versions::*;

use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// Every table of the projection, for [`clear`] and locking during a rebuild.
pub const TABLES: &[&str] = &[
    "attribution_workspaces",
    "attribution_engagement",
    "attribution_organizations",
    "attribution_companies",
    "attribution_deals",
    "attribution_stages",
    "attribution_matches",
    "attribution_versions",
    "attribution_window_numbers",
    "attribution_metric_totals",
    "attribution_metric_amounts",
    "attribution_campaign_credits",
    "attribution_version_stages",
    "attribution_deal_windows",
    "attribution_staged_records",
    "attribution_ended_runs",
];

/// Applies the service's migrations (beside the platform's; each ignores the other's).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    m.run(pool).await
}

/// Empties every table of the projection (for a rebuild; inside its transaction).
pub async fn clear(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let list = TABLES.join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {list} IN EXCLUSIVE MODE"
    )))
    .execute(&mut *conn)
    .await?;
    for t in TABLES {
        // The names are ours, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {t}")))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Keeps the last occurrence of each key, in order of last occurrence.
fn last_by_key<T, K: std::hash::Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last: HashMap<K, usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        last.insert(key(it), i);
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, it)| last.get(&key(it)) == Some(i))
        .map(|(_, it)| it)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_occurrence_of_each_key_wins_in_its_position() {
        let items = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4)];
        assert_eq!(
            last_by_key(items, |i| i.0),
            vec![("b", 2), ("a", 3), ("c", 4)]
        );
    }
}
