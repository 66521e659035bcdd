//! Failure classification against the sandbox's fault injection, through the whole service:
//! expired tokens are refreshed silently, a refused grant disconnects, outages and malformed
//! payloads end the run with the right SyncFailed and leave checkpoints alone; refreshes of one
//! connection coalesce across callers and replicas, and rotated refresh tokens are kept.

mod connector_support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use connector::domain::IntegrationId;
use connector::pull::NextScheduledSync;
use connector::vault::{Cause, Vault, VaultError};
use connector_support::{Harness, Options, counts, failed};
use futures::future::BoxFuture;
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{self as ev, envelope::Event};
use sandbox::Provider as SbProvider;
use serde_json::{Value, json};

fn token_calls(log: &[Value]) -> Vec<&Value> {
    log.iter()
        .filter(|r| r["path"] == "/oauth/v1/token")
        .collect()
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_sync_goes_on_with_nothing_user_visible() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.admin("POST", "/providers/hubspot/tokens/expire", json!({}))
        .await;
    h.clear_requests().await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(counts(&h.batches(&run).await)["contacts"] > 0);
    let log = h.requests(SbProvider::Hubspot).await;
    assert_eq!(log[0]["status"], 401, "the expired token was refused once");
    assert_eq!(token_calls(&log).len(), 1, "then refreshed once");
    assert_eq!(log.iter().filter(|r| r["status"] == 401).count(), 1);
    let conn = h.stream(&id.connection_stream()).await;
    assert_eq!(
        conn.len(),
        1,
        "no disconnection: {:?}",
        conn.iter().map(|e| e.event_type()).collect::<Vec<_>>()
    );
    h.shutdown().await;
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry() {
    let h = Harness::with(Options {
        // Every token "expires within the margin": the pull refreshes before its first call.
        tweak: Box::new(|c| c.refresh_margin = std::time::Duration::from_secs(7_200)),
        ..Default::default()
    })
    .await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.clear_requests().await;
    let (_, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let log = h.requests(SbProvider::Hubspot).await;
    assert_eq!(
        log[0]["path"], "/oauth/v1/token",
        "refreshed before any API call"
    );
    assert!(
        log.iter().all(|r| r["status"] != 401),
        "never refused: {log:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_revoked_grant_disconnects_with_the_providers_message_and_stops_syncing() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.admin("POST", "/providers/hubspot/grants/revoke", json!({}))
        .await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::Authorization as i32);
    assert!(f.message.contains("Reconnect HubSpot"), "{}", f.message);
    let disconnected = h
        .wait_event(&id.connection_stream(), "ConnectionDisconnected")
        .await;
    let Some(Event::ConnectionDisconnected(d)) = &disconnected.envelope.event else {
        unreachable!()
    };
    assert_eq!(d.reason, ev::DisconnectReason::AuthorizationRevoked as i32);
    assert_eq!(d.provider_message, "missing or unknown refresh token");
    assert_eq!(
        disconnected.meta().correlation_id,
        events[0].meta().correlation_id
    );

    let conn = h
        .grpc()
        .await
        .get_connection(h.req(api::GetConnectionRequest {
            workspace_id: h.ws(),
            integration_id: id.to_string(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(conn.status, api::ConnectionStatus::Disconnected as i32);
    assert_eq!(
        conn.disconnect_reason,
        api::DisconnectReason::AuthorizationRevoked as i32
    );
    assert_eq!(conn.provider_message, "missing or unknown refresh token");

    // No further syncs until reconnected: the next request never reaches HubSpot.
    h.clear_requests().await;
    let (_, next) = h.sync(id).await;
    assert_eq!(
        failed(&next).unwrap().kind,
        ev::FailureKind::Authorization as i32
    );
    assert!(h.requests(SbProvider::Hubspot).await.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn a_revoked_salesforce_grant_disconnects_as_revoked_though_salesforce_says_expired() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Salesforce).await;
    h.admin("POST", "/providers/salesforce/grants/revoke", json!({}))
        .await;
    let (_, events) = h.sync(id).await;
    assert_eq!(
        failed(&events).unwrap().kind,
        ev::FailureKind::Authorization as i32
    );
    let e = h
        .wait_event(&id.connection_stream(), "ConnectionDisconnected")
        .await;
    let Some(Event::ConnectionDisconnected(d)) = &e.envelope.event else {
        unreachable!()
    };
    assert_eq!(d.reason, ev::DisconnectReason::AuthorizationRevoked as i32);
    assert_eq!(d.provider_message, "expired access/refresh token");
    h.shutdown().await;
}

struct At(DateTime<Utc>);

impl NextScheduledSync for At {
    fn next_scheduled_sync(&self, _: IntegrationId) -> BoxFuture<'_, Option<DateTime<Utc>>> {
        let t = self.0;
        Box::pin(async move { Some(t) })
    }
}

#[tokio::test]
async fn a_provider_outage_fails_the_run_as_provider_outage_with_the_next_scheduled_attempt() {
    let next = DateTime::parse_from_rfc3339("2025-07-01T06:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let h = Harness::with(Options {
        schedule: Arc::new(At(next)),
        ..Default::default()
    })
    .await;
    let id = h.connect(api::Provider::Linkedin).await;
    h.admin("PUT", "/providers/linkedin/outage", json!({"mode": "503"}))
        .await;
    h.clear_requests().await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::ProviderOutage as i32);
    assert_eq!(f.step, ev::SyncStep::LinkedinPull as i32);
    assert!(f.message.contains("next scheduled sync"), "{}", f.message);
    assert_eq!(
        f.next_attempt_at,
        Some(rp_platform::contracts::timestamp(next))
    );
    // A few retries with backoff, not a storm.
    let tries = h.requests(SbProvider::Linkedin).await.len();
    assert_eq!(tries, 3, "the client's attempts, then give up");
    assert!(h.checkpoint(id, "linkedin_engagement").await.is_none());
    // The connection stays connected: an outage is not the user's to fix.
    assert_eq!(h.stream(&id.connection_stream()).await.len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_sunset_linkedin_version_fails_as_api_version_and_never_asks_the_user_to_reconnect() {
    let next = DateTime::parse_from_rfc3339("2026-12-08T06:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let h = Harness::with(Options {
        schedule: Arc::new(At(next)),
        // At the tests' pinned date (2025-06-30) LinkedIn had sunset 202406 (on 2025-06-01): it
        // answers 426 NONEXISTENT_VERSION.
        tweak: Box::new(|c| c.providers.linkedin_api_version = "202406".into()),
        ..Default::default()
    })
    .await;
    let id = h.connect(api::Provider::Linkedin).await;
    h.clear_requests().await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::ApiVersion as i32, "{f:?}");
    assert_eq!(f.step, ev::SyncStep::LinkedinPull as i32);
    assert!(
        f.message.contains("202406") && !f.message.contains("Reconnect"),
        "{}",
        f.message
    );
    assert_eq!(
        f.next_attempt_at,
        Some(rp_platform::contracts::timestamp(next))
    );
    let log = h.requests(SbProvider::Linkedin).await;
    assert_eq!(log.len(), 1, "a refused version is not retried: {log:?}");
    assert_eq!(log[0]["status"], 426);
    assert!(h.checkpoint(id, "linkedin_engagement").await.is_none());
    // Still connected: nothing for the user to do.
    assert_eq!(h.stream(&id.connection_stream()).await.len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_malformed_payload_fails_as_bad_payload_where_it_happened_and_the_checkpoint_stays() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.sync(id).await;
    let before = h.stream(&id.checkpoint_stream("crm_company")).await;
    h.admin(
        "PATCH",
        "/crm/companies/7000000004",
        json!({"name": "Changed"}),
    )
    .await;
    h.admin("POST", "/providers/hubspot/malformed", json!({"count": 1}))
        .await;
    let (run, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::BadPayload as i32);
    assert_eq!(f.step, ev::SyncStep::CrmPull as i32);
    assert!(
        f.location.contains("/crm/v3/objects/companies/search"),
        "{}",
        f.location
    );
    assert!(f.location.contains("page 1"), "{}", f.location);
    assert!(h.batches(&run).await.is_empty(), "nothing half-written");
    let after = h.stream(&id.checkpoint_stream("crm_company")).await;
    assert_eq!(after.len(), before.len(), "the checkpoint did not move");
    // The next sync retries from the same checkpoint and finds the change.
    let (retry, events) = h.sync(id).await;
    assert!(failed(&events).is_none());
    assert_eq!(counts(&h.batches(&retry).await).get("companies"), Some(&1));
    h.shutdown().await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_connection_coalesce_into_one_across_replicas() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    // A second "replica": its own vault (own in-process locks) over the same database.
    let cfg = &h.connector.config;
    let other = Arc::new(Vault::new(
        h.env.pool.clone(),
        cfg.keys.clone(),
        h.connector.clients.clone(),
        cfg.refresh_margin,
    ));
    let mine = h.connector.vault.clone();
    let stale = mine.access(id, &Cause::default()).await.unwrap();
    h.clear_requests().await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let v = if i % 2 == 0 {
            mine.clone()
        } else {
            other.clone()
        };
        let g = stale.generation;
        tasks.push(tokio::spawn(async move {
            v.refresh(id, g, &Cause::default()).await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let a = t.await.unwrap().expect("refreshed");
        assert_eq!(a.generation, stale.generation + 1);
        tokens.insert(a.token.expose().to_string());
    }
    assert_eq!(tokens.len(), 1, "everyone got the same new token");
    assert_ne!(tokens.iter().next().unwrap(), stale.token.expose());
    let log = h.requests(SbProvider::Hubspot).await;
    assert_eq!(token_calls(&log).len(), 1, "one refresh request: {log:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_and_used_next_time() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Linkedin).await;
    h.admin(
        "PUT",
        "/providers/linkedin/refresh-rotation",
        json!({"enabled": true}),
    )
    .await;
    let vault = h.connector.vault.clone();
    let a = vault.access(id, &Cause::default()).await.unwrap();
    let b = vault
        .refresh(id, a.generation, &Cause::default())
        .await
        .expect("first refresh");
    // The old refresh token is dead now; the second refresh only works with the stored new one.
    let c = vault
        .refresh(id, b.generation, &Cause::default())
        .await
        .expect("second refresh");
    assert_eq!(c.generation, a.generation + 2);
    assert!(!matches!(
        vault.refresh(id, c.generation, &Cause::default()).await,
        Err(VaultError::Disconnected { .. })
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn two_syncs_of_one_integration_never_pull_at_the_same_time() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let a = h.request_sync(id).await;
    let b = h.request_sync(id).await;
    let ea = h.wait_run(&a).await;
    let eb = h.wait_run(&b).await;
    let (first, second) = if ea[1].position < eb[1].position {
        (&ea, &eb)
    } else {
        (&eb, &ea)
    };
    let first_end = first.last().unwrap().position;
    let second_start = second
        .iter()
        .find(|e| e.event_type() == "SyncStarted")
        .unwrap()
        .position;
    assert!(
        second_start > first_end,
        "the second pull started after the first ended"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_pull_whose_worker_died_is_taken_over_when_its_lease_runs_out() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    // A job claimed by a worker that died a moment ago: running, lease about to run out.
    let run = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO pull_jobs (sync_run_id, integration_id, workspace_id, correlation_id, \
             causation_id, state, lease_owner, lease_until, attempts, started_at) \
         VALUES ($1, $2, $3, $1, $4, 'running', 'dead-worker', now() + interval '1 second', 1, now())",
    )
    .bind(&run)
    .bind(id.as_uuid())
    .bind(h.workspace)
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&h.env.pool)
    .await
    .unwrap();
    let events = h.wait_run(&run).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        connector::store::job_state(&h.env.pool, &run)
            .await
            .unwrap()
            .as_deref(),
        Some("done")
    );
    let owner: Option<String> =
        sqlx::query_scalar("SELECT lease_owner FROM pull_jobs WHERE sync_run_id = $1")
            .bind(&run)
            .fetch_one(&h.env.pool)
            .await
            .unwrap();
    assert_eq!(owner, None, "finished by the worker that took it over");
    assert!(counts(&h.batches(&run).await)["contacts"] > 0);
    h.shutdown().await;
}

#[tokio::test]
async fn under_a_tight_hubspot_rate_limit_the_sync_waits_instead_of_collecting_429s() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.admin(
        "PUT",
        "/providers/hubspot/rate-limit",
        json!({"max": 2, "interval_ms": 400, "daily": 100000}),
    )
    .await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert!(counts(&h.batches(&run).await)["contacts"] > 0);
    let status = h.admin("GET", "/providers/hubspot", Value::Null).await;
    assert_eq!(status["rejected"], 0, "no 429s: {status}");
    assert_eq!(status["peak_window"], 2, "the budget was used: {status}");
    h.shutdown().await;
}

/// HubSpot's search endpoints have a limit of their own (about 5 per second per account) and
/// their answers carry no rate-limit headers. Before, the limiter took a search answer without
/// headers for "no limit" and sent the incremental sync's search pages unpaced: 429s.
#[tokio::test]
async fn incremental_syncs_pace_searches_on_their_own_budget() {
    let h = Harness::with(Options {
        sandbox: sandbox::SandboxConfig {
            sizes: sandbox::Sizes {
                contacts: 800,
                ..sandbox::SandboxConfig::for_tests().sizes
            },
            ..sandbox::SandboxConfig::for_tests()
        },
        ..Default::default()
    })
    .await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.sync(id).await;
    // Enough changed contacts for several search pages (100 a page).
    let truth = h.admin("GET", "/truth?include=", Value::Null).await;
    let contacts = truth["counts"]["contacts"].as_u64().unwrap_or(0).min(700);
    assert!(contacts >= 500, "{truth}");
    for i in 0..contacts {
        h.admin(
            "PATCH",
            &format!("/crm/contacts/{}", 100_001 + i),
            json!({"title": format!("Edited {i}")}),
        )
        .await;
    }
    h.admin(
        "PUT",
        "/providers/hubspot/rate-limit",
        json!({"max": 100, "interval_ms": 10000, "daily": 100000,
               "search_max": 5, "search_interval_ms": 1000}),
    )
    .await;
    h.clear_requests().await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    assert_eq!(
        counts(&h.batches(&run).await)["contacts"],
        contacts as usize
    );
    let status = h.admin("GET", "/providers/hubspot", Value::Null).await;
    assert_eq!(status["rejected"], 0, "no 429s: {status}");
    let searches = h
        .requests(SbProvider::Hubspot)
        .await
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/search")))
        .count();
    assert!(searches >= 7, "several search pages: {searches}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_used_up_daily_limit_fails_the_run_as_rate_limited() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Salesforce).await;
    h.admin(
        "PUT",
        "/providers/salesforce/rate-limit",
        json!({"daily": 1}),
    )
    .await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::RateLimited as i32);
    assert!(f.message.contains("limit"), "{}", f.message);
    assert!(h.checkpoint(id, "crm_contact").await.is_none());
    h.shutdown().await;
}
