//! The LinkedIn pull: engagement (ad analytics by member company and campaign, day by day) over
//! the plan's longest lookback window on the first sync and from the last complete day pulled
//! afterwards; then company resolution of the organizations behind that engagement.
//!
//! The engagement checkpoint (the last complete day) moves only after the organizations behind
//! the engagement are in the log too: a run interrupted during company resolution pulls that
//! engagement again next time, so no engaged organization is left unresolved.

use std::collections::{BTreeSet, HashMap};

use rp_platform::contracts::events::v1::{
    self as ev, CompaniesResolved, PullCompleted, SyncStep, envelope::Event,
};
use rp_platform::eventlog::ExpectedVersion;

use super::{Run, RunError, with_token};
use crate::domain::ObjectKind;
use crate::domain::batch::{Batcher, Record};
use crate::domain::checkpoint::{engagement_range, parse_day};
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
    loop {
        run.position = format!("adAccounts start {start}");
        let page = with_token!(run, t => client.ad_accounts(&t, start));
        accounts.extend(page.records.into_iter().map(|a| a.id));
        match page.next.and_then(|n| n.parse().ok()) {
            Some(n) => start = n,
            None => break,
        }
    }
    let mut campaign_account: HashMap<u64, u64> = HashMap::new();
    for &account in &accounts {
        let mut start = 0usize;
        loop {
            run.position = format!("adCampaigns of {account} start {start}");
            let page = with_token!(run, t => client.campaigns(&t, account, start));
            for c in page.records {
                campaign_account.insert(c.id, c.account_id);
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
    if let (Some((from, to)), false) = (range, accounts.is_empty()) {
        let mut walker = client.engagement(accounts.clone(), from, to);
        loop {
            run.position = format!("adAnalytics from {from} to {to}");
            let chunk = with_token!(run, t => walker.next_chunk(&client, &t));
            let Some(chunk) = chunk else { break };
            if chunk.truncated {
                tracing::warn!(day = %chunk.start, "LinkedIn truncated one day's engagement: some rows of that day are missing");
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
    let ids: Vec<u64> = orgs.into_iter().collect();
    let mut batcher = Batcher::new(run.run_id.as_str(), ev::ObjectType::LinkedinOrganization);
    let (mut found, mut missing) = (0u64, 0u64);
    for (i, chunk) in ids.chunks(ORG_BATCH).enumerate() {
        run.position = format!("organizations batch {}", i + 1);
        let lookup = with_token!(run, t => client.organizations_batch(&t, chunk));
        missing += lookup.missing.len() as u64;
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
    if let Some(b) = batcher.flush() {
        run.emit_batch(b).await?;
    }
    if missing > 0 {
        tracing::info!(missing, "organizations LinkedIn did not return");
    }
    run.count(ObjectKind::LinkedinOrganization, found);
    if let Some((_, to)) = range {
        run.position = "engagement checkpoint".into();
        run.advance(
            ObjectKind::LinkedinEngagement,
            to.format("%Y-%m-%d").to_string(),
            Vec::new(),
            expected,
        )
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
