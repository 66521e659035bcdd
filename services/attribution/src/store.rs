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
//!   opened. The small inputs (deals, stages, matches) are copied per version when it is written.
//!   So the inputs of every kept version stay readable, and the drill-down recomputes a deal's
//!   explanation from them with the same code that computed the numbers.
//! * A dashboard version is a complete set of numbers for a workspace, written by
//!   [`write_version`] and made visible by [`switch_to`] in the same transaction: readers go
//!   through `attribution_workspaces.current_version` inside one snapshot ([`read_snapshot`]),
//!   so they see the whole old set or the whole new one, never a mix. The current and the
//!   previous versions are kept.

use crate::domain::metrics::{
    Deal, EngagementRow, Inputs, Match, Metric, StageKind, WindowNumbers,
};
use crate::domain::{Amount, CampaignId, CompanyId, Currency, DealId, OrgId};
use chrono::{DateTime, Days, NaiveDate, Utc};
use prost::Message;
use rp_platform::contracts::events::v1 as ev;
use rp_platform::contracts::from_timestamp;
use rp_platform::eventlog::RecordedEvent;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::collections::{BTreeSet, HashMap};

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
    "attribution_version_deals",
    "attribution_version_stages",
    "attribution_version_matches",
    "attribution_deal_windows",
    "attribution_staged_records",
    "attribution_ended_runs",
];

/// The tables that hold dashboard versions.
const VERSION_TABLES: &[&str] = &[
    "attribution_versions",
    "attribution_window_numbers",
    "attribution_metric_totals",
    "attribution_metric_amounts",
    "attribution_campaign_credits",
    "attribution_version_deals",
    "attribution_version_stages",
    "attribution_version_matches",
    "attribution_deal_windows",
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

// ---- The "now" tables ----------------------------------------------------------------------

pub async fn ensure_workspace(conn: &mut PgConnection, ws: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_workspaces (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(ws)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_plan(conn: &mut PgConnection, ws: &str, plan: &str) -> Result<(), sqlx::Error> {
    let plan = plan.trim();
    sqlx::query(
        "INSERT INTO attribution_workspaces (workspace_id, plan) VALUES ($1, $2) \
         ON CONFLICT (workspace_id) DO UPDATE SET plan = EXCLUDED.plan",
    )
    .bind(ws)
    .bind((!plan.is_empty()).then_some(plan))
    .execute(conn)
    .await?;
    Ok(())
}

/// The version rows written now become part of: the workspace's last version + 1.
pub async fn pending_version(conn: &mut PgConnection, ws: &str) -> Result<i64, sqlx::Error> {
    ensure_workspace(conn, ws).await?;
    sqlx::query_scalar(
        "SELECT last_version + 1 FROM attribution_workspaces WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_one(conn)
    .await
}

/// Upserts engagement rows by (organization, campaign, day): a re-pull replaces a row from the
/// pending version on (the previous row stays part of the versions before it). Rows with a
/// missing id or a date that is not `YYYY-MM-DD` are skipped; returns how many were.
pub async fn upsert_engagement(
    conn: &mut PgConnection,
    ws: &str,
    rows: &[ev::EngagementRow],
) -> Result<usize, sqlx::Error> {
    let mut parsed = Vec::with_capacity(rows.len());
    for r in rows {
        let (Ok(org), Ok(campaign), Ok(day)) = (
            OrgId::parse(&r.organization_id),
            CampaignId::parse(&r.campaign_id),
            NaiveDate::parse_from_str(r.date.trim(), "%Y-%m-%d"),
        ) else {
            continue;
        };
        parsed.push((org, campaign, day, r));
    }
    let skipped = rows.len() - parsed.len();
    let parsed = last_by_key(parsed, |(o, c, d, _)| (o.clone(), c.clone(), *d));
    if parsed.is_empty() {
        return Ok(skipped);
    }
    let pending = pending_version(conn, ws).await?;
    // The batch is small next to the table: look each row up by its key. PostgreSQL's default
    // costs (made for disks) would rather hash the workspace's whole table twice per batch.
    sqlx::query("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
        .execute(&mut *conn)
        .await?;
    // One statement: close the current rows whose counts changed (if they belong to earlier
    // versions), and insert the new counts at the pending version unless the current row already
    // has them. Data-modifying CTEs see the same snapshot, so the insert still sees the rows the
    // UPDATE closes as current, hence the explicit "same counts" test.
    sqlx::query(
        "WITH incoming AS ( \
           SELECT * FROM UNNEST($3::text[], $4::text[], $5::date[], $6::int8[], $7::int8[], $8::int8[], $9::text[]) \
             AS t(org, campaign, day, imp, clk, eng, acct)), \
         closed AS ( \
           UPDATE attribution_engagement e SET valid_to = $2 FROM incoming i \
           WHERE e.workspace_id = $1 AND e.organization_id = i.org AND e.campaign_id = i.campaign \
             AND e.day = i.day AND e.valid_to IS NULL AND e.valid_from < $2 \
             AND (e.impressions, e.clicks, e.engagements, e.ad_account_id) \
                 IS DISTINCT FROM (i.imp, i.clk, i.eng, i.acct) \
           RETURNING 1) \
         INSERT INTO attribution_engagement (workspace_id, organization_id, campaign_id, day, \
           impressions, clicks, engagements, ad_account_id, valid_from) \
         SELECT $1, i.org, i.campaign, i.day, i.imp, i.clk, i.eng, i.acct, $2 FROM incoming i \
         WHERE NOT EXISTS ( \
           SELECT 1 FROM attribution_engagement e \
           WHERE e.workspace_id = $1 AND e.organization_id = i.org AND e.campaign_id = i.campaign \
             AND e.day = i.day AND e.valid_to IS NULL AND e.valid_from < $2 \
             AND (e.impressions, e.clicks, e.engagements, e.ad_account_id) \
                 IS NOT DISTINCT FROM (i.imp, i.clk, i.eng, i.acct)) \
         ON CONFLICT (workspace_id, organization_id, campaign_id, day, valid_from) DO UPDATE SET \
           impressions = EXCLUDED.impressions, clicks = EXCLUDED.clicks, \
           engagements = EXCLUDED.engagements, ad_account_id = EXCLUDED.ad_account_id",
    )
    .bind(ws)
    .bind(pending)
    .bind(parsed.iter().map(|p| p.0.to_string()).collect::<Vec<_>>())
    .bind(parsed.iter().map(|p| p.1.to_string()).collect::<Vec<_>>())
    .bind(parsed.iter().map(|p| p.2).collect::<Vec<_>>())
    .bind(parsed.iter().map(|p| p.3.impressions).collect::<Vec<_>>())
    .bind(parsed.iter().map(|p| p.3.clicks).collect::<Vec<_>>())
    .bind(parsed.iter().map(|p| p.3.engagements).collect::<Vec<_>>())
    .bind(
        parsed
            .iter()
            .map(|p| p.3.ad_account_id.trim().to_string())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    for reset in ["RESET enable_hashjoin", "RESET enable_mergejoin"] {
        sqlx::query(reset).execute(&mut *conn).await?;
    }
    Ok(skipped)
}

pub async fn upsert_organizations(
    conn: &mut PgConnection,
    ws: &str,
    orgs: &[ev::Organization],
) -> Result<(), sqlx::Error> {
    let named: Vec<(OrgId, String)> = orgs
        .iter()
        .filter_map(|o| Some((OrgId::parse(&o.id).ok()?, o.name.trim().to_string())))
        .collect();
    let named = last_by_key(named, |(id, _)| id.clone());
    if named.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO attribution_organizations (workspace_id, organization_id, name) \
         SELECT $1, t.id, t.name FROM UNNEST($2::text[], $3::text[]) AS t(id, name) \
         ON CONFLICT (workspace_id, organization_id) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(ws)
    .bind(named.iter().map(|n| n.0.to_string()).collect::<Vec<_>>())
    .bind(named.iter().map(|n| n.1.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Upserts companies' names by id; a company marked deleted (a tombstone) is removed. Its
/// matches go with the matcher's REMOVED changes of the same sync.
pub async fn upsert_companies(
    conn: &mut PgConnection,
    ws: &str,
    companies: &[ev::CrmCompany],
) -> Result<(), sqlx::Error> {
    let parsed: Vec<(CompanyId, String, bool)> = companies
        .iter()
        .filter_map(|c| {
            Some((
                CompanyId::parse(&c.id).ok()?,
                c.name.trim().to_string(),
                c.deleted,
            ))
        })
        .collect();
    let parsed = last_by_key(parsed, |(id, _, _)| id.clone());
    let (gone, kept): (Vec<_>, Vec<_>) = parsed.into_iter().partition(|c| c.2);
    if !gone.is_empty() {
        sqlx::query(
            "DELETE FROM attribution_companies WHERE workspace_id = $1 AND company_id = ANY($2)",
        )
        .bind(ws)
        .bind(gone.iter().map(|g| g.0.to_string()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let named: Vec<(CompanyId, String)> = kept.into_iter().map(|(id, n, _)| (id, n)).collect();
    if named.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO attribution_companies (workspace_id, company_id, name) \
         SELECT $1, t.id, t.name FROM UNNEST($2::text[], $3::text[]) AS t(id, name) \
         ON CONFLICT (workspace_id, company_id) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(ws)
    .bind(named.iter().map(|n| n.0.to_string()).collect::<Vec<_>>())
    .bind(named.iter().map(|n| n.1.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Upserts deals by id; a deal marked deleted is removed. Returns the deals whose amount is not
/// a valid decimal (they count as deals without an amount), for the caller to log.
pub async fn apply_deals(
    conn: &mut PgConnection,
    ws: &str,
    deals: &[ev::CrmDeal],
) -> Result<Vec<(DealId, String)>, sqlx::Error> {
    let parsed: Vec<(DealId, &ev::CrmDeal)> = deals
        .iter()
        .filter_map(|d| Some((DealId::parse(&d.id).ok()?, d)))
        .collect();
    let parsed = last_by_key(parsed, |(id, _)| id.clone());
    let (gone, kept): (Vec<_>, Vec<_>) = parsed.into_iter().partition(|(_, d)| d.deleted);
    if !gone.is_empty() {
        sqlx::query("DELETE FROM attribution_deals WHERE workspace_id = $1 AND deal_id = ANY($2)")
            .bind(ws)
            .bind(gone.iter().map(|g| g.0.to_string()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    let mut bad_amounts = Vec::new();
    for (id, d) in &kept {
        if let Err(e) = Amount::parse(&d.amount, &Currency::new(&d.currency)) {
            bad_amounts.push((id.clone(), e.to_string()));
        }
    }
    if kept.is_empty() {
        return Ok(bad_amounts);
    }
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(from_timestamp);
    let companies = |d: &ev::CrmDeal| {
        let ids: Vec<String> = d
            .company_ids
            .iter()
            .filter_map(|c| CompanyId::parse(c).ok())
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
    };
    sqlx::query(
        "INSERT INTO attribution_deals (workspace_id, deal_id, name, amount, currency, stage_id, \
           pipeline_id, created_at, closed_at, company_ids) \
         SELECT $1, t.id, t.name, t.amount, t.currency, t.stage, t.pipeline, t.created, t.closed, \
           ARRAY(SELECT jsonb_array_elements_text(t.companies::jsonb)) \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
           $8::timestamptz[], $9::timestamptz[], $10::text[]) \
           AS t(id, name, amount, currency, stage, pipeline, created, closed, companies) \
         ON CONFLICT (workspace_id, deal_id) DO UPDATE SET name = EXCLUDED.name, \
           amount = EXCLUDED.amount, currency = EXCLUDED.currency, stage_id = EXCLUDED.stage_id, \
           pipeline_id = EXCLUDED.pipeline_id, created_at = EXCLUDED.created_at, \
           closed_at = EXCLUDED.closed_at, company_ids = EXCLUDED.company_ids",
    )
    .bind(ws)
    .bind(kept.iter().map(|k| k.0.to_string()).collect::<Vec<_>>())
    .bind(kept.iter().map(|k| k.1.name.clone()).collect::<Vec<_>>())
    .bind(
        kept.iter()
            .map(|k| k.1.amount.trim().to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|k| Currency::new(&k.1.currency).to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|k| k.1.stage_id.trim().to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|k| k.1.pipeline_id.trim().to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|k| time(&k.1.created_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|k| time(&k.1.closed_at))
            .collect::<Vec<_>>(),
    )
    .bind(kept.iter().map(|k| companies(k.1)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(bad_amounts)
}

/// Replaces the stages of every pipeline in the batch (a pipeline is always pulled whole).
pub async fn replace_pipelines(
    conn: &mut PgConnection,
    ws: &str,
    pipelines: &[ev::CrmPipeline],
) -> Result<(), sqlx::Error> {
    let pipelines: Vec<&ev::CrmPipeline> = pipelines
        .iter()
        .filter(|p| !p.id.trim().is_empty())
        .collect();
    let pipelines = last_by_key(pipelines, |p| p.id.trim().to_string());
    if pipelines.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM attribution_stages WHERE workspace_id = $1 AND pipeline_id = ANY($2)")
        .bind(ws)
        .bind(
            pipelines
                .iter()
                .map(|p| p.id.trim().to_string())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    let stages: Vec<(String, &ev::CrmPipelineStage)> = pipelines
        .iter()
        .flat_map(|p| p.stages.iter().map(|s| (p.id.trim().to_string(), s)))
        .filter(|(_, s)| !s.id.trim().is_empty())
        .collect();
    let stages = last_by_key(stages, |(p, s)| (p.clone(), s.id.trim().to_string()));
    if stages.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO attribution_stages (workspace_id, pipeline_id, stage_id, label, display_order, kind) \
         SELECT $1, t.p, t.s, t.label, t.ord, t.kind \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int4[], $6::int2[]) AS t(p, s, label, ord, kind)",
    )
    .bind(ws)
    .bind(stages.iter().map(|s| s.0.clone()).collect::<Vec<_>>())
    .bind(stages.iter().map(|s| s.1.id.trim().to_string()).collect::<Vec<_>>())
    .bind(stages.iter().map(|s| s.1.label.clone()).collect::<Vec<_>>())
    .bind(stages.iter().map(|s| s.1.display_order).collect::<Vec<_>>())
    .bind(
        stages
            .iter()
            .map(|s| i16::try_from(s.1.kind).unwrap_or(0))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies the matcher's changes in order: NEW and CHANGED upsert the pair, REMOVED deletes it.
/// Changes of an unknown kind or without both ids are skipped; returns how many were.
pub async fn apply_match_changes(
    conn: &mut PgConnection,
    ws: &str,
    changes: &[ev::MatchChange],
) -> Result<usize, sqlx::Error> {
    use ev::MatchChangeKind as K;
    let parsed: Vec<(OrgId, CompanyId, K, &ev::MatchChange)> = changes
        .iter()
        .filter_map(|c| {
            let kind = K::try_from(c.kind).ok().filter(|k| *k != K::Unspecified)?;
            Some((
                OrgId::parse(&c.linkedin_id).ok()?,
                CompanyId::parse(&c.crm_id).ok()?,
                kind,
                c,
            ))
        })
        .collect();
    let skipped = changes.len() - parsed.len();
    let parsed = last_by_key(parsed, |(o, c, _, _)| (o.clone(), c.clone()));
    let (removed, upserts): (Vec<_>, Vec<_>) = parsed
        .into_iter()
        .partition(|(_, _, k, _)| *k == K::Removed);
    if !removed.is_empty() {
        sqlx::query(
            "DELETE FROM attribution_matches m USING UNNEST($2::text[], $3::text[]) AS t(l, c) \
             WHERE m.workspace_id = $1 AND m.linkedin_id = t.l AND m.crm_id = t.c",
        )
        .bind(ws)
        .bind(removed.iter().map(|r| r.0.to_string()).collect::<Vec<_>>())
        .bind(removed.iter().map(|r| r.1.to_string()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !upserts.is_empty() {
        sqlx::query(
            "INSERT INTO attribution_matches (workspace_id, linkedin_id, crm_id, method, score, reason) \
             SELECT $1, t.l, t.c, t.m, t.s, t.r \
             FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::float8[], $6::text[]) AS t(l, c, m, s, r) \
             ON CONFLICT (workspace_id, linkedin_id, crm_id) DO UPDATE SET method = EXCLUDED.method, \
               score = EXCLUDED.score, reason = EXCLUDED.reason",
        )
        .bind(ws)
        .bind(upserts.iter().map(|u| u.0.to_string()).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.1.to_string()).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.3.method).collect::<Vec<_>>())
        .bind(
            upserts
                .iter()
                .map(|u| if u.3.score.is_finite() { u.3.score } else { 0.0 })
                .collect::<Vec<_>>(),
        )
        .bind(upserts.iter().map(|u| u.3.reason.clone()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(skipped)
}

// ---- Records waiting for their sync ----------------------------------------------------------

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

// ---- Loading the numbers' inputs ------------------------------------------------------------

/// Whose inputs to read: what the log says now (for a new version), or as they were at a kept
/// version (for the drill-down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Now,
    Version(i64),
}

/// Which deals to read: all, or a few (with only what they need).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Deals(&'a [String]),
}

/// What a deal is beyond what the numbers need (for the drill-down).
#[derive(Debug, Clone)]
pub struct DealRecord {
    pub name: String,
    pub stage_id: String,
    pub pipeline_id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct MatchRecord {
    pub method: i32,
    pub score: f64,
    pub reason: String,
}

/// A workspace's inputs, loaded for computing its numbers.
#[derive(Debug, Default)]
pub struct Loaded {
    pub inputs: Inputs,
    /// Parallel to `inputs.deals`.
    pub deals: Vec<DealRecord>,
    pub matches: HashMap<(OrgId, CompanyId), MatchRecord>,
}

fn stage_kind(code: i16) -> Option<StageKind> {
    match ev::StageKind::try_from(i32::from(code)).ok()? {
        ev::StageKind::Open => Some(StageKind::Open),
        ev::StageKind::Won => Some(StageKind::Won),
        ev::StageKind::Lost => Some(StageKind::Lost),
        ev::StageKind::Unspecified => None,
    }
}

/// The `rp.events.v1.StageKind` number of a stage kind (0 when unknown).
pub fn stage_code(kind: Option<StageKind>) -> i32 {
    (match kind {
        Some(StageKind::Open) => ev::StageKind::Open,
        Some(StageKind::Won) => ev::StageKind::Won,
        Some(StageKind::Lost) => ev::StageKind::Lost,
        None => ev::StageKind::Unspecified,
    }) as i32
}

type DealDbRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Vec<String>,
);

type EngagementDbRow = (
    String,
    NaiveDate,
    Option<Vec<String>>,
    Option<Vec<NaiveDate>>,
    Option<Vec<i64>>,
    Option<Vec<i64>>,
    Option<Vec<i64>>,
);

/// Loads what the numbers of `ws` as of `as_of` are made of: the deals in `scope`, the
/// pipelines' stages, the matches of the deals' companies (all for [`Scope::All`]), and their
/// organizations' engagement rows of the `longest_window` days to `as_of` with each
/// organization's first touch.
pub async fn load(
    conn: &mut PgConnection,
    ws: &str,
    at: At,
    scope: Scope<'_>,
    as_of: NaiveDate,
    longest_window: u32,
) -> Result<Loaded, sqlx::Error> {
    let version = match at {
        At::Now => None,
        At::Version(v) => Some(v),
    };
    let only: Option<Vec<String>> = match scope {
        Scope::All => None,
        Scope::Deals(ids) => Some(ids.to_vec()),
    };
    let (deals_table, stages_table, matches_table, in_version) = match at {
        At::Now => (
            "attribution_deals",
            "attribution_stages",
            "attribution_matches",
            "",
        ),
        At::Version(_) => (
            "attribution_version_deals",
            "attribution_version_stages",
            "attribution_version_matches",
            " AND version = $3",
        ),
    };
    // The table names and fragments are ours, never input.
    let deals: Vec<DealDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT deal_id, name, amount, currency, stage_id, pipeline_id, created_at, closed_at, \
           company_ids FROM {deals_table} \
         WHERE workspace_id = $1 AND ($2::text[] IS NULL OR deal_id = ANY($2)){in_version} \
         ORDER BY deal_id"
    )))
    .bind(ws)
    .bind(&only)
    .bind(version)
    .fetch_all(&mut *conn)
    .await?;

    let stages_in_version = if version.is_some() {
        " AND version = $2"
    } else {
        ""
    };
    let stages: Vec<(String, String, i16)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT pipeline_id, stage_id, kind FROM {stages_table} \
         WHERE workspace_id = $1{stages_in_version}"
    )))
    .bind(ws)
    .bind(version)
    .fetch_all(&mut *conn)
    .await?;

    let companies: Option<Vec<String>> = only.as_ref().map(|_| {
        deals
            .iter()
            .flat_map(|d| d.8.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    });
    let matches: Vec<(String, String, i32, f64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT linkedin_id, crm_id, method, score, reason FROM {matches_table} \
             WHERE workspace_id = $1 AND ($2::text[] IS NULL OR crm_id = ANY($2)){in_version} \
             ORDER BY linkedin_id, crm_id"
        )))
        .bind(ws)
        .bind(&companies)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;

    let orgs: Option<Vec<String>> = only.as_ref().map(|_| {
        matches
            .iter()
            .map(|m| m.0.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    });
    let current = match at {
        At::Now => "valid_to IS NULL",
        At::Version(_) => "valid_from <= $5 AND (valid_to IS NULL OR valid_to > $5)",
    };
    let start = as_of
        .checked_sub_days(Days::new(u64::from(longest_window.max(1) - 1)))
        .unwrap_or(NaiveDate::MIN);
    let engagement: Vec<EngagementDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT organization_id, min(day), \
           array_agg(campaign_id ORDER BY day, campaign_id) FILTER (WHERE day >= $2), \
           array_agg(day ORDER BY day, campaign_id) FILTER (WHERE day >= $2), \
           array_agg(impressions ORDER BY day, campaign_id) FILTER (WHERE day >= $2), \
           array_agg(clicks ORDER BY day, campaign_id) FILTER (WHERE day >= $2), \
           array_agg(engagements ORDER BY day, campaign_id) FILTER (WHERE day >= $2) \
         FROM attribution_engagement \
         WHERE workspace_id = $1 AND day <= $3 AND ($4::text[] IS NULL OR organization_id = ANY($4)) \
           AND (impressions > 0 OR clicks > 0 OR engagements > 0) AND {current} \
         GROUP BY organization_id ORDER BY organization_id"
    )))
    .bind(ws)
    .bind(start)
    .bind(as_of)
    .bind(&orgs)
    .bind(version)
    .fetch_all(&mut *conn)
    .await?;

    Ok(build(deals, stages, matches, engagement))
}

/// Turns the rows into the domain's inputs, skipping ids that do not parse (they never do: they
/// were checked when written).
fn build(
    deals: Vec<DealDbRow>,
    stages: Vec<(String, String, i16)>,
    matches: Vec<(String, String, i32, f64, String)>,
    engagement: Vec<EngagementDbRow>,
) -> Loaded {
    let mut loaded = Loaded::default();
    for (org, first, campaigns, days, impressions, clicks, engagements) in engagement {
        let Ok(org) = OrgId::parse(&org) else {
            continue;
        };
        loaded.inputs.first_touch.insert(org.clone(), first);
        let (campaigns, days) = (campaigns.unwrap_or_default(), days.unwrap_or_default());
        let (impressions, clicks, engagements) = (
            impressions.unwrap_or_default(),
            clicks.unwrap_or_default(),
            engagements.unwrap_or_default(),
        );
        for (i, (campaign, day)) in campaigns.iter().zip(days).enumerate() {
            let Ok(campaign) = CampaignId::parse(campaign) else {
                continue;
            };
            loaded.inputs.engagement.push(EngagementRow {
                org: org.clone(),
                campaign,
                day,
                impressions: impressions.get(i).copied().unwrap_or(0),
                clicks: clicks.get(i).copied().unwrap_or(0),
                engagements: engagements.get(i).copied().unwrap_or(0),
            });
        }
    }
    for (l, c, method, score, reason) in matches {
        let (Ok(org), Ok(company)) = (OrgId::parse(&l), CompanyId::parse(&c)) else {
            continue;
        };
        loaded.inputs.matches.push(Match {
            org: org.clone(),
            company: company.clone(),
        });
        loaded.matches.insert(
            (org, company),
            MatchRecord {
                method,
                score,
                reason,
            },
        );
    }
    let mut by_pipeline: HashMap<(String, String), Option<StageKind>> = HashMap::new();
    // A stage id alone, when exactly one pipeline has it (deals without a pipeline id).
    let mut by_stage: HashMap<String, Vec<Option<StageKind>>> = HashMap::new();
    for (p, s, kind) in stages {
        by_pipeline.insert((p, s.clone()), stage_kind(kind));
        by_stage.entry(s).or_default().push(stage_kind(kind));
    }
    for (id, name, amount, currency, stage_id, pipeline_id, created_at, closed_at, companies) in
        deals
    {
        let Ok(id) = DealId::parse(&id) else { continue };
        let currency = Currency::new(&currency);
        let stage = by_pipeline
            .get(&(pipeline_id.clone(), stage_id.clone()))
            .copied()
            .or_else(|| match by_stage.get(&stage_id).map(Vec::as_slice) {
                Some([only]) => Some(*only),
                _ => None,
            })
            .flatten();
        loaded.inputs.deals.push(Deal {
            id,
            amount: Amount::parse(&amount, &currency).ok().flatten(),
            currency,
            stage,
            created_on: created_at.map(|t| t.date_naive()),
            closed_on: closed_at.map(|t| t.date_naive()),
            companies: companies
                .iter()
                .filter_map(|c| CompanyId::parse(c).ok())
                .collect(),
        });
        loaded.deals.push(DealRecord {
            name,
            stage_id,
            pipeline_id,
            created_at,
            closed_at,
        });
    }
    loaded
}

/// Display names of LinkedIn organizations and CRM companies (as last pulled).
pub async fn names(
    conn: &mut PgConnection,
    ws: &str,
    orgs: &[String],
    companies: &[String],
) -> Result<(HashMap<String, String>, HashMap<String, String>), sqlx::Error> {
    let o: Vec<(String, String)> = sqlx::query_as(
        "SELECT organization_id, name FROM attribution_organizations \
         WHERE workspace_id = $1 AND organization_id = ANY($2)",
    )
    .bind(ws)
    .bind(orgs)
    .fetch_all(&mut *conn)
    .await?;
    let c: Vec<(String, String)> = sqlx::query_as(
        "SELECT company_id, name FROM attribution_companies \
         WHERE workspace_id = $1 AND company_id = ANY($2)",
    )
    .bind(ws)
    .bind(companies)
    .fetch_all(&mut *conn)
    .await?;
    Ok((o.into_iter().collect(), c.into_iter().collect()))
}

// ---- Writing and switching dashboard versions ----------------------------------------------

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
    pub sync_run_id: &'a str,
    pub as_of: DateTime<Utc>,
    pub half_life_days: u32,
    pub windows: &'a [u32],
}

fn i32_of(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Writes a complete set of numbers as `v.version` (not yet visible: see [`switch_to`]), with
/// a copy of the deals, stages and matches they were computed from.
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
    .bind(v.sync_run_id)
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
    if !dw_window.is_empty() {
        sqlx::query(
            "INSERT INTO attribution_deal_windows (workspace_id, version, window_days, deal_id, created_at, metrics) \
             SELECT $1, $2, t.w, t.id, t.created, t.metrics::int2[] \
             FROM UNNEST($3::int4[], $4::text[], $5::timestamptz[], $6::text[]) AS t(w, id, created, metrics)",
        )
        .bind(ws)
        .bind(v.version)
        .bind(&dw_window)
        .bind(&dw_deal)
        .bind(&dw_created)
        .bind(&dw_metrics)
        .execute(&mut *conn)
        .await?;
    }

    // The inputs as they are now, for the drill-down (engagement is versioned in place).
    sqlx::query(
        "INSERT INTO attribution_version_deals (workspace_id, version, deal_id, name, amount, currency, \
           stage_id, pipeline_id, created_at, closed_at, company_ids) \
         SELECT workspace_id, $2, deal_id, name, amount, currency, stage_id, pipeline_id, created_at, \
           closed_at, company_ids FROM attribution_deals \
         WHERE workspace_id = $1 AND (created_at IS NULL OR (created_at AT TIME ZONE 'UTC')::date <= $3)",
    )
    .bind(ws)
    .bind(v.version)
    .bind(v.as_of.date_naive())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO attribution_version_stages (workspace_id, version, pipeline_id, stage_id, kind) \
         SELECT workspace_id, $2, pipeline_id, stage_id, kind FROM attribution_stages WHERE workspace_id = $1",
    )
    .bind(ws)
    .bind(v.version)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO attribution_version_matches (workspace_id, version, linkedin_id, crm_id, method, score, reason) \
         SELECT workspace_id, $2, linkedin_id, crm_id, method, score, reason FROM attribution_matches \
         WHERE workspace_id = $1",
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
/// engagement rows no kept version reads any more.
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
    sqlx::query("DELETE FROM attribution_engagement WHERE workspace_id = $1 AND valid_to <= $2")
        .bind(ws)
        .bind(oldest_kept)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---- Reading -------------------------------------------------------------------------------

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
         WHERE workspace_id = $1 AND version = $2 AND window_days = $3 AND $4 = ANY(metrics) \
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
         WHERE workspace_id = $1 AND version = $2 AND window_days = $3 AND $4 = ANY(metrics)",
    )
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .bind(metric.code() as i16)
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(|(id, at)| (at, id)).collect(), total))
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

    #[test]
    fn stage_codes_round_trip() {
        for k in [
            Some(StageKind::Open),
            Some(StageKind::Won),
            Some(StageKind::Lost),
            None,
        ] {
            assert_eq!(stage_kind(stage_code(k) as i16), k);
        }
        assert_eq!(stage_kind(42), None);
    }
}
