//! LinkedIn client against the sandbox: ad accounts, analytics split under the truncation cap,
//! batched organization lookup, failure classification.

mod providers_support;

use std::collections::BTreeSet;

use chrono::{Days, NaiveDate};
use connector::domain::provider::{Provider, ProviderError, Secret, TokenRejection};
use connector::providers::linkedin::{LinkedinClient, LinkedinConfig};
use providers_support::{Env, fast_retry, start};
use sandbox::{SandboxConfig, Sizes};
use serde_json::{Value, json};

fn client(env: &Env, cap: usize) -> LinkedinClient {
    let mut cfg = LinkedinConfig::new(&env.url(Provider::Linkedin));
    // Active at the tests' pinned date (2025-06-30).
    cfg.version = "202506".into();
    cfg.retry = fast_retry();
    cfg.analytics_cap = cap;
    LinkedinClient::new(cfg, env.http.clone())
}

async fn token(env: &Env) -> Secret {
    env.connect(Provider::Linkedin).await.access_token
}

#[tokio::test]
async fn engagement_is_split_below_the_cap_and_complete() {
    const CAP: usize = 25;
    let cfg = SandboxConfig {
        linkedin_analytics_cap: CAP,
        ..SandboxConfig::for_tests()
    };
    let env = start(cfg).await;
    let t = token(&env).await;
    let c = client(&env, CAP);

    let accounts = c.ad_accounts(&t, 0).await.expect("accounts");
    assert_eq!(accounts.next, None);
    let ids: Vec<u64> = accounts.records.iter().map(|a| a.id).collect();
    assert!(
        accounts
            .records
            .iter()
            .all(|a| a.status == "ACTIVE" && !a.currency.is_empty())
    );
    let mut campaign_ids = BTreeSet::new();
    for a in &accounts.records {
        let page = c.campaigns(&t, a.id, 0).await.expect("campaigns");
        assert_eq!(page.next, None);
        assert!(
            page.records
                .iter()
                .all(|x| x.account_id == a.id && !x.name.is_empty())
        );
        campaign_ids.extend(page.records.iter().map(|x| x.id));
    }
    assert_eq!(campaign_ids.len(), 8);

    let anchor = env.sb.anchor();
    let start_day = anchor - Days::new(u64::from(Sizes::TINY.days));
    let end_day = anchor - Days::new(1);
    let mut walker = c.engagement(ids, start_day, end_day);
    let mut got = BTreeSet::new();
    let mut last_end: Option<NaiveDate> = None;
    while let Some(chunk) = walker.next_chunk(&c, &t).await.expect("chunk") {
        assert!(!chunk.truncated);
        assert!(
            chunk.rows.len() < CAP,
            "a kept response never reaches the cap"
        );
        if let Some(prev) = last_end {
            assert_eq!(chunk.start, prev + Days::new(1), "contiguous, in order");
        }
        last_end = Some(chunk.end);
        for r in chunk.rows {
            assert!(r.date >= chunk.start && r.date <= chunk.end);
            got.insert((
                r.date.to_string(),
                r.org_id,
                r.campaign_id,
                r.impressions,
                r.clicks,
                r.engagements,
            ));
        }
    }
    assert_eq!(last_end, Some(end_day));

    let truth = env
        .admin("GET", "/truth?include=engagement", Value::Null)
        .await;
    let want: BTreeSet<_> = truth["engagement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["date"].as_str().unwrap().to_string(),
                e["org_id"].as_u64().unwrap(),
                e["campaign_id"].as_u64().unwrap(),
                e["impressions"].as_u64().unwrap(),
                e["clicks"].as_u64().unwrap(),
                e["engagements"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(want.len() > CAP, "the test data must need splitting");
    assert_eq!(got, want);
}

#[tokio::test]
async fn organizations_are_looked_up_in_batches_of_100() {
    let env = start(SandboxConfig::for_tests()).await;
    let t = token(&env).await;
    let c = client(&env, 15_000);
    let truth = env
        .admin("GET", "/truth?include=matches", Value::Null)
        .await;
    let known: Vec<u64> = truth["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["linkedin_org_id"].as_u64().unwrap())
        .collect();
    let unknown: Vec<u64> = (1..=100).collect();
    let ids: Vec<u64> = known.iter().chain(unknown.iter()).copied().collect();
    env.admin("DELETE", "/requests", Value::Null).await;
    let found = c.organizations(&t, &ids).await.expect("lookup");
    assert_eq!(found.found.len(), known.len());
    assert_eq!(found.missing, unknown);
    let first = truth["matches"][0].clone();
    let org = found
        .found
        .iter()
        .find(|o| o.id == first["linkedin_org_id"].as_u64().unwrap())
        .unwrap();
    assert_eq!(org.localized_name, first["linkedin_name"].as_str().unwrap());
    assert_eq!(org.website.as_deref(), first["linkedin_website"].as_str());
    assert!(org.country.is_some() && org.vanity_name.is_some());
    let calls = env.requests(Provider::Linkedin).await;
    assert_eq!(calls.len(), ids.len().div_ceil(100));
    assert!(calls.iter().all(|r| r["status"] == 200));
}

#[tokio::test]
async fn expired_revoked_and_malformed_are_classified() {
    let env = start(SandboxConfig::for_tests()).await;
    let c = client(&env, 15_000);
    let t = token(&env).await;

    env.admin("POST", "/providers/linkedin/malformed", json!({"count": 1}))
        .await;
    assert!(matches!(
        c.ad_accounts(&t, 0).await,
        Err(ProviderError::BadPayload { .. })
    ));

    env.admin("POST", "/providers/linkedin/tokens/expire", json!({}))
        .await;
    assert!(matches!(
        c.ad_accounts(&t, 0).await,
        Err(ProviderError::Unauthorized {
            reason: TokenRejection::Expired,
            ..
        })
    ));

    let fresh = token(&env).await;
    env.admin("POST", "/providers/linkedin/grants/revoke", json!({}))
        .await;
    match c.organizations(&fresh, &[1, 2]).await {
        Err(ProviderError::Unauthorized {
            reason: TokenRejection::Revoked,
            message,
            ..
        }) => assert!(message.contains("revoked"), "{message}"),
        other => panic!("expected Unauthorized(Revoked), got {other:?}"),
    }
}

#[tokio::test]
async fn a_year_of_engagement_is_split_under_the_real_15000_cap() {
    let cfg = SandboxConfig {
        sizes: Sizes {
            companies: 2_000,
            contacts: 10,
            deals: 10,
            engaged_orgs: 2_000,
            days: 365,
        },
        ..SandboxConfig::for_tests()
    };
    let env = start(cfg).await;
    let t = token(&env).await;
    let mut cfg = LinkedinConfig::new(&env.url(Provider::Linkedin));
    // Active at the tests' pinned date (2025-06-30).
    cfg.version = "202506".into();
    cfg.retry = fast_retry();
    // Quarters hold ~16,000 rows: the real cap must split them.
    cfg.initial_chunk_days = 92;
    let c = LinkedinClient::new(cfg, env.http.clone());
    let ids: Vec<u64> = c
        .ad_accounts(&t, 0)
        .await
        .expect("accounts")
        .records
        .iter()
        .map(|a| a.id)
        .collect();
    let anchor = env.sb.anchor();
    let mut walker = c.engagement(ids, anchor - Days::new(365), anchor - Days::new(1));
    let (mut rows, mut impressions, mut chunks) = (0usize, 0u64, 0usize);
    while let Some(chunk) = walker.next_chunk(&c, &t).await.expect("chunk") {
        assert!(chunk.rows.len() < 15_000 && !chunk.truncated);
        rows += chunk.rows.len();
        impressions += chunk.rows.iter().map(|r| r.impressions).sum::<u64>();
        chunks += 1;
    }
    let truth = env
        .admin("GET", "/truth?include=engagement", Value::Null)
        .await;
    let want = truth["engagement"].as_array().unwrap();
    assert!(want.len() > 50_000, "a realistic volume: {}", want.len());
    assert_eq!(rows, want.len());
    assert_eq!(
        impressions,
        want.iter()
            .map(|e| e["impressions"].as_u64().unwrap())
            .sum::<u64>()
    );
    let calls = env
        .requests(Provider::Linkedin)
        .await
        .iter()
        .filter(|r| r["path"] == "/rest/adAnalytics")
        .count();
    assert!(
        calls > chunks,
        "some ranges were split: {calls} calls, {chunks} chunks"
    );
}
