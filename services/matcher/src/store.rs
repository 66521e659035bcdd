//! The matcher's Postgres projection: records, decisions, matches and review cases per workspace.

use crate::domain::{
    Candidate, Change, CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId,
    LinkedInResult, MatchConfig, MatchIndex, Method,
};
use rp_platform::contracts::events::v1::{CrmCompany, MatchDecision, MatchMethod, Organization};
use rp_platform::ids::WorkspaceId;
use sqlx::PgConnection;

/// Applies the service's migrations (beside the platform's).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    m.run(pool).await
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

pub async fn upsert_organizations(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    orgs: &[Organization],
) -> Result<(), sqlx::Error> {
    let orgs: Vec<&Organization> = orgs
        .iter()
        .filter(|o| LinkedInId::parse(&o.id).is_ok())
        .collect();
    if orgs.is_empty() {
        return Ok(());
    }
    share_workspace(conn, ws).await?;
    sqlx::query(
        "INSERT INTO matcher_linkedin (workspace_id, linkedin_id, name, vanity_name, website, country, changed) \
         SELECT $1, t.id, t.name, t.vanity, t.website, t.country, nextval('matcher_changes') \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS t(id, name, vanity, website, country) \
         ON CONFLICT (workspace_id, linkedin_id) DO UPDATE SET name = EXCLUDED.name, vanity_name = EXCLUDED.vanity_name, \
           website = EXCLUDED.website, country = EXCLUDED.country, changed = EXCLUDED.changed",
    )
    .bind(ws.to_string())
    .bind(orgs.iter().map(|o| o.id.trim().to_string()).collect::<Vec<_>>())
    .bind(orgs.iter().map(|o| o.name.clone()).collect::<Vec<_>>())
    .bind(orgs.iter().map(|o| opt(&o.vanity_name)).collect::<Vec<_>>())
    .bind(orgs.iter().map(|o| opt(&o.website)).collect::<Vec<_>>())
    .bind(orgs.iter().map(|o| opt(&o.country)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn upsert_companies(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    companies: &[CrmCompany],
) -> Result<(), sqlx::Error> {
    let cs: Vec<&CrmCompany> = companies
        .iter()
        .filter(|c| CrmId::parse(&c.id).is_ok())
        .collect();
    if cs.is_empty() {
        return Ok(());
    }
    share_workspace(conn, ws).await?;
    sqlx::query(
        "INSERT INTO matcher_crm (workspace_id, crm_id, name, domain, website, country, deleted, changed) \
         SELECT $1, t.id, t.name, t.domain, t.website, t.country, t.deleted, nextval('matcher_changes') \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[]) \
              AS t(id, name, domain, website, country, deleted) \
         ON CONFLICT (workspace_id, crm_id) DO UPDATE SET name = EXCLUDED.name, domain = EXCLUDED.domain, \
           website = EXCLUDED.website, country = EXCLUDED.country, deleted = EXCLUDED.deleted, \
           changed = EXCLUDED.changed",
    )
    .bind(ws.to_string())
    .bind(cs.iter().map(|c| c.id.trim().to_string()).collect::<Vec<_>>())
    .bind(cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
    .bind(cs.iter().map(|c| opt(&c.domain)).collect::<Vec<_>>())
    .bind(cs.iter().map(|c| opt(&c.website)).collect::<Vec<_>>())
    .bind(cs.iter().map(|c| opt(&c.country)).collect::<Vec<_>>())
    .bind(cs.iter().map(|c| c.deleted).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

pub fn decision_kind(d: i32) -> Option<DecisionKind> {
    match MatchDecision::try_from(d).ok()? {
        MatchDecision::Confirm => Some(DecisionKind::Confirm),
        MatchDecision::Reject => Some(DecisionKind::Reject),
        MatchDecision::Link => Some(DecisionKind::Link),
        MatchDecision::Unspecified => None,
    }
}

fn decision_code(k: DecisionKind) -> i32 {
    match k {
        DecisionKind::Confirm => MatchDecision::Confirm as i32,
        DecisionKind::Reject => MatchDecision::Reject as i32,
        DecisionKind::Link => MatchDecision::Link as i32,
    }
}

pub fn method_code(m: Method) -> i32 {
    (match m {
        Method::Domain => MatchMethod::Domain,
        Method::Name => MatchMethod::Name,
        Method::Fuzzy => MatchMethod::Fuzzy,
        Method::Manual => MatchMethod::Manual,
    }) as i32
}

/// Every CRM company of the workspace becomes deleted (and dirty), as if each had a tombstone:
/// the CRM is another account's now. Returns how many were live.
pub async fn forget_crm_account(
    conn: &mut PgConnection,
    ws: WorkspaceId,
) -> Result<u64, sqlx::Error> {
    share_workspace(conn, ws).await?;
    let done = sqlx::query(
        "UPDATE matcher_crm SET deleted = true, changed = nextval('matcher_changes') \
         WHERE workspace_id = $1 AND NOT deleted",
    )
    .bind(ws.to_string())
    .execute(&mut *conn)
    .await?;
    // Like any upsert: the dirty rows reach the cached index at the next matching step.
    Ok(done.rows_affected())
}

pub async fn save_decision(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    d: &Decision,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO matcher_decisions (workspace_id, linkedin_id, crm_id, decision, decided_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (workspace_id, linkedin_id, crm_id) DO UPDATE SET decision = EXCLUDED.decision, \
           decided_by = EXCLUDED.decided_by, decided_at = now()",
    )
    .bind(ws.to_string())
    .bind(d.linkedin_id.as_str())
    .bind(d.crm_id.as_str())
    .bind(decision_code(d.kind))
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Holds the workspace's row in share mode for this transaction, so the records it stamps
/// (`changed`, from `matcher_changes`) commit before a matching step moves the workspace's
/// `matched_through` mark past them, or are stamped after it (the step holds the row in update
/// mode: [`lock_workspace`]).
async fn share_workspace(conn: &mut PgConnection, ws: WorkspaceId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO matcher_workspaces (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(ws.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT 1 FROM matcher_workspaces WHERE workspace_id = $1 FOR SHARE")
        .bind(ws.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks the workspace's matching state for this transaction and returns its version.
pub async fn lock_workspace(conn: &mut PgConnection, ws: WorkspaceId) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO matcher_workspaces (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(ws.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT version FROM matcher_workspaces WHERE workspace_id = $1 FOR UPDATE")
        .bind(ws.to_string())
        .fetch_one(conn)
        .await
}

pub async fn bump_version(conn: &mut PgConnection, ws: WorkspaceId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("UPDATE matcher_workspaces SET version = version + 1 WHERE workspace_id = $1 RETURNING version")
        .bind(ws.to_string())
        .fetch_one(conn)
        .await
}

type CrmRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);
type LiRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn crm_account(r: CrmRow) -> Option<CrmAccount> {
    Some(CrmAccount {
        id: CrmId::parse(&r.0).ok()?,
        name: r.1,
        domain: r.2,
        website: r.3,
        country: r.4,
    })
}

fn li_company(r: LiRow) -> Option<LinkedInCompany> {
    Some(LinkedInCompany {
        id: LinkedInId::parse(&r.0).ok()?,
        name: r.1,
        vanity_name: r.2,
        website: r.3,
        country: r.4,
    })
}

/// Builds the workspace's index from every stored record and decision (and marks the records
/// clean: the index now reflects them).
pub async fn load_index(
    conn: &mut PgConnection,
    ws: WorkspaceId,
) -> Result<MatchIndex, sqlx::Error> {
    let crm: Vec<CrmRow> = sqlx::query_as(
        "SELECT crm_id, name, domain, website, country, deleted FROM matcher_crm WHERE workspace_id = $1 AND NOT deleted",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let li: Vec<LiRow> = sqlx::query_as(
        "SELECT linkedin_id, name, vanity_name, website, country FROM matcher_linkedin WHERE workspace_id = $1",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let decisions: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT linkedin_id, crm_id, decision FROM matcher_decisions WHERE workspace_id = $1",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *conn)
    .await?;
    clear_dirty(conn, ws).await?;
    let decisions = decisions
        .into_iter()
        .filter_map(|(l, c, d)| {
            Some(Decision {
                linkedin_id: LinkedInId::parse(&l).ok()?,
                crm_id: CrmId::parse(&c).ok()?,
                kind: decision_kind(d)?,
            })
        })
        .collect();
    let crm = crm.into_iter().filter_map(crm_account).collect();
    let li = li.into_iter().filter_map(li_company).collect();
    Ok(MatchIndex::build(
        MatchConfig::default(),
        crm,
        li,
        decisions,
    ))
}

/// Marks every record stamped so far as matched: the workspace's `matched_through` moves to a
/// fresh value of `matcher_changes`, above every stamp committed before (the caller holds the
/// workspace's row in update mode). One row written, not one per record.
async fn clear_dirty(conn: &mut PgConnection, ws: WorkspaceId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE matcher_workspaces SET matched_through = nextval('matcher_changes') \
         WHERE workspace_id = $1",
    )
    .bind(ws.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// The records changed since the last matching step, as index changes (and marks them clean).
pub async fn take_dirty(
    conn: &mut PgConnection,
    ws: WorkspaceId,
) -> Result<Vec<Change>, sqlx::Error> {
    let crm: Vec<CrmRow> = sqlx::query_as(
        "SELECT crm_id, name, domain, website, country, deleted FROM matcher_crm \
         WHERE workspace_id = $1 AND changed > \
           (SELECT matched_through FROM matcher_workspaces WHERE workspace_id = $1)",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let li: Vec<LiRow> = sqlx::query_as(
        "SELECT linkedin_id, name, vanity_name, website, country FROM matcher_linkedin \
         WHERE workspace_id = $1 AND changed > \
           (SELECT matched_through FROM matcher_workspaces WHERE workspace_id = $1)",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *conn)
    .await?;
    clear_dirty(conn, ws).await?;
    let mut changes = Vec::with_capacity(crm.len() + li.len());
    for r in crm {
        if r.5 {
            if let Ok(id) = CrmId::parse(&r.0) {
                changes.push(Change::RemoveCrm(id));
            }
        } else if let Some(a) = crm_account(r) {
            changes.push(Change::UpsertCrm(a));
        }
    }
    changes.extend(
        li.into_iter()
            .filter_map(li_company)
            .map(Change::UpsertLinkedIn),
    );
    Ok(changes)
}

/// A stored match, as compared with a new result.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMatch {
    pub crm_id: String,
    pub method: i32,
    pub score: f64,
    pub reason: String,
}

/// The stored matches of these LinkedIn companies (all of the workspace's when `ids` is None).
pub async fn stored_matches(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    ids: Option<&[String]>,
) -> Result<Vec<(String, StoredMatch)>, sqlx::Error> {
    let rows: Vec<(String, String, i32, f64, String)> = sqlx::query_as(
        "SELECT linkedin_id, crm_id, method, score, reason FROM matcher_matches \
         WHERE workspace_id = $1 AND ($2::text[] IS NULL OR linkedin_id = ANY($2)) ORDER BY linkedin_id, crm_id",
    )
    .bind(ws.to_string())
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(l, c, m, s, r)| {
            (
                l,
                StoredMatch {
                    crm_id: c,
                    method: m,
                    score: s,
                    reason: r,
                },
            )
        })
        .collect())
}

/// Replaces the stored results of the given LinkedIn companies.
pub async fn replace_results(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    ids: &[String],
    results: &[&LinkedInResult],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM matcher_matches WHERE workspace_id = $1 AND linkedin_id = ANY($2)")
        .bind(ws.to_string())
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM matcher_reviews WHERE workspace_id = $1 AND linkedin_id = ANY($2)")
        .bind(ws.to_string())
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    let matches: Vec<_> = results.iter().flat_map(|r| r.matches.iter()).collect();
    if !matches.is_empty() {
        sqlx::query(
            "INSERT INTO matcher_matches (workspace_id, linkedin_id, crm_id, method, score, reason) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int[], $5::float8[], $6::text[])",
        )
        .bind(ws.to_string())
        .bind(matches.iter().map(|m| m.linkedin_id.to_string()).collect::<Vec<_>>())
        .bind(matches.iter().map(|m| m.crm_id.to_string()).collect::<Vec<_>>())
        .bind(matches.iter().map(|m| method_code(m.method)).collect::<Vec<_>>())
        .bind(matches.iter().map(|m| m.score.value()).collect::<Vec<_>>())
        .bind(matches.iter().map(|m| m.reason.clone()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let reviews: Vec<(&LinkedInId, &crate::domain::Review)> = results
        .iter()
        .filter_map(|r| r.review.as_ref().map(|v| (&r.linkedin_id, v)))
        .collect();
    if !reviews.is_empty() {
        let candidates: Vec<serde_json::Value> = reviews
            .iter()
            .map(|(_, r)| {
                serde_json::Value::Array(r.candidates.iter().map(candidate_json).collect())
            })
            .collect();
        sqlx::query(
            "INSERT INTO matcher_reviews (workspace_id, linkedin_id, reason, candidates) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::jsonb[])",
        )
        .bind(ws.to_string())
        .bind(
            reviews
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            reviews
                .iter()
                .map(|(_, r)| r.reason.clone())
                .collect::<Vec<_>>(),
        )
        .bind(candidates)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn candidate_json(c: &Candidate) -> serde_json::Value {
    serde_json::json!({
        "crm_id": c.crm_id.as_str(),
        "crm_name": c.crm_name,
        "method": method_code(c.method),
        "score": c.score.value(),
        "reason": c.reason,
    })
}

/// (LinkedIn companies with a match, LinkedIn companies needing review).
pub async fn totals(conn: &mut PgConnection, ws: WorkspaceId) -> Result<(i64, i64), sqlx::Error> {
    let matched: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT linkedin_id) FROM matcher_matches WHERE workspace_id = $1",
    )
    .bind(ws.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let review: i64 =
        sqlx::query_scalar("SELECT count(*) FROM matcher_reviews WHERE workspace_id = $1")
            .bind(ws.to_string())
            .fetch_one(conn)
            .await?;
    Ok((matched, review))
}
