//! Issue 15.4, every `Matches` method, table-driven: an error never echoes unbounded input,
//! PERMISSION_DENIED never names the other workspace, a megabyte id is INVALID_ARGUMENT, and a
//! company id outside the id alphabet is INVALID_ARGUMENT (LinkedIn and CRM ids are the
//! providers' ids, not UUIDs: `not-a-uuid` is a well-formed id that no company has, NOT_FOUND).

use matcher::api::MatchesApi;
use rp_platform::contracts::api::v1::matches_client::MatchesClient;
use rp_platform::contracts::api::v1::*;
use rp_platform::contracts::events::v1::MatchDecision;
use rp_platform::testing::{TestEnv, authed, workspace_with_key};
use std::future::Future;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};

const MAX_MESSAGE: usize = 1024;

type Fut = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;
type Call = fn(MatchesClient<Channel>, String, String, String) -> Fut;

/// (method, call(client, key, workspace_id, other string field)).
fn methods() -> Vec<(&'static str, Call)> {
    vec![
        ("ListMatches", |mut c, k, ws, x| {
            Box::pin(async move {
                c.list_matches(authed(
                    &k,
                    ListMatchesRequest {
                        workspace_id: ws,
                        page_token: x,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("ListReviews", |mut c, k, ws, x| {
            Box::pin(async move {
                c.list_reviews(authed(
                    &k,
                    ListReviewsRequest {
                        workspace_id: ws,
                        page_token: x,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("RecordDecision(linkedin_id)", |mut c, k, ws, x| {
            Box::pin(async move {
                c.record_decision(authed(
                    &k,
                    RecordDecisionRequest {
                        workspace_id: ws,
                        linkedin_id: x,
                        crm_id: "c-1".into(),
                        decision: MatchDecision::Confirm as i32,
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("RecordDecision(crm_id)", |mut c, k, ws, x| {
            Box::pin(async move {
                c.record_decision(authed(
                    &k,
                    RecordDecisionRequest {
                        workspace_id: ws,
                        linkedin_id: "l-1".into(),
                        crm_id: x,
                        decision: MatchDecision::Confirm as i32,
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matches_method_answers_bounded_and_never_names_another_workspace() {
    let env = TestEnv::new().await;
    matcher::store::migrate(&env.pool).await.unwrap();
    let cancel = CancellationToken::new();
    let serving = rp_platform::grpc::serve(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
        rp_platform::grpc::Services::new().service(MatchesApi::new(env.pool.clone()).into_server()),
    )
    .await
    .unwrap();
    let client = MatchesClient::connect(format!("http://{}", serving.local_addr()))
        .await
        .unwrap();
    let (ws_a, key) = workspace_with_key(&env, "growth").await;
    let (ws_b, _) = workspace_with_key(&env, "growth").await;
    let huge = "3".repeat(1 << 20);
    for (name, call) in methods() {
        let e = call(client.clone(), key.clone(), ws_b.clone(), "x1".into())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::PermissionDenied, "{name}");
        assert!(!e.message().contains(&ws_b), "{name}: {}", e.message());
        let e = call(client.clone(), key.clone(), huge.clone(), "x1".into())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        assert!(e.message().len() <= MAX_MESSAGE, "{name}");
        let e = call(client.clone(), key.clone(), ws_a.clone(), huge.clone())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        assert!(e.message().len() <= MAX_MESSAGE, "{name}");
        if name.starts_with("RecordDecision") {
            let e = call(client.clone(), key.clone(), ws_a.clone(), "a b\u{0}".into())
                .await
                .expect_err(name);
            assert_eq!(e.code(), Code::InvalidArgument, "{name}");
            let e = call(
                client.clone(),
                key.clone(),
                ws_a.clone(),
                "not-a-uuid".into(),
            )
            .await
            .expect_err(name);
            assert_eq!(e.code(), Code::NotFound, "{name}");
        }
    }
    cancel.cancel();
    let _ = serving.wait().await;
    env.cleanup().await;
}
