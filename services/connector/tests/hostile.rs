//! Bounds on what providers send (issue 15.10), each against a hostile mode of the sandbox
//! (`PUT /admin/providers/{p}/hostile`): a body too big to hold, a paging cursor that repeats,
//! paging that never ends, and a Salesforce `instance_url` that is not Salesforce. And the OAuth
//! callback per client address (issue 15.2): one address cannot make it work without bound.

mod connector_support;

use connector_support::{Harness, Options, failed};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1 as ev;
use serde_json::json;

const MIB: u64 = 1024 * 1024;

async fn harness(max_response_bytes: usize, max_pages: u64) -> Harness {
    Harness::with(Options {
        tweak: Box::new(move |c| {
            c.providers.max_response_bytes = max_response_bytes;
            c.providers.max_pages = max_pages;
        }),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_huge_body_fails_the_run_as_bad_data_at_the_cap_without_being_read_whole() {
    let h = harness(MIB as usize, 1_000).await;
    let id = h.connect(api::Provider::Hubspot).await;
    let total = 256 * MIB;
    h.admin(
        "PUT",
        "/providers/hubspot/hostile",
        json!({"mode": "huge_body", "bytes": total}),
    )
    .await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails");
    assert_eq!(f.kind, ev::FailureKind::BadPayload as i32, "{f:?}");
    assert!(
        f.message.contains("1048576-byte cap"),
        "says the answer passed the cap: {}",
        f.message
    );
    assert!(
        f.location.contains("/crm/v3/objects/companies"),
        "names the endpoint: {}",
        f.location
    );
    let status = h.admin("GET", "/providers/hubspot", json!(null)).await;
    let served = status["hostile"]["bytes_served"].as_u64().unwrap();
    assert!(
        served < total / 4,
        "the client stopped reading near its cap: {served} of {total} bytes were sent"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_repeated_paging_cursor_fails_the_run_as_bad_data_naming_the_endpoint() {
    let h = harness(connector::providers::DEFAULT_MAX_RESPONSE_BYTES, 1_000).await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.admin(
        "PUT",
        "/providers/hubspot/hostile",
        json!({"mode": "repeat_cursor"}),
    )
    .await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails instead of paging for ever");
    assert_eq!(f.kind, ev::FailureKind::BadPayload as i32, "{f:?}");
    assert!(f.message.contains("hostile-1"), "{}", f.message);
    assert!(f.message.contains("again"), "{}", f.message);
    assert!(
        f.location.contains("/crm/v3/objects/companies"),
        "{}",
        f.location
    );
    h.shutdown().await;
}

#[tokio::test]
async fn endless_pages_fail_the_run_as_bad_data_at_the_page_cap() {
    let h = harness(connector::providers::DEFAULT_MAX_RESPONSE_BYTES, 12).await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.admin(
        "PUT",
        "/providers/hubspot/hostile",
        json!({"mode": "endless_pages"}),
    )
    .await;
    h.clear_requests().await;
    let (_, events) = h.sync(id).await;
    let f = failed(&events).expect("the run fails instead of paging for ever");
    assert_eq!(f.kind, ev::FailureKind::BadPayload as i32, "{f:?}");
    assert!(f.message.contains("more than 12 pages"), "{}", f.message);
    assert!(
        f.location.contains("/crm/v3/objects/companies"),
        "{}",
        f.location
    );
    let pages = h
        .requests(sandbox::Provider::Hubspot)
        .await
        .into_iter()
        .filter(|r| r["path"].as_str() == Some("/crm/v3/objects/companies"))
        .count();
    assert_eq!(pages, 12, "stopped at the cap");
    h.shutdown().await;
}

#[tokio::test]
async fn a_salesforce_instance_url_elsewhere_is_refused_at_connect() {
    for hostile in [
        "https://evil.example.com",
        "http://na1.salesforce.com",
        "https://salesforce.com.evil.example",
    ] {
        let h = Harness::start().await;
        h.admin(
            "PUT",
            "/providers/salesforce/hostile",
            json!({"instance_url": hostile}),
        )
        .await;
        let started = h
            .grpc()
            .await
            .start_connect(h.req(api::StartConnectRequest {
                workspace_id: h.ws(),
                provider: api::Provider::Salesforce as i32,
            }))
            .await
            .expect("StartConnect")
            .into_inner();
        let cb = h.follow_authorize(&started.authorize_url).await;
        let page = h.callback(&cb).await;
        let refused = h
            .complete(&page)
            .await
            .expect_err("an untrusted instance_url");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{hostile}");
        assert!(
            refused.message().contains("not Salesforce"),
            "{hostile}: {}",
            refused.message()
        );
        let id = connector::domain::IntegrationId::parse(&started.integration_id).unwrap();
        let conn = h.stream(&id.connection_stream()).await;
        assert!(
            conn.iter().all(|e| e.event_type() != "ConnectionConnected"),
            "{hostile}: not connected"
        );
        h.shutdown().await;
    }
}

/// The OAuth callback per client address (issue 15.2): past its burst an address is answered
/// 429 with a Retry-After, without a token exchange or a database query.
#[tokio::test]
async fn the_callback_answers_429_to_an_address_over_its_rate() {
    let h = Harness::with(Options {
        tweak: Box::new(|c| c.callback_rate = rp_platform::ratelimit::Rate::new(1, 3)),
        ..Default::default()
    })
    .await;
    let url = format!("http://{}/oauth/callback?state=forged&code=x", h.http_addr);
    for i in 0..3 {
        let r = h.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "call {i}");
    }
    let r = h.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    h.shutdown().await;
}

/// A 429 whose `Retry-After` claims ten years (issue 15.10): waited at most
/// `CONNECTOR_MAX_RETRY_AFTER` (here 1 s) each time, so the pull carries on and the run completes
/// with every record; before the bound, the pull slept for the claimed ten years (the run never
/// finished: this test timed out).
#[tokio::test]
async fn a_retry_after_of_years_is_waited_at_most_the_bound_and_the_run_completes() {
    let h = Harness::with(Options {
        tweak: Box::new(|c| c.providers.max_retry_after = std::time::Duration::from_secs(1)),
        ..Default::default()
    })
    .await;
    let id = h.connect(api::Provider::Hubspot).await;
    h.admin(
        "PUT",
        "/providers/hubspot/hostile",
        json!({"mode": "throttle", "count": 3, "retry_after": 315_360_000u64}),
    )
    .await;
    let (run, events) = h.sync(id).await;
    assert!(failed(&events).is_none(), "{:?}", failed(&events));
    let status = h.admin("GET", "/providers/hubspot", json!(null)).await;
    assert_eq!(
        status["hostile"]["count"], 0,
        "all three 429s were answered and waited out: {status}"
    );
    let pulled = connector_support::counts(&h.batches(&run).await);
    let truth = h.truth_counts().await;
    for object in ["companies", "contacts", "deals"] {
        assert_eq!(
            pulled.get(object).copied().unwrap_or(0) as u64,
            truth[object].as_u64().unwrap_or(u64::MAX),
            "every one of the {object} pulled: {pulled:?} vs {truth}"
        );
    }
    h.shutdown().await;
}
