//! Issue 15, items 1 and 3, for the bell: `Subscribe` streams are capped per API key, and a
//! revoked key's streams end within seconds (they used to check the key once, at opening).

mod support;

use rp_platform::apikeys;
use rp_platform::contracts::api::v1::{Notification, SubscribeRequest};
use rp_platform::streams::StreamLimits;
use rp_platform::testing::TestEnv;
use std::time::{Duration, Instant};
use support::{Running, authed, workspace};
use tonic::Code;

type Bell = tonic::Streaming<Notification>;

async fn subscribe(svc: &Running, key: &str, ws: &str) -> Result<Bell, tonic::Status> {
    Ok(svc
        .client()
        .await
        .subscribe(authed(
            key,
            SubscribeRequest {
                workspace_id: ws.to_string(),
            },
        ))
        .await?
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_bells_end_within_seconds_and_others_stay() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let (ws, other) = (workspace(&env).await, workspace(&env).await);
    let mut bells = Vec::new();
    for _ in 0..3 {
        bells.push(subscribe(&svc, &ws.key, &ws.id.to_string()).await.unwrap());
    }
    let mut unaffected = subscribe(&svc, &other.key, &other.id.to_string())
        .await
        .unwrap();
    apikeys::revoke(&env.pool, &ws.key_id).await.unwrap();

    let t = Instant::now();
    for bell in &mut bells {
        let end = tokio::time::timeout(Duration::from_secs(10), bell.message())
            .await
            .expect("a revoked key's bell ends within 10 s");
        let e = end.expect_err("it ends with a status saying why");
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(e.message().contains("revoked"), "{}", e.message());
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // A new Subscribe with the revoked key is refused at once.
    let again = subscribe(&svc, &ws.key, &ws.id.to_string())
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated);
    // Another key's bell stays open.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), unaffected.message())
            .await
            .is_err(),
        "another key's bell is left open"
    );
    drop(unaffected);
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_cannot_open_more_bells_than_its_cap() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let (ws, other) = (workspace(&env).await, workspace(&env).await);
    let cap = StreamLimits::default().per_key;
    let mut bells = Vec::new();
    for _ in 0..cap {
        bells.push(subscribe(&svc, &ws.key, &ws.id.to_string()).await.unwrap());
    }
    let e = subscribe(&svc, &ws.key, &ws.id.to_string())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("streams open"), "{}", e.message());
    // Another workspace is not affected; a closed bell frees its place.
    let _b = subscribe(&svc, &other.key, &other.id.to_string())
        .await
        .unwrap();
    drop(bells.pop());
    rp_platform::testing::eventually(Duration::from_secs(10), "a freed place", || async {
        subscribe(&svc, &ws.key, &ws.id.to_string()).await.ok()
    })
    .await;
    // Shutdown ends the open bells (the service stops within its timeout).
    drop(_b);
    svc.stop().await;
    env.cleanup().await;
}
