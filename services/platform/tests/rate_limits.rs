//! Rate limits per API key (issue 15.2): every gRPC method authenticates through
//! `apikeys::authenticate`, which counts the call against the key's rate. One key over its rate
//! is refused `RESOURCE_EXHAUSTED` while another key goes on; refused authentications are
//! counted in `rp_grpc_auth_failures_total` by reason. Its own test binary: the rate set here
//! is the process's.

use rp_platform::apikeys;
use rp_platform::ids::WorkspaceId;
use rp_platform::ratelimit::{Rate, set_grpc_rate};
use rp_platform::testing::TestEnv;
use tonic::Code;

async fn workspace(env: &TestEnv) -> WorkspaceId {
    env.create_workspace("Acme", "growth").await
}

/// A call carrying `authorization: Bearer <key>` (for no method in particular: what a full key
/// may call).
fn bearer(key: &str) -> tonic::Request<()> {
    rp_platform::testing::authed(key, ())
}

fn auth_failures(reason: &str) -> u64 {
    let text = rp_platform::metrics::encode_all().unwrap();
    let prefix = format!("rp_grpc_auth_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_key_over_its_rate_is_refused_while_another_key_is_not_and_failures_are_counted() {
    // One call a second, bursts of 5: the sixth call at once is over.
    set_grpc_rate(Rate::new(1, 5));
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let busy = apikeys::issue(&env.pool, ws, "busy").await.unwrap();
    let calm = apikeys::issue(&env.pool, ws, "calm").await.unwrap();

    for i in 0..5 {
        apikeys::authenticate(&env.pool, &bearer(&busy.plaintext))
            .await
            .unwrap_or_else(|e| panic!("call {i} within the burst: {e:?}"));
    }
    let refused = apikeys::authenticate(&env.pool, &bearer(&busy.plaintext))
        .await
        .expect_err("the sixth call at once is over the rate");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains(busy.key_id.as_str()) && refused.message().contains("retry in"),
        "{}",
        refused.message()
    );
    assert!(
        !refused.message().contains(&busy.plaintext),
        "never the secret"
    );

    let other = apikeys::authenticate(&env.pool, &bearer(&calm.plaintext)).await;
    assert!(other.is_ok(), "another key is not limited: {other:?}");

    // Refused authentications are counted by reason (and logged without the key).
    let before = (
        auth_failures("unknown"),
        auth_failures("malformed"),
        auth_failures("missing"),
    );
    let wrong_secret = format!("{}{}_{}", apikeys::KEY_PREFIX, busy.key_id, "00".repeat(32));
    let e = apikeys::authenticate(&env.pool, &bearer(&wrong_secret))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    apikeys::authenticate(&env.pool, &bearer("hunter2"))
        .await
        .unwrap_err();
    apikeys::authenticate(&env.pool, &tonic::Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(
        (
            auth_failures("unknown"),
            auth_failures("malformed"),
            auth_failures("missing")
        ),
        (before.0 + 1, before.1 + 1, before.2 + 1)
    );
}
