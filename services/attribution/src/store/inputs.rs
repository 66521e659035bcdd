//! Loading the numbers' inputs: a workspace's deals, stages, matches and engagement rows, as the
//! log says now or as they were at a kept version.

use crate::domain::metrics::{Deal, EngagementRow, Inputs, Match, StageKind};
use crate::domain::{Amount, CampaignId, CompanyId, Currency, DealId, OrgId};
use chrono::{DateTime, Days, NaiveDate, Utc};
use rp_platform::contracts::events::v1 as ev;
use sqlx::PgConnection;
use std::collections::{BTreeSet, HashMap};

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
    let stages_table = match at {
        At::Now => "attribution_stages",
        At::Version(_) => "attribution_version_stages",
    };
    // Matches are versioned in place too.
    let matches_at = match at {
        At::Now => "valid_to IS NULL",
        At::Version(_) => "valid_from <= $3 AND (valid_to IS NULL OR valid_to > $3)",
    };
    // Deals are versioned in place (like engagement rows); a version knows the deals created by
    // its as-of day.
    let deals_at = match at {
        At::Now => "valid_to IS NULL",
        At::Version(_) => {
            "valid_from <= $3 AND (valid_to IS NULL OR valid_to > $3) \
             AND (created_at IS NULL OR (created_at AT TIME ZONE 'UTC')::date <= $4)"
        }
    };
    // The table names and fragments are ours, never input.
    let deals: Vec<DealDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT deal_id, name, amount, currency, stage_id, pipeline_id, created_at, closed_at, \
           company_ids FROM attribution_deals \
         WHERE workspace_id = $1 AND ($2::text[] IS NULL OR deal_id = ANY($2)) AND {deals_at} \
         ORDER BY deal_id"
    )))
    .bind(ws)
    .bind(&only)
    .bind(version)
    .bind(as_of)
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
            "SELECT linkedin_id, crm_id, method, score, reason FROM attribution_matches \
             WHERE workspace_id = $1 AND ($2::text[] IS NULL OR crm_id = ANY($2)) AND {matches_at} \
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

#[cfg(test)]
mod tests {
    use super::*;

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
