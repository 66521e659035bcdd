//! Salesforce client against the sandbox: SOQL signposts, nextRecordsUrl paging, limits,
//! failure classification.

mod providers_support;

use std::collections::HashSet;

use chrono::Timelike;
use connector::domain::provider::{OutageCause, Provider, ProviderError, Secret, TokenRejection};
use connector::providers::salesforce::{
    Account, Opportunity, SalesforceClient, SalesforceConfig, SalesforceObject,
};
use providers_support::{Env, fast_retry, start};
use sandbox::{SandboxConfig, Sizes};
use serde_json::{Value, json};

async fn connect(env: &Env) -> (SalesforceClient, Secret) {
    let tokens = env.connect(Provider::Salesforce).await;
    let instance = tokens.instance_url.clone().expect("instance_url");
    let mut cfg = SalesforceConfig::new(&instance);
    cfg.retry = fast_retry();
    (
        SalesforceClient::new(cfg, env.http.clone()),
        tokens.access_token,
    )
}

async fn all_since<T: SalesforceObject>(
    c: &SalesforceClient,
    t: &Secret,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<T> {
    let mut page = c.modified_since::<T>(t, since).await.expect("query");
    let mut out = std::mem::take(&mut page.records);
    while let Some(next) = page.next.take() {
        page = c.query_more::<T>(t, &next).await.expect("query more");
        out.append(&mut page.records);
    }
    out
}

#[tokio::test]
async fn a_full_sync_pages_through_every_batch_in_modstamp_order() {
    let cfg = SandboxConfig {
        salesforce_batch_size: 16,
        ..SandboxConfig::for_tests()
    };
    let env = start(cfg).await;
    let (c, t) = connect(&env).await;
    let accounts: Vec<Account> = all_since(&c, &t, None).await;
    assert_eq!(accounts.len(), Sizes::TINY.companies);
    let ids: HashSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), accounts.len());
    assert!(
        accounts
            .iter()
            .all(|a| a.id.len() == 18 && a.id.starts_with("001"))
    );
    let keys: Vec<_> = accounts
        .iter()
        .map(|a| (a.system_modstamp.expect("modstamp"), a.id.clone()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "SystemModstamp, Id order"
    );

    let opps: Vec<Opportunity> = all_since(&c, &t, None).await;
    assert_eq!(opps.len(), Sizes::TINY.deals);
    let truth = env.admin("GET", "/truth?include=deals", Value::Null).await;
    for o in &opps {
        let want = truth["deals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["salesforce_id"] == o.id.as_str())
            .expect("in truth");
        let amount = |s: Option<&str>| s.map(|a| a.parse::<f64>().expect("decimal"));
        assert_eq!(amount(o.amount.as_deref()), amount(want["amount"].as_str()));
        assert_eq!(
            o.account_id.as_deref(),
            want["salesforce_account_id"].as_str()
        );
        assert_eq!(o.is_won, want["outcome"] == "won");
        assert_eq!(o.is_closed, want["outcome"] != "open");
        assert_eq!(o.currency_iso_code.as_deref(), want["currency"].as_str());
    }
    let stages = c.opportunity_stages(&t).await.expect("stages");
    assert!(stages.iter().any(|s| s.is_closed && s.is_won));
    assert!(stages.iter().any(|s| s.is_closed && !s.is_won));
    assert!(stages.iter().any(|s| !s.is_closed));
}

#[tokio::test]
async fn the_signpost_query_returns_what_changed_since() {
    let env = start(SandboxConfig::for_tests()).await;
    let (c, t) = connect(&env).await;
    // SystemModstamp has whole seconds: a record made in this second shows its start.
    let since = env.clock().await.with_nanosecond(0).unwrap();
    let opp = env
        .admin(
            "POST",
            "/crm/deals",
            json!({"name": "Upsell", "amount": "12500.50", "currency": "EUR", "company_id": "7000000005", "stage": "closedwon"}),
        )
        .await;
    let changed: Vec<Opportunity> = all_since(&c, &t, Some(since)).await;
    assert_eq!(changed.len(), 1);
    let o = &changed[0];
    assert_eq!(o.id, opp["salesforce_id"].as_str().unwrap());
    assert_eq!(o.amount.as_deref(), Some("12500.5"));
    assert_eq!(o.currency_iso_code.as_deref(), Some("EUR"));
    assert!(o.is_won && o.is_closed);
    assert!(o.system_modstamp.unwrap() >= since);
    let accounts: Vec<Account> = all_since(&c, &t, Some(since)).await;
    assert!(accounts.is_empty());
    let log = env.requests(Provider::Salesforce).await;
    let q = log
        .iter()
        .filter_map(|r| r["query"].as_str())
        .find(|q| q.contains("Opportunity"))
        .expect("query logged");
    assert!(q.contains("SystemModstamp"), "{q}");
}

#[tokio::test]
async fn limits_expiry_outage_and_garbage_are_classified() {
    let cfg = SandboxConfig {
        salesforce_daily_limit: Some(4),
        ..SandboxConfig::for_tests()
    };
    let env = start(cfg).await;
    let (c, t) = connect(&env).await;

    env.admin(
        "POST",
        "/providers/salesforce/malformed",
        json!({"count": 1}),
    )
    .await;
    assert!(matches!(
        c.modified_since::<Account>(&t, None).await,
        Err(ProviderError::BadPayload { .. })
    ));
    c.modified_since::<Account>(&t, None)
        .await
        .expect("healthy");

    env.admin(
        "PUT",
        "/providers/salesforce/outage",
        json!({"mode": "503"}),
    )
    .await;
    assert!(matches!(
        c.modified_since::<Account>(&t, None).await,
        Err(ProviderError::Outage {
            cause: OutageCause::Status(503),
            ..
        })
    ));
    env.admin("DELETE", "/providers/salesforce/outage", Value::Null)
        .await;

    // Two more calls use the daily budget of 4; the next is over it.
    c.modified_since::<Account>(&t, None).await.expect("3rd");
    c.modified_since::<Account>(&t, None).await.expect("4th");
    match c.modified_since::<Account>(&t, None).await {
        Err(ProviderError::RateLimited { message, .. }) => {
            assert!(message.contains("api-usage=4/4"), "{message}")
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }

    env.admin(
        "PUT",
        "/providers/salesforce/rate-limit",
        json!({"daily": 1000}),
    )
    .await;
    env.admin("POST", "/tokens/expire", json!({"provider": "salesforce"}))
        .await;
    match c.modified_since::<Account>(&t, None).await {
        Err(ProviderError::Unauthorized {
            reason: TokenRejection::Invalid,
            message,
            ..
        }) => assert_eq!(message, "Session expired or invalid"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}
