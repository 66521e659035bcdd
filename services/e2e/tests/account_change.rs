//! Reconnecting another provider account (issue 12, item 4).
//!
//! A user disconnects HubSpot (or Salesforce) and reconnects it, signing in to another portal
//! (org) at the provider's consent page. What they expect: the new account is pulled in full,
//! the old account's records leave the dashboard at the next sync, and the bell says the account
//! changed. Before the fix, the new account synced incrementally from the old account's
//! checkpoints, so none of its records (all older than the old account's last sync) arrived,
//! and the old account's records stayed on the dashboard.
//!
//! The oracle needs no expected numbers: a second, fresh installation that connects the new
//! account from the start must show exactly the same dashboard (identical data gives identical
//! numbers), and the old account's dashboard must differ from it (the sandbox's other account
//! has other record ids and deals worth twice as much), so the comparison can fail.
//!
//! LinkedIn: another member's authorization resets the engagement checkpoint (the whole
//! lookback window is read again) and says so in the bell; the sandbox's members see the same
//! ad accounts, so the dashboard stays equal to a fresh installation's.

use e2e::{SandboxData, Sizes, System, WAIT};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{ObjectType, envelope::Event};
use rp_platform::testing::eventually;
use serde_json::json;
use std::collections::BTreeSet;

const PLAN: &str = "growth";

const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: false,
};

fn slug(p: api::Provider) -> &'static str {
    match p {
        api::Provider::Linkedin => "linkedin",
        api::Provider::Hubspot => "hubspot",
        api::Provider::Salesforce => "salesforce",
        api::Provider::Unspecified => "?",
    }
}

/// Every number of the dashboard, for every window of the "growth" plan (RP_PLANS' default)
/// and every model.
async fn numbers(s: &System) -> Vec<api::Dashboard> {
    s.dashboards(&[30, 90, 180]).await
}

/// The CRM ids the matcher matched.
async fn matched_crm_ids(s: &System) -> BTreeSet<String> {
    s.matched_pairs()
        .await
        .into_iter()
        .map(|(_, crm)| crm)
        .collect()
}

/// The sandbox's CRM company ids (of the provider's kind) in its current account.
async fn crm_company_ids(s: &System, p: api::Provider) -> BTreeSet<String> {
    let t = s
        .sandbox_admin(
            reqwest::Method::GET,
            "/truth?include=companies",
            json!(null),
        )
        .await;
    let key = if p == api::Provider::Salesforce {
        "salesforce_id"
    } else {
        "hubspot_id"
    };
    t["companies"]
        .as_array()
        .unwrap_or_else(|| panic!("the sandbox's truth lists companies: {t}"))
        .iter()
        .filter_map(|c| c[key].as_str().map(String::from))
        .collect()
}

/// Switches the sandbox's account of `p` (what the next consent page signs in to).
async fn use_account(s: &System, p: api::Provider, account: u64) {
    let v = s
        .sandbox_admin(
            reqwest::Method::PUT,
            &format!("/providers/{}/account", slug(p)),
            json!({ "account": account }),
        )
        .await;
    assert_eq!(v["account"], json!(account), "{v}");
}

/// Disconnect, then Reconnect through the OAuth flow; waits until Connected again.
async fn disconnect_and_reconnect(
    s: &System,
    integration_id: &str,
    account: u64,
    p: api::Provider,
) {
    s.connections
        .clone()
        .disconnect(s.req(api::DisconnectRequest {
            workspace_id: s.workspace_id.clone(),
            integration_id: integration_id.into(),
        }))
        .await
        .unwrap_or_else(|e| panic!("Disconnect: {e}"));
    use_account(s, p, account).await;
    let again = s
        .connections
        .clone()
        .reconnect(s.req(api::ReconnectRequest {
            workspace_id: s.workspace_id.clone(),
            integration_id: integration_id.into(),
        }))
        .await
        .unwrap_or_else(|e| panic!("Reconnect: {e}"))
        .into_inner();
    s.complete_oauth(&again.authorize_url).await;
    s.health_of(integration_id, |h| {
        h.status == api::ConnectionStatus::Connected as i32
    })
    .await;
}

/// The records of `object` that `run` pulled (its PullCompleted counts).
async fn pulled(s: &System, run: &str, object: ObjectType) -> u64 {
    s.events()
        .await
        .iter()
        .filter_map(|e| match e.event() {
            Some(Event::PullCompleted(p)) if p.sync_run_id == run => Some(
                p.counts
                    .iter()
                    .filter(|c| c.object_type == object as i32)
                    .map(|c| c.records)
                    .sum::<u64>(),
            ),
            _ => None,
        })
        .sum()
}

/// The bell's notification about `integration_id` whose title says the account changed.
async fn account_notification(s: &System, integration_id: &str) -> api::Notification {
    eventually(WAIT, "the account change's notification", || async {
        s.notifications_list()
            .await
            .into_iter()
            .find(|n| n.integration_id == integration_id && n.title.contains("another account"))
    })
    .await
}

/// A fresh installation whose provider account is `account` from the start: LinkedIn and `crm`
/// connected and synced. Its numbers, and the system (to stop).
async fn fresh_numbers(
    crm: api::Provider,
    account: u64,
    which: api::Provider,
) -> Vec<api::Dashboard> {
    let s = System::start(PLAN, &SANDBOX).await;
    use_account(&s, which, account).await;
    for p in [api::Provider::Linkedin, crm] {
        let id = s.connect(p).await;
        s.sync_to_completion(&id).await;
    }
    let n = numbers(&s).await;
    s.stop().await;
    n
}

async fn crm_account_changes(crm: api::Provider) {
    let s = System::start(PLAN, &SANDBOX).await;
    let linkedin = s.connect(api::Provider::Linkedin).await;
    s.sync_to_completion(&linkedin).await;
    let id = s.connect(crm).await;
    s.sync_to_completion(&id).await;
    let before = numbers(&s).await;
    let old_ids = crm_company_ids(&s, crm).await;
    assert!(
        !matched_crm_ids(&s).await.is_empty(),
        "the first account has matches"
    );

    disconnect_and_reconnect(&s, &id, 1, crm).await;
    let new_ids = crm_company_ids(&s, crm).await;
    assert!(
        old_ids.is_disjoint(&new_ids),
        "the other account has other ids"
    );
    let h = s.health_of(&id, |_| true).await;
    assert_eq!(h.status, api::ConnectionStatus::Connected as i32, "{h:?}");

    let run = s.sync_to_completion(&id).await;
    // The new account in full: every one of its companies, though all are older than the
    // previous account's last sync.
    assert_eq!(
        pulled(&s, &run.sync_run_id, ObjectType::CrmCompany).await,
        new_ids.len() as u64,
        "the new account's companies are pulled in full"
    );
    let matched = matched_crm_ids(&s).await;
    assert!(
        !matched.is_empty(),
        "the new account's companies are matched"
    );
    assert!(
        matched.is_subset(&new_ids),
        "only the new account's companies are matched; left from the old one: {:?}",
        matched.difference(&new_ids).collect::<Vec<_>>()
    );
    let after = numbers(&s).await;
    let n = account_notification(&s, &id).await;
    assert!(
        n.body.contains("pulls this account in full") && n.link.ends_with("/workspace/connections"),
        "{n:?}"
    );
    s.stop().await;

    let fresh = fresh_numbers(crm, 1, crm).await;
    assert_ne!(before, fresh, "the two accounts' dashboards differ");
    assert!(
        after == fresh,
        "after the account change the dashboard equals a fresh installation's on the new account\n\
         after: {after:#?}\nfresh: {fresh:#?}"
    );
}

#[tokio::test]
async fn a_hubspot_reconnected_to_another_portal_is_pulled_in_full_and_the_old_portal_leaves() {
    crm_account_changes(api::Provider::Hubspot).await;
}

#[tokio::test]
async fn a_salesforce_reconnected_to_another_org_is_pulled_in_full_and_the_old_org_leaves() {
    crm_account_changes(api::Provider::Salesforce).await;
}

#[tokio::test]
async fn linkedin_reconnected_by_another_member_reads_the_whole_window_again() {
    let s = System::start(PLAN, &SANDBOX).await;
    let linkedin = s.connect(api::Provider::Linkedin).await;
    let first = s.sync_to_completion(&linkedin).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.sync_to_completion(&hubspot).await;
    let full = pulled(&s, &first.sync_run_id, ObjectType::LinkedinEngagement).await;
    assert!(full > 0, "the first sync pulls engagement");

    // The same member again: incremental, only the days since the last complete one.
    disconnect_and_reconnect(&s, &linkedin, 0, api::Provider::Linkedin).await;
    let same = s.sync_to_completion(&linkedin).await;
    let incremental = pulled(&s, &same.sync_run_id, ObjectType::LinkedinEngagement).await;
    assert!(incremental < full, "{incremental} < {full}");

    // Another member: the checkpoint is reset, the whole lookback window is read again.
    disconnect_and_reconnect(&s, &linkedin, 1, api::Provider::Linkedin).await;
    let other = s.sync_to_completion(&linkedin).await;
    assert_eq!(
        pulled(&s, &other.sync_run_id, ObjectType::LinkedinEngagement).await,
        full,
        "another member's engagement is pulled in full"
    );
    account_notification(&s, &linkedin).await;
    let after = numbers(&s).await;
    s.stop().await;
    let fresh = fresh_numbers(api::Provider::Hubspot, 1, api::Provider::Linkedin).await;
    assert!(after == fresh, "after: {after:#?}\nfresh: {fresh:#?}");
}
