//! The attribution projection in PostgreSQL (`services/attribution/migrations`).
//!
//! * The "now" tables hold what the log says: engagement rows, deals, pipeline stages, matches,
//!   names and plans. Every write is an upsert or a delete keyed by the provider's ids, so
//!   applying an event twice leaves the same rows (replays never double count).
//! * A dashboard version is a complete set of numbers for a workspace, written by
//!   [`write_version`] and made visible by [`switch_to`] in the same transaction: readers go
//!   through `attribution_workspaces.current_version` inside one snapshot ([`read_snapshot`]),
//!   so they see the whole old set or the whole new one, never a mix.

use crate::domain::metrics::{
    CountedTouch, Deal, EngagementRow, Inputs, Match, Metric, StageKind, WindowNumbers,
};
use crate::domain::{Amount, CampaignId, CompanyId, Currency, DealId, OrgId};
use chrono::{DateTime, NaiveDate, Utc};
use rp_platform::contracts::events::v1 as ev;
use rp_platform::contracts::from_timestamp;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    "attribution_deal_windows",
];

/// The tables that hold dashboard versions.
const VERSION_TABLES: &[&str] = &[
    "attribution_versions",
    "attribution_window_numbers",
    "attribution_metric_totals",
    "attribution_metric_amounts",
    "attribution_campaign_credits",
    "attribution_version_deals",
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

/// Upserts engagement rows by (organization, campaign, day): a re-pull replaces a row. Rows with
/// a missing id or a date that is not `YYYY-MM-DD` are skipped; returns how many were.
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
    sqlx::query(
        "INSERT INTO attribution_engagement (workspace_id, organization_id, campaign_id, day, \
           impressions, clicks, engagements, ad_account_id) \
         SELECT $1, t.org, t.campaign, t.day, t.imp, t.clk, t.eng, t.acct \
         FROM UNNEST($2::text[], $3::text[], $4::date[], $5::int8[], $6::int8[], $7::int8[], $8::text[]) \
           AS t(org, campaign, day, imp, clk, eng, acct) \
         ON CONFLICT (workspace_id, organization_id, campaign_id, day) DO UPDATE SET \
           impressions = EXCLUDED.impressions, clicks = EXCLUDED.clicks, \
           engagements = EXCLUDED.engagements, ad_account_id = EXCLUDED.ad_account_id",
    )
    .bind(ws)
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
    .execute(conn)
    .await?;
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

pub async fn upsert_companies(
    conn: &mut PgConnection,
    ws: &str,
    companies: &[ev::CrmCompany],
) -> Result<(), sqlx::Error> {
    let named: Vec<(CompanyId, String)> = companies
        .iter()
        .filter_map(|c| Some((CompanyId::parse(&c.id).ok()?, c.name.trim().to_string())))
        .collect();
    let named = last_by_key(named, |(id, _)| id.clone());
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

// ---- Loading a workspace for the numbers ----------------------------------------------------

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

/// A workspace's projection, loaded for computing its numbers.
#[derive(Debug, Default)]
pub struct Loaded {
    pub inputs: Inputs,
    /// Parallel to `inputs.deals`.
    pub deals: Vec<DealRecord>,
    pub matches: HashMap<(OrgId, CompanyId), MatchRecord>,
    pub org_names: HashMap<String, String>,
    pub company_names: HashMap<String, String>,
}

fn stage_kind(code: i16) -> Option<StageKind> {
    match ev::StageKind::try_from(i32::from(code)).ok()? {
        ev::StageKind::Open => Some(StageKind::Open),
        ev::StageKind::Won => Some(StageKind::Won),
        ev::StageKind::Lost => Some(StageKind::Lost),
        ev::StageKind::Unspecified => None,
    }
}

fn stage_code(kind: Option<StageKind>) -> i16 {
    (match kind {
        Some(StageKind::Open) => ev::StageKind::Open,
        Some(StageKind::Won) => ev::StageKind::Won,
        Some(StageKind::Lost) => ev::StageKind::Lost,
        None => ev::StageKind::Unspecified,
    }) as i16
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

/// Loads everything the numbers of `ws` are made of.
pub async fn load(conn: &mut PgConnection, ws: &str) -> Result<Loaded, sqlx::Error> {
    let mut loaded = Loaded::default();
    let rows: Vec<(String, String, NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT organization_id, campaign_id, day, impressions, clicks, engagements \
         FROM attribution_engagement WHERE workspace_id = $1 \
         ORDER BY organization_id, campaign_id, day",
    )
    .bind(ws)
    .fetch_all(&mut *conn)
    .await?;
    for (org, campaign, day, impressions, clicks, engagements) in rows {
        let (Ok(org), Ok(campaign)) = (OrgId::parse(&org), CampaignId::parse(&campaign)) else {
            continue;
        };
        loaded.inputs.engagement.push(EngagementRow {
            org,
            campaign,
            day,
            impressions,
            clicks,
            engagements,
        });
    }

    let matches: Vec<(String, String, i32, f64, String)> = sqlx::query_as(
        "SELECT linkedin_id, crm_id, method, score, reason FROM attribution_matches \
         WHERE workspace_id = $1 ORDER BY linkedin_id, crm_id",
    )
    .bind(ws)
    .fetch_all(&mut *conn)
    .await?;
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

    let stages: Vec<(String, String, i16)> = sqlx::query_as(
        "SELECT pipeline_id, stage_id, kind FROM attribution_stages WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_pipeline: HashMap<(String, String), Option<StageKind>> = HashMap::new();
    // A stage id alone, when exactly one pipeline has it (deals without a pipeline id).
    let mut by_stage: HashMap<String, Vec<Option<StageKind>>> = HashMap::new();
    for (p, s, kind) in stages {
        by_pipeline.insert((p, s.clone()), stage_kind(kind));
        by_stage.entry(s).or_default().push(stage_kind(kind));
    }

    let deals: Vec<DealDbRow> = sqlx::query_as(
        "SELECT deal_id, name, amount, currency, stage_id, pipeline_id, created_at, closed_at, \
           company_ids FROM attribution_deals WHERE workspace_id = $1 ORDER BY deal_id",
    )
    .bind(ws)
    .fetch_all(&mut *conn)
    .await?;
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

    let orgs: Vec<(String, String)> = sqlx::query_as(
        "SELECT organization_id, name FROM attribution_organizations WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_all(&mut *conn)
    .await?;
    loaded.org_names = orgs.into_iter().collect();
    let companies: Vec<(String, String)> = sqlx::query_as(
        "SELECT company_id, name FROM attribution_companies WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_all(&mut *conn)
    .await?;
    loaded.company_names = companies.into_iter().collect();
    Ok(loaded)
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

/// A touch as the drill-down shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TouchJson {
    pub organization_id: String,
    pub organization_name: String,
    pub campaign_id: String,
    pub date: String,
    pub impressions: i64,
    pub clicks: i64,
    pub engagements: i64,
    pub crm_company_id: String,
}

/// A match as the drill-down shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchJson {
    pub linkedin_id: String,
    pub linkedin_name: String,
    pub crm_id: String,
    pub crm_name: String,
    pub method: i32,
    pub score: f64,
    pub reason: String,
}

/// One model's credit to one campaign for one deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditJson {
    pub model: i32,
    pub campaign_id: String,
    pub amount: String,
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

fn touches_json(loaded: &Loaded, touches: &[CountedTouch]) -> (Vec<TouchJson>, Vec<MatchJson>) {
    let rows = &loaded.inputs.engagement;
    let mut pairs: BTreeMap<(OrgId, CompanyId), ()> = BTreeMap::new();
    let list = touches
        .iter()
        .filter_map(|t| {
            let r = rows.get(t.row)?;
            pairs.insert((r.org.clone(), t.company.clone()), ());
            Some(TouchJson {
                organization_id: r.org.to_string(),
                organization_name: loaded
                    .org_names
                    .get(r.org.as_str())
                    .cloned()
                    .unwrap_or_default(),
                campaign_id: r.campaign.to_string(),
                date: r.day.format("%Y-%m-%d").to_string(),
                impressions: r.impressions,
                clicks: r.clicks,
                engagements: r.engagements,
                crm_company_id: t.company.to_string(),
            })
        })
        .collect();
    let matches = pairs
        .into_keys()
        .map(|(org, company)| {
            let m = loaded.matches.get(&(org.clone(), company.clone()));
            MatchJson {
                linkedin_name: loaded
                    .org_names
                    .get(org.as_str())
                    .cloned()
                    .unwrap_or_default(),
                crm_name: loaded
                    .company_names
                    .get(company.as_str())
                    .cloned()
                    .unwrap_or_default(),
                linkedin_id: org.to_string(),
                crm_id: company.to_string(),
                method: m.map_or(0, |m| m.method),
                score: m.map_or(0.0, |m| m.score),
                reason: m.map(|m| m.reason.clone()).unwrap_or_default(),
            }
        })
        .collect();
    (list, matches)
}

fn json_text<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Writes a complete set of numbers as `v.version` (not yet visible: see [`switch_to`]).
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

    // The deals as they are at this version.
    let as_of_day = v.as_of.date_naive();
    let known: Vec<usize> = (0..loaded.inputs.deals.len())
        .filter(|i| {
            loaded.inputs.deals[*i]
                .created_on
                .is_none_or(|c| c <= as_of_day)
        })
        .collect();
    if !known.is_empty() {
        let d = |i: &usize| &loaded.inputs.deals[*i];
        let r = |i: &usize| &loaded.deals[*i];
        sqlx::query(
            "INSERT INTO attribution_version_deals (workspace_id, version, deal_id, name, amount, currency, \
               stage, stage_id, pipeline_id, created_at, closed_at, company_ids) \
             SELECT $1, $2, t.id, t.name, t.amount::numeric, t.currency, t.stage, t.stage_id, t.pipeline_id, \
               t.created, t.closed, ARRAY(SELECT jsonb_array_elements_text(t.companies::jsonb)) \
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::int2[], $8::text[], $9::text[], \
               $10::timestamptz[], $11::timestamptz[], $12::text[]) \
               AS t(id, name, amount, currency, stage, stage_id, pipeline_id, created, closed, companies)",
        )
        .bind(ws)
        .bind(v.version)
        .bind(known.iter().map(|i| d(i).id.to_string()).collect::<Vec<_>>())
        .bind(known.iter().map(|i| r(i).name.clone()).collect::<Vec<_>>())
        .bind(
            known
                .iter()
                .map(|i| d(i).amount.map(|a| a.to_string()))
                .collect::<Vec<_>>(),
        )
        .bind(known.iter().map(|i| d(i).currency.to_string()).collect::<Vec<_>>())
        .bind(known.iter().map(|i| stage_code(d(i).stage)).collect::<Vec<_>>())
        .bind(known.iter().map(|i| r(i).stage_id.clone()).collect::<Vec<_>>())
        .bind(known.iter().map(|i| r(i).pipeline_id.clone()).collect::<Vec<_>>())
        .bind(known.iter().map(|i| r(i).created_at).collect::<Vec<_>>())
        .bind(known.iter().map(|i| r(i).closed_at).collect::<Vec<_>>())
        .bind(
            known
                .iter()
                .map(|i| {
                    let ids: Vec<&str> = d(i).companies.iter().map(|c| c.as_str()).collect();
                    json_text(&ids)
                })
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    }

    // Why each deal counts, per window.
    let mut dw = DealWindowCols::default();
    for n in numbers {
        for o in &n.deals {
            let Some(created_at) = loaded.deals.get(o.deal).and_then(|r| r.created_at) else {
                continue;
            };
            let Some(deal) = loaded.inputs.deals.get(o.deal) else {
                continue;
            };
            let (touches, matches) = touches_json(loaded, &o.touches);
            let credits: Vec<CreditJson> = o
                .credits
                .iter()
                .map(|c| CreditJson {
                    model: c.model.code(),
                    campaign_id: c.campaign.to_string(),
                    amount: c.amount.to_string(),
                })
                .collect();
            dw.window.push(i32_of(n.window_days));
            dw.deal.push(deal.id.to_string());
            dw.created.push(created_at);
            dw.metrics.push(json_text(
                &o.metrics.iter().map(|m| m.code()).collect::<Vec<_>>(),
            ));
            dw.first.push(o.first_engaged_on);
            dw.days.push(o.days_to_deal.map(i32_of));
            dw.touches.push(json_text(&touches));
            dw.matches.push(json_text(&matches));
            dw.credits.push(json_text(&credits));
        }
    }
    if !dw.window.is_empty() {
        sqlx::query(
            "INSERT INTO attribution_deal_windows (workspace_id, version, window_days, deal_id, created_at, \
               metrics, first_engaged_on, days_to_deal, touches, matches, credits) \
             SELECT $1, $2, t.w, t.id, t.created, \
               ARRAY(SELECT jsonb_array_elements_text(t.metrics::jsonb)::int2), t.first, t.days, \
               t.touches::jsonb, t.matches::jsonb, t.credits::jsonb \
             FROM UNNEST($3::int4[], $4::text[], $5::timestamptz[], $6::text[], $7::date[], $8::int4[], \
               $9::text[], $10::text[], $11::text[]) \
               AS t(w, id, created, metrics, first, days, touches, matches, credits)",
        )
        .bind(ws)
        .bind(v.version)
        .bind(&dw.window)
        .bind(&dw.deal)
        .bind(&dw.created)
        .bind(&dw.metrics)
        .bind(&dw.first)
        .bind(&dw.days)
        .bind(&dw.touches)
        .bind(&dw.matches)
        .bind(&dw.credits)
        .execute(&mut *conn)
        .await?;
    }
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

#[derive(Default)]
struct DealWindowCols {
    window: Vec<i32>,
    deal: Vec<String>,
    created: Vec<DateTime<Utc>>,
    metrics: Vec<String>,
    first: Vec<Option<NaiveDate>>,
    days: Vec<Option<i32>>,
    touches: Vec<String>,
    matches: Vec<String>,
    credits: Vec<String>,
}

/// Makes `version` the one readers see, and drops versions older than the one before it.
pub async fn switch_to(conn: &mut PgConnection, ws: &str, version: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE attribution_workspaces SET current_version = $2, last_version = $2 WHERE workspace_id = $1",
    )
    .bind(ws)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    for t in VERSION_TABLES {
        // The names are ours, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {t} WHERE workspace_id = $1 AND version < $2"
        )))
        .bind(ws)
        .bind(version - 1)
        .execute(&mut *conn)
        .await?;
    }
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

/// A deal of a version, with why it counts in one window when it does.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DealRow {
    pub deal_id: String,
    pub name: String,
    pub amount: Option<String>,
    pub currency: String,
    pub stage: i16,
    pub stage_id: String,
    pub pipeline_id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub company_ids: Vec<String>,
    pub metrics: Option<Vec<i16>>,
    pub first_engaged_on: Option<NaiveDate>,
    pub days_to_deal: Option<i32>,
    pub touches: Option<Json<Vec<TouchJson>>>,
    pub matches: Option<Json<Vec<MatchJson>>>,
    pub credits: Option<Json<Vec<CreditJson>>>,
}

const DEAL_COLUMNS: &str = "d.deal_id, d.name, d.amount::text AS amount, d.currency, d.stage, \
    d.stage_id, d.pipeline_id, d.created_at, d.closed_at, d.company_ids, w.metrics, \
    w.first_engaged_on, w.days_to_deal, w.touches, w.matches, w.credits";

/// Where a page of deals starts: after this (created_at, deal_id), newest first.
pub type DealCursor = (DateTime<Utc>, String);

/// One page of the deals behind `metric`, newest first, and how many there are in all.
pub async fn list_deals(
    conn: &mut PgConnection,
    ws: &str,
    version: i64,
    window_days: i32,
    metric: Metric,
    after: Option<&DealCursor>,
    limit: i64,
) -> Result<(Vec<DealRow>, i64), sqlx::Error> {
    let rows: Vec<DealRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEAL_COLUMNS} FROM attribution_deal_windows w \
         JOIN attribution_version_deals d USING (workspace_id, version, deal_id) \
         WHERE w.workspace_id = $1 AND w.version = $2 AND w.window_days = $3 AND $4 = ANY(w.metrics) \
           AND ($5::timestamptz IS NULL OR (w.created_at, w.deal_id) < ($5, $6)) \
         ORDER BY w.created_at DESC, w.deal_id DESC LIMIT $7"
    )))
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
    Ok((rows, total))
}

/// One deal of a version, with why it counts in the window (the window columns are NULL when
/// no engagement counts for it there); `None` when the version has no such deal.
pub async fn deal(
    conn: &mut PgConnection,
    ws: &str,
    version: i64,
    window_days: i32,
    deal_id: &str,
) -> Result<Option<DealRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEAL_COLUMNS} FROM attribution_version_deals d \
         LEFT JOIN attribution_deal_windows w ON w.workspace_id = d.workspace_id \
           AND w.version = d.version AND w.deal_id = d.deal_id AND w.window_days = $3 \
         WHERE d.workspace_id = $1 AND d.version = $2 AND d.deal_id = $4"
    )))
    .bind(ws)
    .bind(version)
    .bind(window_days)
    .bind(deal_id)
    .fetch_optional(conn)
    .await
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
            assert_eq!(stage_kind(stage_code(k)), k);
        }
        assert_eq!(stage_kind(42), None);
    }
}
