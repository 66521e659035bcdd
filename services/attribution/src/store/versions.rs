//! Writing and switching dashboard versions: [`write_version`] writes a complete set of numbers,
//! [`switch_to`] makes it the one readers see, in the same transaction.

use super::Loaded;
use super::now::ensure_workspace;
use crate::domain::metrics::WindowNumbers;
use chrono::{DateTime, Utc};
use rp_platform::ids::SyncRunId;
use sqlx::PgConnection;

/// The tables that hold dashboard versions.
const VERSION_TABLES: &[&str] = &[
    "attribution_versions",
    "attribution_window_numbers",
    "attribution_metric_totals",
    "attribution_metric_amounts",
    "attribution_campaign_credits",
    "attribution_version_stages",
];

/// Locks the workspace's row (creating it) for a switch; returns its plan and last version.
pub async fn lock_workspace(
    conn: &mut PgConnection,
    ws: &str,
) -> Result<(Option<String>, i64), sqlx::Error> {
    ensure_workspace(conn, ws).await?;
    sqlx::query_as(
        "SELECT plan, last_version FROM attribution_workspaces WHERE workspace_id = $1 FOR UPDATE",
    )
    .bind(ws)
    .fetch_one(conn)
    .await
}

/// What a new dashboard version is.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub workspace_id: &'a str,
    pub version: i64,
    pub sync_run_id: &'a SyncRunId,
    pub as_of: DateTime<Utc>,
    pub half_life_days: u32,
    pub windows: &'a [u32],
}

fn i32_of(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Writes a complete set of numbers as `v.version` (not yet visible: see [`switch_to`]), with
/// a copy of the pipeline stages they were computed from (engagement, deals, matches and the
/// deal lists are versioned in place).
pub async fn write_version(
    conn: &mut PgConnection,
    v: &NewVersion<'_>,
    loaded: &Loaded,
    numbers: &[WindowNumbers],
) -> Result<(), sqlx::Error> {
    let ws = v.workspace_id;
    sqlx::query(
        "INSERT INTO attribution_versions (workspace_id, version, sync_run_id, as_of, half_life_days, windows) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ws)
    .bind(v.version)
    .bind(v.sync_run_id.as_str())
    .bind(v.as_of)
    .bind(i32_of(v.half_life_days))
    .bind(v.windows.iter().map(|w| i32_of(*w)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;

    // One row per window.
    let mut w = WindowCols::default();
    for n in numbers {
        w.window.push(i32_of(n.window_days));
        w.engaged.push(i32_of(n.companies.engaged));
        w.matched.push(i32_of(n.companies.matched));
        w.accounts.push(i32_of(n.companies.accounts));
        let c = n.deal_counts;
        w.total.push(i32_of(c.total));
        w.open.push(i32_of(c.open));
        w.won.push(i32_of(c.won));
        w.lost.push(i32_of(c.lost));
        w.unclassified.push(i32_of(c.unclassified));
        w.influenced_lost.push(i32_of(c.influenced_lost));
        w.dtd_deals.push(i32_of(n.days_to_deal.deals));
        w.dtd_avg.push(n.days_to_deal.average);
        w.dtd_median.push(n.days_to_deal.median);
    }
    sqlx::query(
        "INSERT INTO attribution_window_numbers (workspace_id, version, window_days, engaged_companies, \
           matched_companies, matched_accounts, deals_total, deals_open, deals_won, deals_lost, \
           deals_unclassified, deals_influenced_lost, days_to_deal_deals, days_to_deal_average, \
           days_to_deal_median) \
         SELECT $1, $2, t.* FROM UNNEST($3::int4[], $4::int4[], $5::int4[], $6::int4[], $7::int4[], \
           $8::int4[], $9::int4[], $10::int4[], $11::int4[], $12::int4[], $13::int4[], \
           $14::float8[], $15::float8[]) AS t",
    )
    .bind(ws)
    .bind(v.version)
    .bind(&w.window)
    .bind(&w.engaged)
    .bind(&w.matched)
    .bind(&w.accounts)
    .bind(&w.total)
    .bind(&w.open)
    .bind(&w.won)
    .bind(&w.lost)
    .bind(&w.unclassified)
    .bind(&w.influenced_lost)
    .bind(&w.dtd_deals)
    .bind(&w.dtd_avg)
    .bind(&w.dtd_median)
    .execute(&mut *conn)
    .await?;

    // Metric totals and their amounts per currency.
    let (mut tw, mut tm, mut td, mut tn) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut aw, mut am, mut ac, mut aa, mut ad) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in numbers {
        for (metric, t) in &n.metrics {
            tw.push(i32_of(n.window_days));
            tm.push(metric.code() as i16);
            td.push(i32_of(t.deals));
            tn.push(i32_of(t.without_amount));
            for (currency, total) in &t.amounts {
                aw.push(i32_of(n.window_days));
                am.push(metric.code() as i16);
                ac.push(currency.to_string());
                aa.push(total.amount.to_string());
                ad.push(i32_of(total.deals));
            }
        }
    }
    sqlx::query(
        "INSERT INTO attribution_metric_totals (workspace_id, version, window_days, metric, deals, deals_without_amount) \
         SELECT $1, $2, t.* FROM UNNEST($3::int4[], $4::int2[], $5::int4[], $6::int4[]) AS t",
    )
    .bind(ws)
    .bind(v.version)
    .bind(&tw)
    .bind(&tm)
    .bind(&td)
    .bind(&tn)
    .execute(&mut *conn)
    .await?;
    if !aw.is_empty() {
        sqlx::query(
            "INSERT INTO attribution_metric_amounts (workspace_id, version, window_days, metric, currency, amount, deals) \
             SELECT $1, $2, t.w, t.m, t.c, t.a::numeric, t.d \
             FROM UNNEST($3::int4[], $4::int2[], $5::text[], $6::text[], $7::int4[]) AS t(w, m, c, a, d)",
        )
        .bind(ws)
        .bind(v.version)
        .bind(&aw)
        .bind(&am)
        .bind(&ac)
        .bind(&aa)
        .bind(&ad)
        .execute(&mut *conn)
        .await?;
    }

    // Campaign credit.
    let mut cc = CreditCols::default();
    for n in numbers {
        for ((model, metric, currency, campaign), t) in &n.campaign_credit {
            cc.window.push(i32_of(n.window_days));
            cc.model.push(model.code() as i16);
            cc.metric.push(metric.code() as i16);
            cc.currency.push(currency.to_string());
            cc.campaign.push(campaign.to_string());
            cc.amount.push(t.amount.to_string());
            cc.deals.push(i32_of(t.deals));
        }
    }
    if !cc.window.is_empty() {
        sqlx::query(
            "INSERT INTO attribution_campaign_credits (workspace_id, version, window_days, model, metric, \
               currency, campaign_id, amount, deals) \
             SELECT $1, $2, t.w, t.mo, t.me, t.c, t.k, t.a::numeric, t.d \
             FROM UNNEST($3::int4[], $4::int2[], $5::int2[], $6::text[], $7::text[], $8::text[], $9::int4[]) \
               AS t(w, mo, me, c, k, a, d)",
        )
        .bind(ws)
        .bind(v.version)
        .bind(&cc.window)
        .bind(&cc.model)
        .bind(&cc.metric)
        .bind(&cc.currency)
        .bind(&cc.campaign)
        .bind(&cc.amount)
        .bind(&cc.deals)
        .execute(&mut *conn)
        .await?;
    }

    // Which deals count where (the drill-down's lists).
    let (mut dw_window, mut dw_deal, mut dw_created, mut dw_metrics) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in numbers {
        for o in &n.deals {
            let (Some(deal), Some(created_at)) = (
                loaded.inputs.deals.get(o.deal),
                loaded.deals.get(o.deal).and_then(|r| r.created_at),
            ) else {
                continue;
            };
            dw_window.push(i32_of(n.window_days));
            dw_deal.push(deal.id.to_string());
            dw_created.push(created_at);
            let codes: Vec<String> = o.metrics.iter().map(|m| m.code().to_string()).collect();
            dw_metrics.push(format!("{{{}}}", codes.join(",")));
        }
    }
    // Versioned in place: the rows that no longer hold close at this version, the new ones open
    // at it; a deal that counts as it did keeps its row. One statement (its CTEs share a
    // snapshot, so the insert still sees the rows the UPDATE closes as current).
    sqlx::query(
        "WITH incoming AS ( \
           SELECT t.w, t.id, t.created, t.metrics::int2[] AS metrics \
           FROM UNNEST($3::int4[], $4::text[], $5::timestamptz[], $6::text[]) AS t(w, id, created, metrics)), \
         closed AS ( \
           UPDATE attribution_deal_windows d SET valid_to = $2 \
           WHERE d.workspace_id = $1 AND d.valid_to IS NULL AND d.valid_from < $2 \
             AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.w = d.window_days AND i.id = d.deal_id \
               AND i.created = d.created_at AND i.metrics = d.metrics) \
           RETURNING 1) \
         INSERT INTO attribution_deal_windows (workspace_id, window_days, deal_id, created_at, metrics, valid_from) \
         SELECT $1, i.w, i.id, i.created, i.metrics, $2 FROM incoming i \
         WHERE NOT EXISTS (SELECT 1 FROM attribution_deal_windows d \
           WHERE d.workspace_id = $1 AND d.valid_to IS NULL AND d.valid_from < $2 \
             AND d.window_days = i.w AND d.deal_id = i.id AND d.created_at = i.created \
             AND d.metrics = i.metrics)",
    )
    .bind(ws)
    .bind(v.version)
    .bind(&dw_window)
    .bind(&dw_deal)
    .bind(&dw_created)
    .bind(&dw_metrics)
    .execute(&mut *conn)
    .await?;

    // The stages as they are now, for the drill-down (engagement, deals and matches are
    // versioned in place).
    sqlx::query(
        "INSERT INTO attribution_version_stages (workspace_id, version, pipeline_id, stage_id, kind) \
         SELECT workspace_id, $2, pipeline_id, stage_id, kind FROM attribution_stages WHERE workspace_id = $1",
    )
    .bind(ws)
    .bind(v.version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Default)]
struct WindowCols {
    window: Vec<i32>,
    engaged: Vec<i32>,
    matched: Vec<i32>,
    accounts: Vec<i32>,
    total: Vec<i32>,
    open: Vec<i32>,
    won: Vec<i32>,
    lost: Vec<i32>,
    unclassified: Vec<i32>,
    influenced_lost: Vec<i32>,
    dtd_deals: Vec<i32>,
    dtd_avg: Vec<Option<f64>>,
    dtd_median: Vec<Option<f64>>,
}

#[derive(Default)]
struct CreditCols {
    window: Vec<i32>,
    model: Vec<i16>,
    metric: Vec<i16>,
    currency: Vec<String>,
    campaign: Vec<String>,
    amount: Vec<String>,
    deals: Vec<i32>,
}

/// Makes `version` the one readers see; drops versions older than the one before it, and the
/// engagement, deal, deal-window and match rows no kept version reads any more
/// (docs/storage.md, "The rule").
pub async fn switch_to(conn: &mut PgConnection, ws: &str, version: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE attribution_workspaces SET current_version = $2, last_version = $2 WHERE workspace_id = $1",
    )
    .bind(ws)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    let oldest_kept = version - 1;
    for t in VERSION_TABLES {
        // The names are ours, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {t} WHERE workspace_id = $1 AND version < $2"
        )))
        .bind(ws)
        .bind(oldest_kept)
        .execute(&mut *conn)
        .await?;
    }
    for t in [
        "attribution_engagement",
        "attribution_deals",
        "attribution_deal_windows",
        "attribution_matches",
    ] {
        // Rows closed at or before the oldest kept version: no kept version reads them.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {t} WHERE workspace_id = $1 AND valid_to <= $2"
        )))
        .bind(ws)
        .bind(oldest_kept)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
