//! LinkedIn gaps never become permanent (issue 12, item 3): against a sandbox whose analytics
//! cap is low, so days truncate with little data, every engagement row of the truth arrives;
//! a campaign-day still at the cap is not marked complete; organizations answered with per-id
//! errors are looked up again at the next sync; a member with no ad account fails the run with
//! a message the user can act on, and no checkpoint moves.

mod connector_support;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use connector_support::{Harness, Options, counts, failed};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1 as ev;
use sandbox::{Provider as SbProvider, SandboxConfig};
use serde_json::{Value, json};

/// The sandbox truncates adAnalytics responses at this many elements, and the connector knows.
const CAP: usize = 4;

async fn harness() -> Harness {
    Harness::with(Options {
        sandbox: SandboxConfig {
            linkedin_analytics_cap: CAP,
            ..SandboxConfig::for_tests()
        },
        tweak: Box::new(|c| c.providers.linkedin_analytics_cap = CAP),
        ..Default::default()
    })
    .await
}

/// (date, org, campaign) -> (impressions, clicks, engagements, account).
type Rows = BTreeMap<(String, String, String), (i64, i64, i64, String)>;

async fn truth_rows(h: &Harness) -> Rows {
    let t = h
        .admin("GET", "/truth?include=engagement", Value::Null)
        .await;
    t["engagement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                (
                    e["date"].as_str().unwrap().to_string(),
                    e["org_id"].as_u64().unwrap().to_string(),
                    e["campaign_id"].as_u64().unwrap().to_string(),
                ),
                (
                    e["impressions"].as_i64().unwrap(),
                    e["clicks"].as_i64().unwrap(),
                    e["engagements"].as_i64().unwrap(),
                    e["account_id"].as_u64().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// The engagement rows of a run; panics on a row taken twice.
fn pulled_rows(batches: &[ev::RecordsPulled]) -> Rows {
    let mut out = Rows::new();
    for r in batches.iter().flat_map(|b| &b.engagement) {
        let key = (
            r.date.clone(),
            r.organization_id.clone(),
            r.campaign_id.clone(),
        );
        let v = (
            r.impressions,
            r.clicks,
            r.engagements,
            r.ad_account_id.clone(),
        );
        assert!(out.insert(key.clone(), v).is_none(), "{key:?} taken twice");
    }
    out
}

/// Campaigns by account, from the truth.
async fn campaigns_by_account(h: &Harness) -> BTreeMap<u64, Vec<u64>> {
    let t = h.admin("GET", "/truth?include=ads", Value::Null).await;
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for c in t["campaigns"].as_array().unwrap() {
        out.entry(c["account_id"].as_u64().unwrap())
            .or_default()
            .push(c["id"].as_u64().unwrap());
    }
    out
}

/// Adds `per_campaign` organizations' engagement on `date` to each of the campaigns given.
async fn add_day(h: &Harness, date: &str, campaigns: &[u64], per_campaign: usize) {
    let truth = truth_rows(h).await;
    let orgs: BTreeSet<String> = truth.keys().map(|(_, o, _)| o.clone()).collect();
    let mut rows = Vec::new();
    for &c in campaigns {
        let free = orgs
            .iter()
            .filter(|o| !truth.contains_key(&(date.to_string(), (*o).clone(), c.to_string())))
            .take(per_campaign);
        for o in free {
            rows.push(json!({"date": date, "org_id": o.parse::<u64>().unwrap(),
                "campaign_id": c, "impressions": 100, "clicks": 3, "engagements": 5}));
        }
    }
    assert_eq!(rows.len(), campaigns.len() * per_campaign);
    h.admin("POST", "/linkedin/engagement", json!({ "rows": rows }))
        .await;
}

fn analytics_calls(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|r| r["path"] == "/rest/adAnalytics")
        .map(|r| r["query"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn truncated_days_are_split_by_account_then_by_campaign_until_every_row_of_the_truth_arrives()
{
    let h = harness().await;
    // A heavy day (one without engagement so far): three campaigns of each account, CAP - 1
    // organizations each. The day is over the cap, so is each account's day, and no campaign's
    // day reaches it.
    let by_account = campaigns_by_account(&h).await;
    assert!(by_account.len() >= 2, "{by_account:?}");
    let heavy: Vec<u64> = by_account
        .values()
        .flat_map(|cs| cs.iter().take(3).copied())
        .collect();
    let truth = truth_rows(&h).await;
    let quiet = (1..=28)
        .map(|d| format!("2025-06-{d:02}"))
        .find(|day| truth.keys().all(|(d, _, _)| d != day))
        .expect("a June day without engagement");
    add_day(&h, &quiet, &heavy, CAP - 1).await;

    let id = h.connect(api::Provider::Linkedin).await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let truth = truth_rows(&h).await;
    let pulled = pulled_rows(&h.batches(&run).await);
    let missing: Vec<_> = truth.keys().filter(|k| !pulled.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} truth rows missing, e.g. {:?}",
        missing.len(),
        truth.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(pulled, truth, "engagement equals the truth");
    // The day was split by account and then by campaign.
    let calls = analytics_calls(&h.requests(SbProvider::Linkedin).await);
    assert!(
        calls.iter().any(|q| q.contains("campaigns=List(")),
        "{calls:#?}"
    );
    let cp = h.checkpoint(id, "linkedin_engagement").await.unwrap();
    assert_eq!(cp.cursor, "2025-06-29");
    h.shutdown().await;
}

#[tokio::test]
async fn a_campaign_day_still_at_the_cap_is_not_marked_complete_and_is_read_again() {
    let h = harness().await;
    let by_account = campaigns_by_account(&h).await;
    let campaign = by_account.values().next().unwrap()[0];
    add_day(&h, "2025-06-25", &[campaign], CAP).await;

    let id = h.connect(api::Provider::Linkedin).await;
    let (_, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    // Nothing finer than a campaign's day exists: that day stays incomplete, the cursor stops
    // the day before it.
    let cp = h.checkpoint(id, "linkedin_engagement").await.unwrap();
    assert_eq!(cp.cursor, "2025-06-24");

    // The next sync reads that day again.
    h.clear_requests().await;
    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let dates: BTreeSet<String> = h
        .batches(&second)
        .await
        .iter()
        .flat_map(|b| b.engagement.iter().map(|r| r.date.clone()))
        .collect();
    assert!(dates.contains("2025-06-25"), "{dates:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn organizations_answered_with_per_id_errors_arrive_at_the_next_sync() {
    let h = harness().await;
    let truth = truth_rows(&h).await;
    let engaged: BTreeSet<u64> = truth.keys().map(|(_, o, _)| o.parse().unwrap()).collect();
    let failing: Vec<u64> = engaged.iter().take(3).copied().collect();
    h.admin(
        "PUT",
        "/providers/linkedin/organization-errors",
        json!({"ids": failing, "status": 500}),
    )
    .await;

    let id = h.connect(api::Provider::Linkedin).await;
    let (first, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let resolved = |batches: &[ev::RecordsPulled]| -> HashSet<u64> {
        batches
            .iter()
            .flat_map(|b| b.organizations.iter().map(|o| o.id.parse().unwrap()))
            .collect()
    };
    let got = resolved(&h.batches(&first).await);
    assert!(failing.iter().all(|f| !got.contains(f)));
    assert_eq!(got.len(), engaged.len() - failing.len());

    // LinkedIn answers them again: the next sync (same day, no new engagement) looks them up.
    h.admin(
        "DELETE",
        "/providers/linkedin/organization-errors",
        Value::Null,
    )
    .await;
    let (second, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let batches = h.batches(&second).await;
    assert_eq!(counts(&batches).get("engagement"), None);
    let got: BTreeSet<u64> = resolved(&batches).into_iter().collect();
    assert_eq!(got, failing.iter().copied().collect::<BTreeSet<u64>>());

    // Nothing is left to retry: a third sync looks no organization up.
    h.clear_requests().await;
    h.sync(id).await;
    let log = h.requests(SbProvider::Linkedin).await;
    assert!(
        log.iter().all(|r| r["path"] != "/rest/organizations"),
        "{log:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_member_without_ad_accounts_fails_the_run_with_a_message_and_no_checkpoint_moves() {
    let h = harness().await;
    h.admin(
        "PUT",
        "/providers/linkedin/ad-accounts",
        json!({"visible": false}),
    )
    .await;
    let id = h.connect(api::Provider::Linkedin).await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::Authorization as i32, "{f:?}");
    assert!(f.message.contains("no ad account"), "{}", f.message);
    assert!(f.message.contains("reconnect"), "{}", f.message);
    assert!(h.checkpoint(id, "linkedin_engagement").await.is_none());
    h.shutdown().await;
}
