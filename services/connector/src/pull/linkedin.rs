//! The LinkedIn pull: engagement (ad analytics by member company and campaign, day by day) over
//! the plan's longest lookback window on the first sync and from the last complete day pulled
//! afterwards; then company resolution of the organizations behind that engagement.
//!
//! The engagement checkpoint (the last complete day) moves only after the organizations behind
//! the engagement are in the log too: a run interrupted during company resolution pulls that
//! engagement again next time, so no engaged organization is left unresolved.
//!
//! Gaps do not become permanent:
//! * a day at the analytics cap is split by account, then by campaign; a single campaign's day
//!   still at the cap is incomplete, and the checkpoint stays before it (read again next time);
//! * organizations LinkedIn did not return (per-id errors, not found) are kept in the engagement
//!   checkpoint's `boundary_ids` (`<org id>@<failed syncs>`) and looked up again at the next
//!   sync's company resolution, given up after [`ORG_RETRY_SYNCS`] syncs (logged);
//! * a member with no ad account fails the run (authorization: the user reconnects or grants a
//!   role), and no checkpoint moves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rp_platform::contracts::events::v1::{
    self as ev, CompaniesResolved, FailureKind, PullCompleted, SyncStep, envelope::Event,
};
use rp_platform::eventlog::ExpectedVersion;

use super::{Run, RunError, with_token};
use crate::domain::ObjectKind;
use crate::domain::batch::{Batcher, Record};
use crate::domain::checkpoint::{MAX_BOUNDARY, engagement_range, parse_day};
use crate::providers::linkedin::ORG_BATCH;

pub(crate) async fn pull(run: &mut Run) -> Result<Event, RunError> {
    let client = run.ctx().clients.linkedin();
    let today = run.provider_now().await?.date_naive();
    let plan = store_plan(run).await?;
    let longest = run.ctx().plans.longest_window(plan.as_deref());

    let (last, expected) = run.checkpoint(ObjectKind::LinkedinEngagement).await?;
    let cursor = match last.as_ref().map(|c| parse_day(&c.cursor)) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            tracing::error!(error = %e, "unreadable engagement checkpoint: pulling the whole window again");
            None
        }
    };
    let range = engagement_range(today, cursor, longest);
    tracing::info!(
        plan = plan.as_deref().unwrap_or("(unknown)"),
        longest_window_days = longest,
        ?range,
        "LinkedIn pull"
    );

    run.step(SyncStep::LinkedinPull).await?;
    // Ad accounts, and which account each campaign belongs to.
    let mut accounts = Vec::new();
    let mut start = 0usize;
    let mut guard = run.page_guard(0);
    loop {
        run.position = format!("adAccounts start {start}");
        let cursor = (start > 0).then(|| start.to_string());
        run.next_page(&mut guard, "GET /rest/adAccounts", cursor.as_deref())?;
        let page = with_token!(run, t => client.ad_accounts(&t, start));
        accounts.extend(page.records.into_iter().map(|a| a.id));
        match page.next.and_then(|n| n.parse().ok()) {
            Some(n) => start = n,
            None => break,
        }
    }
    if accounts.is_empty() {
        // No account, no engagement: pulling nothing and moving on would look like a quiet
        // account for as long as it lasts.
        return Err(RunError::Failed {
            kind: FailureKind::Authorization,
            message: "LinkedIn shows the connected member no ad account, so there is no \
                      engagement to sync. Give that member a role on your ad account in \
                      Campaign Manager, or reconnect LinkedIn on the Connections page as a \
                      member who has one."
                .into(),
            location: run.position.clone(),
        });
    }
    let mut campaign_account: HashMap<u64, u64> = HashMap::new();
    let mut account_campaigns: HashMap<u64, Vec<u64>> = HashMap::new();
    for &account in &accounts {
        let mut start = 0usize;
        let mut guard = run.page_guard(0);
        loop {
            run.position = format!("adCampaigns of {account} start {start}");
            let cursor = (start > 0).then(|| start.to_string());
            run.next_page(
                &mut guard,
                "GET /rest/adAccounts/{id}/adCampaigns",
                cursor.as_deref(),
            )?;
            let page = with_token!(run, t => client.campaigns(&t, account, start));
            for c in page.records {
                campaign_account.insert(c.id, c.account_id);
                account_campaigns.entry(account).or_default().push(c.id);
            }
            match page.next.and_then(|n| n.parse().ok()) {
                Some(n) => start = n,
                None => break,
            }
        }
    }

    let mut orgs: BTreeSet<u64> = BTreeSet::new();
    let mut engagement = Batcher::new(run.run_id.as_str(), ev::ObjectType::LinkedinEngagement);
    let mut rows = 0u64;
    // The first day a campaign's rows were truncated on: not complete, the cursor stays before it.
    let mut first_incomplete: Option<NaiveDate> = None;
    if let Some((from, to)) = range {
        let mut walker = client
            .engagement(accounts.clone(), from, to)
            .split_by_campaign(account_campaigns);
        loop {
            run.position = format!("adAnalytics from {from} to {to}");
            let chunk = with_token!(run, t => walker.next_chunk(&client, &t));
            let Some(chunk) = chunk else { break };
            if chunk.truncated {
                first_incomplete =
                    Some(first_incomplete.map_or(chunk.start, |d| d.min(chunk.start)));
            }
            for r in chunk.rows {
                orgs.insert(r.org_id);
                rows += 1;
                let record = Record::Engagement(ev::EngagementRow {
                    organization_id: r.org_id.to_string(),
                    campaign_id: r.campaign_id.to_string(),
                    date: r.date.format("%Y-%m-%d").to_string(),
                    impressions: i64::try_from(r.impressions).unwrap_or(i64::MAX),
                    clicks: i64::try_from(r.clicks).unwrap_or(i64::MAX),
                    engagements: i64::try_from(r.engagements).unwrap_or(i64::MAX),
                    ad_account_id: campaign_account
                        .get(&r.campaign_id)
                        .map(u64::to_string)
                        .unwrap_or_default(),
                });
                if let Some(b) = engagement.push(record) {
                    run.emit_batch(b).await?;
                }
            }
        }
    }
    run.note_oversized(engagement.take_oversized());
    if let Some(b) = engagement.flush() {
        run.emit_batch(b).await?;
    }
    run.count(ObjectKind::LinkedinEngagement, rows);
    let completed = run.event(Event::PullCompleted(PullCompleted {
        sync_run_id: run.run_id.to_string(),
        step: SyncStep::LinkedinPull as i32,
        counts: run.counts(&[ObjectKind::LinkedinEngagement]),
    }));
    run.append(
        &run.run_id.run_stream(),
        ExpectedVersion::Any,
        vec![completed],
    )
    .await?;

    // Company resolution.
    run.step(SyncStep::CompanyResolution).await?;
    // With the organizations LinkedIn did not return last time.
    let retries = OrgRetries::parse(last.as_ref().map_or(&[][..], |c| &c.boundary_ids[..]));
    orgs.extend(retries.ids());
    let ids: Vec<u64> = orgs.into_iter().collect();
    let mut not_returned: Vec<u64> = Vec::new();
    let mut batcher = Batcher::new(run.run_id.as_str(), ev::ObjectType::LinkedinOrganization);
    let (mut found, mut missing) = (0u64, 0u64);
    for (i, chunk) in ids.chunks(ORG_BATCH).enumerate() {
        run.position = format!("organizations batch {}", i + 1);
        let lookup = with_token!(run, t => client.organizations_batch(&t, chunk));
        missing += lookup.missing.len() as u64;
        not_returned.extend(lookup.missing);
        for o in lookup.found {
            found += 1;
            let record = Record::Organization(ev::Organization {
                id: o.id.to_string(),
                name: o.localized_name,
                vanity_name: o.vanity_name.unwrap_or_default(),
                website: o.website.unwrap_or_default(),
                country: o.country.unwrap_or_default(),
                industry: o.industries.into_iter().next().unwrap_or_default(),
                staff_count_range: o.staff_count_range.unwrap_or_default(),
            });
            if let Some(b) = batcher.push(record) {
                run.emit_batch(b).await?;
            }
        }
    }
    run.note_oversized(batcher.take_oversized());
    if let Some(b) = batcher.flush() {
        run.emit_batch(b).await?;
    }
    let (retries_next, given_up) = retries.after_lookup(&not_returned);
    if missing > 0 {
        tracing::warn!(
            missing,
            kept_for_next_sync = retries_next.0.len(),
            "organizations LinkedIn did not return: looked up again at the next sync"
        );
    }
    if !given_up.is_empty() {
        tracing::warn!(
            ids = ?given_up,
            syncs = ORG_RETRY_SYNCS,
            "organizations LinkedIn did not return sync after sync: given up"
        );
    }
    run.count(ObjectKind::LinkedinOrganization, found);

    // The engagement checkpoint: the last complete day, and the organizations to look up again.
    let previous = last.as_ref().map(|c| c.cursor.clone());
    let cursor = match range {
        Some((_, to)) => {
            let complete = match first_incomplete {
                Some(day) => {
                    tracing::warn!(%day, "engagement of that day is incomplete (a campaign's day reached the analytics cap): the checkpoint stays before it, so the next sync reads it again");
                    day.pred_opt().unwrap_or(day).min(to)
                }
                None => to,
            };
            let complete = match cursor {
                Some(c) => complete.max(c),
                None => complete,
            };
            Some(complete.format("%Y-%m-%d").to_string())
        }
        None => previous.clone(),
    };
    let entries = retries_next.entries();
    let unchanged = last
        .as_ref()
        .is_some_and(|c| Some(&c.cursor) == cursor.as_ref() && c.boundary_ids == entries);
    if let (Some(cursor), false) = (cursor, unchanged) {
        run.position = "engagement checkpoint".into();
        run.advance(ObjectKind::LinkedinEngagement, cursor, entries, expected)
            .await?;
    }
    Ok(Event::CompaniesResolved(CompaniesResolved {
        sync_run_id: run.run_id.to_string(),
        organizations: found,
    }))
}

async fn store_plan(run: &Run) -> Result<Option<String>, RunError> {
    Ok(crate::store::plan_of(&run.ctx().pool, run.workspace_id()).await?)
}

/// Organizations LinkedIn did not return, to look up again at the next sync, with how many syncs
/// failed to resolve each. Kept in the engagement checkpoint's `boundary_ids` as
/// `<org id>@<failed syncs>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct OrgRetries(BTreeMap<u64, u32>);

/// An organization not returned by this many syncs in a row is given up (logged).
const ORG_RETRY_SYNCS: u32 = 5;

impl OrgRetries {
    /// Reads the checkpoint's entries; an unreadable one is skipped (logged).
    fn parse(entries: &[String]) -> Self {
        let mut out = BTreeMap::new();
        for e in entries {
            let parsed = e
                .split_once('@')
                .and_then(|(id, n)| Some((id.parse::<u64>().ok()?, n.parse::<u32>().ok()?)));
            match parsed {
                Some((id, n)) => {
                    out.insert(id, n);
                }
                None => tracing::error!(
                    entry = %e,
                    "unreadable organization retry entry (expected <org id>@<failed syncs>): skipped"
                ),
            }
        }
        OrgRetries(out)
    }

    fn entries(&self) -> Vec<String> {
        self.0.iter().map(|(id, n)| format!("{id}@{n}")).collect()
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.keys().copied()
    }

    /// The list after a lookup (of every id kept here, among others) that did not return
    /// `missing`, and the ids given up: those not returned by [`ORG_RETRY_SYNCS`] syncs, and
    /// those past [`MAX_BOUNDARY`] (the checkpoint stays small).
    fn after_lookup(&self, missing: &[u64]) -> (OrgRetries, Vec<u64>) {
        let mut next = BTreeMap::new();
        let mut dropped = Vec::new();
        for &id in missing {
            let failed = self.0.get(&id).copied().unwrap_or(0) + 1;
            if failed >= ORG_RETRY_SYNCS || next.len() >= MAX_BOUNDARY {
                dropped.push(id);
            } else {
                next.insert(id, failed);
            }
        }
        (OrgRetries(next), dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_is_retried_until_it_fails_too_many_syncs_then_given_up() {
        let mut r = OrgRetries::default();
        for sync in 1..ORG_RETRY_SYNCS {
            let (next, dropped) = r.after_lookup(&[7, 8]);
            assert!(dropped.is_empty(), "sync {sync}");
            assert_eq!(next.0.get(&7), Some(&sync));
            r = OrgRetries::parse(&next.entries());
            assert_eq!(r, next, "survives the checkpoint");
        }
        // 8 is found this time; 7 fails once more and is given up.
        let (next, dropped) = r.after_lookup(&[7]);
        assert_eq!(dropped, vec![7]);
        assert!(next.0.is_empty());
        // A new failure starts at one.
        let (next, _) = next.after_lookup(&[9]);
        assert_eq!(next.entries(), vec!["9@1".to_string()]);
        assert_eq!(OrgRetries::parse(&["x".into(), "5@2".into()]).0.len(), 1);
    }
}
