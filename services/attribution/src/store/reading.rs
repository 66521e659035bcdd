//! Reading dashboard versions for the API, inside one snapshot ([`read_snapshot`]).

use crate::domain::metrics::Metric;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// A read-only transaction on one snapshot: every query in it sees the same versions.
pub async fn read_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The workspace's plan and current version, when the workspace is known.
pub async fn workspace(
    conn: &mut PgConnection,
    ws: &str,
) -> Result<Option<(Option<String>, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT plan, current_version FROM attribution_workspaces WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub sync_run_id: String,
    pub as_of: DateTime<Utc>,
    pub half_life_days: i32,
    pub windows: Vec<i32>,
}

pub async fn version(
    conn: &mut PgConnection,
    ws: &str,
    version: i64,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, sync_run_id, as_of, half_life_days, windows FROM attribution_versions \
         WHERE workspace_id = $1 AND version = $2",
    )
    .bind(ws)
    .bind(version)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WindowRow {
    pub engaged_companies: i32,
    pub matched_companies: i32,
    pub matched_accounts: i32,
    pub deals_total: i32,
    pub deals_open: i32,
    pub deals_won: i32,
    pub deals_lost: i32,
    pub deals_unclassified: i32,
    pub deals_influenced_lost: i32,
    pub days_to_deal_deals: i32,
    pub days_to_deal_average: Option<f64>,
    pub days_to_deal_median: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MetricTotalRow {
    pub metric: i16,
    pub deals: i32,
    pub deals_without_amount: i32,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AmountRow {
    pub metric: i16,
    pub currency: String,
    pub amount: String,
    pub deals: i32,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CreditRow {
    pub metric: i16,
    pub currency: String,
    pub campaign_id: String,
    pub amount: String,
    pub deals: i32,
}

/// The numbers of one window of one version.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardRows {
    pub window: WindowRow,
    pub totals: Vec<MetricTotalRow>,
    pub amounts: Vec<AmountRow>,
    pub credits: Vec<CreditRow>,
}

pub async fn dashboard(
    conn: &mut PgConnection,
    ws: &str,
    version: i64,
    window_days: i32,
    model: i16,
) -> Result<Option<DashboardRows>, sqlx::Error> {
    let window: Option<WindowRow> = sqlx::query_as(
        "SELECT engaged_companies, matched_companies, matched_accounts, deals_total, deals_open, \
           deals_won, deals_lost, deals_unclassified, deals_influenced_lost, days_to_deal_deals, \
           days_to_deal_average, days_to_deal_median \
         FROM attribution_window_numbers WHERE workspace_id = $1 AND version = $2 AND window_days = $3",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(window) = window else {
        return Ok(None);
    };
    let totals = sqlx::query_as(
        "SELECT metric, deals, deals_without_amount FROM attribution_metric_totals \
         WHERE workspace_id = $1 AND version = $2 AND window_days = $3 ORDER BY metric",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .fetch_all(&mut *conn)
    .await?;
    let amounts = sqlx::query_as(
        "SELECT metric, currency, amount::text AS amount, deals FROM attribution_metric_amounts \
         WHERE workspace_id = $1 AND version = $2 AND window_days = $3 ORDER BY metric, currency",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .fetch_all(&mut *conn)
    .await?;
    let credits = sqlx::query_as(
        "SELECT metric, currency, campaign_id, amount::text AS amount, deals FROM attribution_campaign_credits \
         WHERE workspace_id = $1 AND version = $2 AND window_days = $3 AND model = $4 \
         ORDER BY metric, currency, attribution_campaign_credits.amount DESC, campaign_id",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .bind(model)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(DashboardRows {
        window,
        totals,
        amounts,
        credits,
    }))
}

/// Where a page of deals starts: after this (created_at, deal_id), newest first.
pub type DealCursor = (DateTime<Utc>, String);

/// One page of the deals behind `metric` (id and creation time), newest first, and how many
/// there are in all.
pub async fn list_deals(
    conn: &mut PgConnection,
    ws: &str,
    version: i64,
    window_days: i32,
    metric: Metric,
    after: Option<&DealCursor>,
    limit: i64,
) -> Result<(Vec<DealCursor>, i64), sqlx::Error> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT deal_id, created_at FROM attribution_deal_windows \
         WHERE workspace_id = $1 AND window_days = $3 AND $4 = ANY(metrics) \
           AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2) \
           AND ($5::timestamptz IS NULL OR (created_at, deal_id) < ($5, $6)) \
         ORDER BY created_at DESC, deal_id DESC LIMIT $7",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .bind(metric.code() as i16)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1.clone()).unwrap_or_default())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_deal_windows \
         WHERE workspace_id = $1 AND window_days = $3 AND $4 = ANY(metrics) \
           AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2)",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .bind(metric.code() as i16)
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(|(id, at)| (at, id)).collect(), total))
}
