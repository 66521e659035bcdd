//! HubSpot client against the sandbox: paging, incremental search, the 10k split, the rate
//! limiter, and failure classification.

mod providers_support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector::domain::provider::{OutageCause, Provider, ProviderError, Secret, TokenRejection};
use connector::providers::http_client;
use connector::providers::hubspot::{
    Company, Contact, Deal, HubspotClient, HubspotConfig, HubspotObject, StageOutcome,
};
use providers_support::{Env, fast_retry, start};
use sandbox::{RateLimit, SandboxConfig, Sizes};
use serde_json::{Value, json};

fn client(env: &Env, tweak: impl FnOnce(&mut HubspotConfig)) -> HubspotClient {
    let mut cfg = HubspotConfig::new(&env.url(Provider::Hubspot));
    cfg.retry = fast_retry();
    tweak(&mut cfg);
    HubspotClient::new(cfg, env.http.clone())
}

async fn token(env: &Env) -> Secret {
    env.connect(Provider::Hubspot).await.access_token
}

async fn list_all<T: HubspotObject>(c: &HubspotClient, t: &Secret) -> Vec<T> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.list_page::<T>(t, after.as_deref()).await.expect("page");
        out.extend(page.records);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

async fn search_all<T: HubspotObject>(
    c: &HubspotClient,
    t: &Secret,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<T> {
    let mut walker = c.modified_between::<T>(since, until);
    let mut out = Vec::new();
    while let Some(page) = walker.next_page(c, t).await.expect("search page") {
        out.extend(page);
    }
    out
}

fn no_limits() -> SandboxConfig {
    SandboxConfig {
        hubspot_rate_limit: None,
        ..SandboxConfig::for_tests()
    }
}

#[tokio::test]
async fn listing_pages_through_every_record_with_what_downstream_needs() {
    let env = start(no_limits()).await;
    let t = token(&env).await;
    let c = client(&env, |c| c.page_size = 7);
    let companies: Vec<Company> = list_all(&c, &t).await;
    assert_eq!(companies.len(), Sizes::TINY.companies);
    let ids: HashSet<&str> = companies.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), companies.len(), "no duplicates");
    assert!(
        companies
            .iter()
            .any(|c| c.domain.is_some() && c.website.is_some())
    );
    assert!(
        companies
            .iter()
            .all(|c| c.name.is_some() && c.country.is_some())
    );

    let contacts: Vec<Contact> = list_all(&c, &t).await;
    assert_eq!(contacts.len(), Sizes::TINY.contacts);
    assert!(
        contacts
            .iter()
            .any(|c| c.company_id.is_some() && c.email.is_some())
    );

    let deals: Vec<Deal> = list_all(&c, &t).await;
    assert_eq!(deals.len(), Sizes::TINY.deals);
    let truth = env.admin("GET", "/truth?include=deals", Value::Null).await;
    for d in &deals {
        let want = truth["deals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["hubspot_id"] == d.id.as_str())
            .expect("deal in truth");
        assert_eq!(d.amount.as_deref(), want["amount"].as_str());
        assert_eq!(d.currency.as_deref(), want["currency"].as_str());
        assert_eq!(d.stage_id.as_deref(), want["stage_id"].as_str());
        assert_eq!(d.pipeline_id.as_deref(), want["pipeline_id"].as_str());
        let company: Vec<String> = want["hubspot_company_id"]
            .as_str()
            .map(|s| vec![s.to_string()])
            .unwrap_or_default();
        assert_eq!(d.company_ids, company);
        assert!(d.created_at.is_some());
    }

    let pipelines = c.deal_pipelines(&t).await.expect("pipelines");
    let outcomes: HashSet<_> = pipelines
        .iter()
        .flat_map(|p| p.stages.iter().map(|s| s.outcome))
        .collect();
    assert_eq!(
        outcomes,
        HashSet::from([StageOutcome::Open, StageOutcome::Won, StageOutcome::Lost])
    );
}

#[tokio::test]
async fn incremental_search_finds_exactly_what_changed_with_associations() {
    let env = start(no_limits()).await;
    let t = token(&env).await;
    let c = client(&env, |_| {});
    let since = env.clock().await;
    env.admin(
        "PATCH",
        "/crm/companies/7000000003",
        json!({"name": "Renamed Co"}),
    )
    .await;
    let deal = env
        .admin(
            "POST",
            "/crm/deals",
            json!({"name": "New", "amount": "999.90", "currency": "GBP", "company_id": "7000000002", "stage": "closedwon"}),
        )
        .await;
    let until = env.clock().await + chrono::Duration::milliseconds(1);

    let companies: Vec<Company> = search_all(&c, &t, since, until).await;
    assert_eq!(companies.len(), 1);
    assert_eq!(companies[0].name.as_deref(), Some("Renamed Co"));
    let deals: Vec<Deal> = search_all(&c, &t, since, until).await;
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].id, deal["hubspot_id"].as_str().unwrap());
    assert_eq!(deals[0].amount.as_deref(), Some("999.90"));
    assert_eq!(deals[0].company_ids, vec!["7000000002".to_string()]);
    let contacts: Vec<Contact> = search_all(&c, &t, since, until).await;
    assert!(contacts.is_empty());
}

#[tokio::test]
async fn a_search_over_the_paging_cap_never_pages_past_it() {
    let cfg = SandboxConfig {
        hubspot_search_cap: 40,
        ..no_limits()
    };
    let env = start(cfg).await;
    let t = token(&env).await;
    let c = client(&env, |c| c.page_size = 15);
    let epoch = DateTime::<Utc>::from_timestamp_millis(0).unwrap();
    let until = env.clock().await + chrono::Duration::milliseconds(1);
    let contacts: Vec<Contact> = search_all(&c, &t, epoch, until).await;
    assert_eq!(contacts.len(), Sizes::TINY.contacts, "every contact, once");
    let ids: HashSet<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), contacts.len());
    assert!(
        contacts
            .windows(2)
            .all(|w| w[0].modified_at <= w[1].modified_at),
        "oldest first"
    );
    let log = env.requests(Provider::Hubspot).await;
    assert!(
        log.iter()
            .all(|r| r["status"] == 200 || r["path"] != "/crm/v3/objects/contacts/search"),
        "never paged past the cap"
    );
    let searches = log
        .iter()
        .filter(|r| r["path"] == "/crm/v3/objects/contacts/search")
        .count();
    assert!(
        searches > Sizes::TINY.contacts / 15,
        "one query per page, each from its start: {searches}"
    );
}

#[tokio::test]
async fn with_limits_on_the_client_uses_the_budget_and_never_gets_429() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: Some(RateLimit {
            max: 10,
            interval_ms: 1000,
            daily: 100_000,
        }),
        ..SandboxConfig::for_tests()
    };
    let env = start(cfg).await;
    let t = token(&env).await;
    let c = client(&env, |c| c.page_size = 5);
    let contacts: Vec<Contact> = list_all(&c, &t).await;
    assert_eq!(contacts.len(), Sizes::TINY.contacts);
    let status = env.admin("GET", "/providers/hubspot", Value::Null).await;
    assert_eq!(status["rejected"], 0, "no 429s: {status}");
    assert!(
        status["peak_window"].as_u64().unwrap() >= 9,
        "at least 90% of the window used: {status}"
    );
    assert!(status["api_requests"].as_u64().unwrap() >= 30);
}

#[tokio::test]
async fn an_expired_token_is_unauthorized_expired() {
    let env = start(no_limits()).await;
    let t = token(&env).await;
    env.admin("POST", "/providers/hubspot/tokens/expire", json!({}))
        .await;
    match client(&env, |_| {}).list_page::<Company>(&t, None).await {
        Err(ProviderError::Unauthorized {
            reason: TokenRejection::Expired,
            message,
            ..
        }) => assert!(message.contains("expired"), "{message}"),
        other => panic!("expected Unauthorized(Expired), got {other:?}"),
    }
}

#[tokio::test]
async fn outages_malformed_json_and_hangs_are_classified() {
    let env = start(no_limits()).await;
    let t = token(&env).await;
    let c = client(&env, |_| {});

    env.admin("POST", "/providers/hubspot/malformed", json!({"count": 1}))
        .await;
    match c.list_page::<Company>(&t, None).await {
        Err(ProviderError::BadPayload { endpoint, .. }) => {
            assert!(endpoint.contains("/crm/v3/objects/companies"), "{endpoint}")
        }
        other => panic!("expected BadPayload, got {other:?}"),
    }
    c.list_page::<Company>(&t, None)
        .await
        .expect("healthy again");

    env.admin("PUT", "/providers/hubspot/outage", json!({"mode": "503"}))
        .await;
    match c.list_page::<Company>(&t, None).await {
        Err(ProviderError::Outage {
            cause: OutageCause::Status(503),
            attempts: 3,
            ..
        }) => {}
        other => panic!("expected Outage(503), got {other:?}"),
    }

    env.admin(
        "PUT",
        "/providers/hubspot/outage",
        json!({"mode": "timeout"}),
    )
    .await;
    let mut cfg = HubspotConfig::new(&env.url(Provider::Hubspot));
    cfg.retry = fast_retry();
    let impatient = HubspotClient::new(cfg, http_client(Duration::from_millis(200)).unwrap());
    match impatient.list_page::<Company>(&t, None).await {
        Err(ProviderError::Outage {
            cause: OutageCause::Timeout,
            ..
        }) => {}
        other => panic!("expected Outage(timeout), got {other:?}"),
    }
}

#[tokio::test]
async fn a_walk_survives_an_expired_token_by_refreshing_once() {
    let env = start(no_limits()).await;
    let tokens = env.connect(Provider::Hubspot).await;
    let oauth = env.oauth(Provider::Hubspot);
    let c = client(&env, |c| c.page_size = 20);
    let epoch = DateTime::<Utc>::from_timestamp_millis(0).unwrap();
    let until = env.clock().await + chrono::Duration::milliseconds(1);
    let mut walker = c.modified_between::<Contact>(epoch, until);
    let mut access = tokens.access_token.clone();
    let mut seen = Vec::new();
    let mut refreshed = 0;
    loop {
        if seen.len() >= 40 && refreshed == 0 {
            env.admin("POST", "/tokens/expire", json!({})).await;
        }
        match walker.next_page(&c, &access).await {
            Ok(Some(page)) => seen.extend(page.into_iter().map(|c| c.id)),
            Ok(None) => break,
            Err(ProviderError::Unauthorized { .. }) if refreshed == 0 => {
                refreshed += 1;
                let rt = tokens.refresh_token.as_ref().expect("refresh token");
                access = oauth.refresh(rt).await.expect("refresh").access_token;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refreshed, 1);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        seen.len(),
        Sizes::TINY.contacts,
        "nothing skipped or repeated"
    );
    assert_eq!(unique.len(), seen.len());
}

/// More records in one millisecond than a page holds (an import, a bulk edit): the walk reads that
/// millisecond by id, and still skips nothing, even with the records moving under it.
#[tokio::test]
async fn a_millisecond_holding_more_than_a_page_is_read_by_id() {
    let env = start(no_limits()).await;
    let t = token(&env).await;
    let c = client(&env, |c| c.page_size = 5);
    let epoch = DateTime::<Utc>::from_timestamp_millis(0).unwrap();
    // The walk reaches past now, so the records edited during it are inside it, in one ms.
    let until = env.clock().await + chrono::Duration::days(1);
    env.admin(
        "PUT",
        "/providers/hubspot/edit-during-search",
        json!({"object": "contacts", "after_page": 1, "count": 12}),
    )
    .await;
    let contacts: Vec<Contact> = search_all(&c, &t, epoch, until).await;
    let ids: HashSet<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        Sizes::TINY.contacts,
        "every contact, none skipped"
    );
    let log = env.requests(Provider::Hubspot).await;
    assert!(
        log.iter()
            .any(|r| r["path"] == "/crm/v3/objects/contacts/search"
                && r["body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("hs_object_id")),
        "the crowded millisecond was read by id"
    );
}
