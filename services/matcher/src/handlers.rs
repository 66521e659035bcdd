//! Events in, events out: the matching step of a sync cycle, and manual decisions.
//!
//! * RecordsPulled (LinkedIn organizations, CRM companies) only stores the records, stamped as
//!   changed (`store::take_dirty` takes them at the next matching step).
//!   A CRM company deleted in the CRM comes as a tombstone (`deleted: true`): it is stored as
//!   deleted, leaves the index at the next matching step (`Change::RemoveCrm`), and its matches
//!   come out of that step's AccountsMatched as REMOVED; a rebuilt index leaves it out.
//! * The matching step starts when the pull before it completes: CompaniesResolved (a LinkedIn
//!   sync) or PullCompleted of the CRM pull (a CRM sync). It re-matches only the LinkedIn
//!   companies the dirty records affect, stores the new results, and emits AccountsMatched with
//!   what changed (new, changed, removed), split into parts well under the NATS max payload.
//! * MatchDecisionRecorded stores the decision and re-matches the pair's LinkedIn company.
//! * ConnectionReconnected of a CRM for another account (`previous_external_account_id` set):
//!   every CRM company stored is the previous account's, so each is stored as deleted, exactly
//!   as a tombstone would; the new account's companies (pulled in full by the next sync) come
//!   back as upserts, and the next matching step reports the previous account's matches as
//!   REMOVED. LinkedIn organizations are public company pages, not an account's: they stay.
//!
//! Each workspace's index lives in memory, tagged with the version of the workspace's state in
//! PostgreSQL; a replica whose copy is stale (another replica handled the workspace since)
//! rebuilds it from the projection. Every change happens under the workspace's row lock.

use crate::domain::{Change, CrmId, Decision, LinkedInId, LinkedInResult, MatchIndex};
use crate::store::{self, StoredMatch};
use rp_platform::consumer::{Handler, HandlerContext, HandlerError};
use rp_platform::contracts::events::v1::{
    AccountsMatched, MatchChange, MatchChangeKind, ObjectType, Provider, SyncStep, SyncStepStarted,
    envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, RecordedEvent};
use rp_platform::ids::{SyncRunId, WorkspaceId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub const EVENT_TYPES: &[&str] = &[
    "RecordsPulled",
    "CompaniesResolved",
    "PullCompleted",
    "MatchDecisionRecorded",
    "ConnectionReconnected",
];

/// At most this many changes per AccountsMatched event (a change is ~200 bytes).
pub const CHANGES_PER_EVENT: usize = 2_000;

/// The workspaces' match indexes kept between matching steps, so an incremental step applies
/// what changed instead of rebuilding the index from the projection. Bounded: at most
/// `budget` records (CRM accounts and LinkedIn companies) in all; past it the least recently
/// used workspaces' indexes are dropped (their next step rebuilds from the projection, the
/// same result). Unbounded, the matcher's memory grew with every workspace it ever matched:
/// 753 MiB after 1,000 small workspaces (`make load`, docs/benchmarks.md).
pub struct IndexCache {
    /// In records, each index counted with [`INDEX_OVERHEAD`] more (its maps' fixed cost).
    budget: usize,
    entries: HashMap<WorkspaceId, Cached>,
    records: usize,
    clock: u64,
}

/// What an index costs beyond its records, in records: its maps' fixed part, which dominates a
/// small workspace's index.
pub const INDEX_OVERHEAD: usize = 256;

fn cost(index: &MatchIndex) -> usize {
    index.records() + INDEX_OVERHEAD
}

struct Cached {
    version: i64,
    index: MatchIndex,
    used: u64,
}

impl IndexCache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: HashMap::new(),
            records: 0,
            clock: 0,
        }
    }

    /// The workspace's index when it is the one of `version` (taken out: the caller puts it
    /// back with the next version).
    pub fn take(&mut self, ws: WorkspaceId, version: i64) -> Option<MatchIndex> {
        let c = self.entries.remove(&ws)?;
        self.records -= cost(&c.index);
        (c.version == version).then_some(c.index)
    }

    /// Keeps the workspace's index at `version`, then drops the least recently used others
    /// while the cache is over its budget (an index larger than the whole budget is not kept).
    pub fn put(&mut self, ws: WorkspaceId, version: i64, index: MatchIndex) {
        self.clock += 1;
        if let Some(old) = self.entries.remove(&ws) {
            self.records -= cost(&old.index);
        }
        let size = cost(&index);
        if size > self.budget {
            return;
        }
        self.records += size;
        self.entries.insert(
            ws,
            Cached {
                version,
                index,
                used: self.clock,
            },
        );
        while self.records > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .filter(|(w, _)| **w != ws)
                .min_by_key(|(_, c)| c.used)
                .map(|(w, _)| *w)
            else {
                break;
            };
            if let Some(c) = self.entries.remove(&oldest) {
                self.records -= cost(&c.index);
            }
        }
    }

    /// Records held (with each index's overhead), and workspaces.
    pub fn size(&self) -> (usize, usize) {
        (self.records, self.entries.len())
    }
}

pub struct Matcher {
    cache: Mutex<IndexCache>,
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new(crate::config::Config::DEFAULT_INDEX_CACHE_RECORDS)
    }
}

impl Matcher {
    /// A matcher keeping at most `cache_records` records of match indexes between steps.
    pub fn new(cache_records: usize) -> Self {
        Self {
            cache: Mutex::new(IndexCache::new(cache_records)),
        }
    }

    fn take_cached(&self, ws: WorkspaceId, version: i64) -> Option<MatchIndex> {
        self.cache.lock().ok()?.take(ws, version)
    }

    fn put_cached(&self, ws: WorkspaceId, version: i64, idx: MatchIndex) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(ws, version, idx);
        }
    }

    /// Re-matches what changed and writes it; returns the changes and the new version.
    async fn rematch(
        &self,
        ctx: &mut HandlerContext,
        ws: WorkspaceId,
        extra: Vec<Change>,
    ) -> Result<Vec<MatchChange>, HandlerError> {
        let tx = &mut *ctx.tx;
        let version = store::lock_workspace(tx, ws).await?;
        let (index, affected): (MatchIndex, Option<Vec<String>>) =
            match self.take_cached(ws, version) {
                Some(mut idx) => {
                    let mut changes = store::take_dirty(tx, ws).await?;
                    changes.extend(extra);
                    let set = idx.apply(changes);
                    let mut ids: Vec<String> = set
                        .updated
                        .iter()
                        .map(|r| r.linkedin_id.to_string())
                        .collect();
                    ids.extend(set.removed.iter().map(|id| id.to_string()));
                    (idx, Some(ids))
                }
                None => {
                    // Rebuilt from the projection (which already holds `extra`'s decision).
                    (store::load_index(tx, ws).await?, None)
                }
            };
        let changes = diff_and_store(tx, ws, &index, affected.as_deref()).await?;
        let new_version = store::bump_version(tx, ws).await?;
        // If the transaction does not commit, the version in the database stays behind this
        // one, so the next event rebuilds instead of trusting this copy.
        self.put_cached(ws, new_version, index);
        Ok(changes)
    }

    async fn matching_step(
        &self,
        ctx: &mut HandlerContext,
        ws: WorkspaceId,
        run: &SyncRunId,
    ) -> Result<(), HandlerError> {
        let started = ctx.new_event(Event::SyncStepStarted(SyncStepStarted {
            sync_run_id: run.to_string(),
            step: SyncStep::Matching as i32,
        }));
        let changes = self.rematch(ctx, ws, Vec::new()).await?;
        let (matched, review) = store::totals(&mut ctx.tx, ws).await?;
        let mut events = vec![started];
        events.extend(accounts_matched(ctx, Some(run), changes, matched, review));
        ctx.emit(run.run_stream(), ExpectedVersion::Any, events);
        Ok(())
    }
}

/// AccountsMatched for `changes`, in parts; `run` is None for decisions made outside a run.
fn accounts_matched(
    ctx: &HandlerContext,
    run: Option<&SyncRunId>,
    changes: Vec<MatchChange>,
    matched: i64,
    review: i64,
) -> Vec<NewEvent> {
    let chunks: Vec<Vec<MatchChange>> = if changes.is_empty() {
        vec![Vec::new()]
    } else {
        changes
            .chunks(CHANGES_PER_EVENT)
            .map(<[MatchChange]>::to_vec)
            .collect()
    };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, changes)| {
            ctx.new_event(Event::AccountsMatched(AccountsMatched {
                sync_run_id: run.map_or_else(String::new, SyncRunId::to_string),
                changes,
                matched: matched.max(0) as u64,
                needs_review: review.max(0) as u64,
                remaining_parts: (n - 1 - i) as u32,
            }))
        })
        .collect()
}

/// Compares the index's results for `affected` (all when None) with what is stored, stores the
/// new ones, and returns the differences.
async fn diff_and_store(
    tx: &mut sqlx::PgConnection,
    ws: WorkspaceId,
    index: &MatchIndex,
    affected: Option<&[String]>,
) -> Result<Vec<MatchChange>, HandlerError> {
    let results: Vec<LinkedInResult> = match affected {
        Some(ids) => ids
            .iter()
            .filter_map(|id| LinkedInId::parse(id).ok())
            .filter_map(|id| index.result(&id))
            .collect(),
        None => index.results(),
    };
    let stored = store::stored_matches(tx, ws, affected).await?;
    let mut old: BTreeMap<(String, String), StoredMatch> = BTreeMap::new();
    for (li, m) in stored {
        old.insert((li, m.crm_id.clone()), m);
    }
    let mut changes = Vec::new();
    let mut ids: Vec<String> = affected.map(<[String]>::to_vec).unwrap_or_default();
    for r in &results {
        if affected.is_none() {
            ids.push(r.linkedin_id.to_string());
        }
        for m in &r.matches {
            let key = (m.linkedin_id.to_string(), m.crm_id.to_string());
            let now = StoredMatch {
                crm_id: key.1.clone(),
                method: store::method_code(m.method),
                score: m.score.value(),
                reason: m.reason.clone(),
            };
            let kind = match old.remove(&key) {
                None => Some(MatchChangeKind::New),
                Some(before) if before != now => Some(MatchChangeKind::Changed),
                Some(_) => None,
            };
            if let Some(kind) = kind {
                changes.push(MatchChange {
                    kind: kind as i32,
                    linkedin_id: key.0,
                    crm_id: key.1,
                    method: now.method,
                    score: now.score,
                    reason: now.reason,
                });
            }
        }
    }
    // Whatever is left was matched before and is not now.
    if affected.is_none() {
        // A full rebuild covers every stored row too.
        ids.extend(old.keys().map(|(li, _)| li.clone()));
    }
    for ((li, crm), before) in old {
        changes.push(MatchChange {
            kind: MatchChangeKind::Removed as i32,
            linkedin_id: li,
            crm_id: crm,
            method: before.method,
            score: before.score,
            reason: before.reason,
        });
    }
    ids.sort();
    ids.dedup();
    let refs: Vec<&LinkedInResult> = results.iter().collect();
    store::replace_results(tx, ws, &ids, &refs).await?;
    Ok(changes)
}

impl Handler for Matcher {
    async fn handle(
        &self,
        ctx: &mut HandlerContext,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        // An event type newer than this reader: nothing to do.
        let Some(body) = event.event() else {
            return Ok(());
        };
        let ws = rp_platform::consumer::workspace_of(event)?;
        match body {
            Event::RecordsPulled(r) => {
                if r.object_type == ObjectType::LinkedinOrganization as i32 {
                    store::upsert_organizations(&mut ctx.tx, ws, &r.organizations).await?;
                } else if r.object_type == ObjectType::CrmCompany as i32 {
                    store::upsert_companies(&mut ctx.tx, ws, &r.companies).await?;
                }
            }
            Event::CompaniesResolved(c) => {
                let run = sync_run_id(event, &c.sync_run_id)?;
                self.matching_step(ctx, ws, &run).await?
            }
            Event::PullCompleted(p) if p.step == SyncStep::CrmPull as i32 => {
                let run = sync_run_id(event, &p.sync_run_id)?;
                self.matching_step(ctx, ws, &run).await?
            }
            Event::ConnectionReconnected(c)
                if !c.previous_external_account_id.is_empty()
                    && c.provider != Provider::Linkedin as i32 =>
            {
                let n = store::forget_crm_account(&mut ctx.tx, ws).await?;
                tracing::info!(workspace_id = %ws, companies = n, previous = %c.previous_external_account_id, "CRM authorized for another account: the previous account's companies leave at the next matching step");
            }
            Event::MatchDecisionRecorded(d) => {
                let (Ok(linkedin_id), Ok(crm_id), Some(kind)) = (
                    LinkedInId::parse(&d.linkedin_id),
                    CrmId::parse(&d.crm_id),
                    store::decision_kind(d.decision),
                ) else {
                    return Err(HandlerError::Reject(format!(
                        "MatchDecisionRecorded needs a LinkedIn id, a CRM id and a decision (got {:?}, {:?}, {})",
                        d.linkedin_id, d.crm_id, d.decision
                    )));
                };
                let decision = Decision {
                    linkedin_id,
                    crm_id,
                    kind,
                };
                store::save_decision(&mut ctx.tx, ws, &decision, &d.decided_by).await?;
                let changes = self
                    .rematch(ctx, ws, vec![Change::Decide(decision)])
                    .await?;
                let (matched, review) = store::totals(&mut ctx.tx, ws).await?;
                let events = accounts_matched(ctx, None, changes, matched, review);
                ctx.emit(ws.matches_stream(), ExpectedVersion::Any, events);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The sync run an event names, parsed once here; an event without a usable one is refused.
fn sync_run_id(event: &RecordedEvent, raw: &str) -> Result<SyncRunId, HandlerError> {
    SyncRunId::parse(raw)
        .map_err(|why| HandlerError::Reject(format!("{}: {why}", event.event_type())))
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::domain::{CrmAccount, CrmId, MatchConfig};

    fn index(records: usize) -> MatchIndex {
        let crm = (0..records)
            .map(|i| CrmAccount {
                id: CrmId::parse(&format!("c{i}")).unwrap(),
                name: format!("Company {i}"),
                domain: Some(format!("c{i}.example.com")),
                website: None,
                country: None,
            })
            .collect();
        MatchIndex::build(MatchConfig::default(), crm, Vec::new(), Vec::new())
    }

    fn ws() -> WorkspaceId {
        WorkspaceId::new(uuid::Uuid::new_v4())
    }

    #[test]
    fn the_cache_stays_within_its_budget_dropping_the_least_recently_used() {
        let each = 40 + INDEX_OVERHEAD;
        let mut cache = IndexCache::new(2 * each + 10);
        let (a, b, c) = (ws(), ws(), ws());
        cache.put(a, 1, index(40));
        cache.put(b, 1, index(40));
        // a is used again (taken and put back at its next version): b is now the oldest.
        let idx = cache.take(a, 1).expect("a's index");
        cache.put(a, 2, idx);
        cache.put(c, 1, index(40));
        assert_eq!(cache.size(), (2 * each, 2), "within the budget");
        assert!(cache.take(b, 1).is_none(), "the least recently used went");
        assert!(cache.take(a, 2).is_some());
        assert!(cache.take(c, 1).is_some());
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn a_stale_version_or_an_index_over_the_whole_budget_is_not_served() {
        let mut cache = IndexCache::new(100 + INDEX_OVERHEAD);
        let a = ws();
        cache.put(a, 1, index(10));
        assert!(
            cache.take(a, 2).is_none(),
            "another version: rebuilt instead"
        );
        assert_eq!(cache.size(), (0, 0), "and dropped");
        cache.put(a, 3, index(101));
        assert_eq!(cache.size(), (0, 0), "larger than the budget: not kept");
        assert!(cache.take(a, 3).is_none());
    }

    /// Many workspaces matched one after the other: the cache never holds more than its budget
    /// (before, every workspace's index stayed for the life of the process).
    #[test]
    fn a_thousand_workspaces_never_hold_more_than_the_budget() {
        let budget = 10_000;
        let mut cache = IndexCache::new(budget);
        for _ in 0..1_000 {
            cache.put(ws(), 1, index(30));
            assert!(cache.size().0 <= budget);
        }
        let kept = budget / (30 + INDEX_OVERHEAD);
        assert_eq!(cache.size(), (kept * (30 + INDEX_OVERHEAD), kept));
    }
}
