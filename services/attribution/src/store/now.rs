//! The "now" tables: what the log says now (engagement rows, deals, pipeline stages, matches,
//! names and plans). Every write is an upsert or a delete keyed by the provider's ids, so applying
//! an event twice leaves the same rows.

use super::last_by_key;
use crate::domain::{Amount, CampaignId, CompanyId, Currency, DealId, OrgId};
use chrono::NaiveDate;
use rp_platform::contracts::events::v1 as ev;
use rp_platform::contracts::from_timestamp;
use sqlx::PgConnection;
use std::collections::BTreeSet;

pub async fn ensure_workspace(conn: &mut PgConnection, ws: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_workspaces (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(ws)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which side of the workspace's data an account change drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSide {
    /// The CRM's companies, deals and pipelines.
    Crm,
    /// LinkedIn's engagement rows (organizations are public company pages: their names stay).
    Linkedin,
}

/// Drops what the previous provider account gave: the integration now syncs another account,
/// whose records are pulled in full by the next sync (applied after this, in log order).
pub async fn forget_account(
    conn: &mut PgConnection,
    ws: &str,
    side: AccountSide,
) -> Result<u64, sqlx::Error> {
    let deletes: &[&'static str] = match side {
        AccountSide::Crm => &[
            "DELETE FROM attribution_companies WHERE workspace_id = $1",
            "DELETE FROM attribution_stages WHERE workspace_id = $1",
        ],
        AccountSide::Linkedin => &["DELETE FROM attribution_engagement WHERE workspace_id = $1"],
    };
    let mut n = 0;
    for sql in deletes {
        n += sqlx::query(*sql)
            .bind(ws)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    // Deals are the CRM's, versioned in place: they leave the pending version, not the kept
    // ones. Another LinkedIn member keeps the CRM's deals (e2e account_change.rs caught the
    // LinkedIn side closing them too).
    if side == AccountSide::Crm {
        let pending = pending_version(conn, ws).await?;
        n += close_deals(conn, ws, pending, None).await?;
    }
    Ok(n)
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

/// Upserts deals by id from the pending version on (a changed deal's previous row stays part of
/// the versions before it, like engagement rows); a deal marked deleted leaves the pending
/// version. Returns the deals whose amount is not a valid decimal (they count as deals without
/// an amount), for the caller to log.
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
    if gone.is_empty() && kept.is_empty() {
        return Ok(Vec::new());
    }
    let pending = pending_version(conn, ws).await?;
    if !gone.is_empty() {
        let ids: Vec<String> = gone.iter().map(|g| g.0.to_string()).collect();
        close_deals(conn, ws, pending, Some(&ids)).await?;
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
    // As for engagement: close the current rows of deals that changed (if they belong to earlier
    // versions) and insert the new values at the pending version unless the current row already
    // has them; one statement, whose CTEs share a snapshot (hence the explicit "same values").
    sqlx::query(
        "WITH incoming AS ( \
           SELECT t.id, t.name, t.amount, t.currency, t.stage, t.pipeline, t.created, t.closed, \
             ARRAY(SELECT jsonb_array_elements_text(t.companies::jsonb)) AS companies \
           FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::timestamptz[], $9::timestamptz[], $10::text[]) \
             AS t(id, name, amount, currency, stage, pipeline, created, closed, companies)), \
         closed AS ( \
           UPDATE attribution_deals d SET valid_to = $11 FROM incoming i \
           WHERE d.workspace_id = $1 AND d.deal_id = i.id AND d.valid_to IS NULL \
             AND d.valid_from < $11 \
             AND (d.name, d.amount, d.currency, d.stage_id, d.pipeline_id, d.created_at, \
                  d.closed_at, d.company_ids) \
                 IS DISTINCT FROM (i.name, i.amount, i.currency, i.stage, i.pipeline, i.created, \
                  i.closed, i.companies) \
           RETURNING 1) \
         INSERT INTO attribution_deals (workspace_id, deal_id, name, amount, currency, stage_id, \
           pipeline_id, created_at, closed_at, company_ids, valid_from) \
         SELECT $1, i.id, i.name, i.amount, i.currency, i.stage, i.pipeline, i.created, i.closed, \
           i.companies, $11 FROM incoming i \
         WHERE NOT EXISTS ( \
           SELECT 1 FROM attribution_deals d \
           WHERE d.workspace_id = $1 AND d.deal_id = i.id AND d.valid_to IS NULL \
             AND d.valid_from < $11 \
             AND (d.name, d.amount, d.currency, d.stage_id, d.pipeline_id, d.created_at, \
                  d.closed_at, d.company_ids) \
                 IS NOT DISTINCT FROM (i.name, i.amount, i.currency, i.stage, i.pipeline, \
                  i.created, i.closed, i.companies)) \
         ON CONFLICT (workspace_id, deal_id, valid_from) DO UPDATE SET name = EXCLUDED.name, \
           amount = EXCLUDED.amount, currency = EXCLUDED.currency, stage_id = EXCLUDED.stage_id, \
           pipeline_id = EXCLUDED.pipeline_id, created_at = EXCLUDED.created_at, \
           closed_at = EXCLUDED.closed_at, company_ids = EXCLUDED.company_ids, valid_to = NULL",
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
    .bind(pending)
    .execute(conn)
    .await?;
    Ok(bad_amounts)
}

/// Takes deals (`ids`, or all) out of the pending version: their current rows of earlier
/// versions close at it (the kept versions still read them), rows opened at it go. Returns how
/// many rows left the pending version.
async fn close_deals(
    conn: &mut PgConnection,
    ws: &str,
    pending: i64,
    ids: Option<&[String]>,
) -> Result<u64, sqlx::Error> {
    let closed = sqlx::query(
        "UPDATE attribution_deals SET valid_to = $2 \
         WHERE workspace_id = $1 AND valid_to IS NULL AND valid_from < $2 \
           AND ($3::text[] IS NULL OR deal_id = ANY($3))",
    )
    .bind(ws)
    .bind(pending)
    .bind(ids)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let dropped = sqlx::query(
        "DELETE FROM attribution_deals \
         WHERE workspace_id = $1 AND valid_from = $2 AND ($3::text[] IS NULL OR deal_id = ANY($3))",
    )
    .bind(ws)
    .bind(pending)
    .bind(ids)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(closed + dropped)
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

/// Applies the matcher's changes in order: NEW and CHANGED upsert the pair, REMOVED takes it
/// out; from the pending version on (the kept versions still read the rows as they were).
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
    if removed.is_empty() && upserts.is_empty() {
        return Ok(skipped);
    }
    // Versioned in place, like deals: the changes take effect from the pending version.
    let pending = pending_version(conn, ws).await?;
    if !removed.is_empty() {
        let (l, c): (Vec<String>, Vec<String>) = removed
            .iter()
            .map(|r| (r.0.to_string(), r.1.to_string()))
            .unzip();
        sqlx::query(
            "UPDATE attribution_matches m SET valid_to = $4 FROM UNNEST($2::text[], $3::text[]) AS t(l, c) \
             WHERE m.workspace_id = $1 AND m.linkedin_id = t.l AND m.crm_id = t.c \
               AND m.valid_to IS NULL AND m.valid_from < $4",
        )
        .bind(ws)
        .bind(&l)
        .bind(&c)
        .bind(pending)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "DELETE FROM attribution_matches m USING UNNEST($2::text[], $3::text[]) AS t(l, c) \
             WHERE m.workspace_id = $1 AND m.linkedin_id = t.l AND m.crm_id = t.c \
               AND m.valid_from = $4",
        )
        .bind(ws)
        .bind(&l)
        .bind(&c)
        .bind(pending)
        .execute(&mut *conn)
        .await?;
    }
    if !upserts.is_empty() {
        sqlx::query(
            "WITH incoming AS ( \
               SELECT * FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::float8[], $6::text[]) \
                 AS t(l, c, m, s, r)), \
             closed AS ( \
               UPDATE attribution_matches a SET valid_to = $7 FROM incoming i \
               WHERE a.workspace_id = $1 AND a.linkedin_id = i.l AND a.crm_id = i.c \
                 AND a.valid_to IS NULL AND a.valid_from < $7 \
                 AND (a.method, a.score, a.reason) IS DISTINCT FROM (i.m, i.s, i.r) \
               RETURNING 1) \
             INSERT INTO attribution_matches (workspace_id, linkedin_id, crm_id, method, score, reason, valid_from) \
             SELECT $1, i.l, i.c, i.m, i.s, i.r, $7 FROM incoming i \
             WHERE NOT EXISTS (SELECT 1 FROM attribution_matches a \
               WHERE a.workspace_id = $1 AND a.linkedin_id = i.l AND a.crm_id = i.c \
                 AND a.valid_to IS NULL AND a.valid_from < $7 \
                 AND (a.method, a.score, a.reason) IS NOT DISTINCT FROM (i.m, i.s, i.r)) \
             ON CONFLICT (workspace_id, crm_id, linkedin_id, valid_from) DO UPDATE SET \
               method = EXCLUDED.method, score = EXCLUDED.score, reason = EXCLUDED.reason",
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
        .bind(pending)
        .execute(conn)
        .await?;
    }
    Ok(skipped)
}
