//! API keys against a real PostgreSQL: issued and revoked as events with the projection in the
//! same transaction, only a hash stored, and every way a call can fail to authenticate.

use rp_platform::apikeys::{self, ApiKeyError, Caller, KeyId, Revocation};
use rp_platform::contracts::events::v1::envelope::Event;
use rp_platform::ids::WorkspaceId;
use rp_platform::testing::TestEnv;
use sha2::{Digest, Sha256};
use tonic::Code;

async fn workspace(env: &TestEnv) -> WorkspaceId {
    env.create_workspace("Acme", "growth").await
}

/// A call carrying `authorization: Bearer <key>` (for no method in particular: what a full key
/// may call).
fn bearer(key: &str) -> tonic::Request<()> {
    rp_platform::testing::authed(key, ())
}

#[tokio::test]
async fn an_issued_key_authenticates_as_its_workspace_and_only_its_hash_is_stored() {
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let key = apikeys::issue(&env.pool, ws, "ci pipeline").await.unwrap();
    assert!(
        key.plaintext
            .starts_with(&format!("{}{}_", apikeys::KEY_PREFIX, key.key_id))
    );

    let caller = apikeys::authenticate(&env.pool, &bearer(&key.plaintext))
        .await
        .unwrap();
    assert_eq!(
        caller,
        Caller {
            workspace_id: ws,
            key_id: key.key_id.clone(),
            scope: apikeys::Scope::Full,
        }
    );

    // The log has the event with the secret's hash, never the secret.
    let secret_hex = key.plaintext.rsplit('_').next().unwrap();
    let expected_hash = hex::encode(Sha256::digest(hex::decode(secret_hex).unwrap()));
    let events = env.store.read_stream(&ws.stream(), 1, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    let Some(Event::ApiKeyIssued(issued)) = events[1].event() else {
        panic!("expected ApiKeyIssued, got {:?}", events[1].event());
    };
    assert_eq!(issued.key_id, key.key_id.as_str());
    assert_eq!(issued.secret_sha256, expected_hash);
    assert_eq!(issued.label, "ci pipeline");
    let raw: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM events")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert!(
        raw.iter()
            .all(|p| !String::from_utf8_lossy(p).contains(secret_hex))
    );
    let stored: String = sqlx::query_scalar("SELECT secret_sha256 FROM api_keys WHERE key_id = $1")
        .bind(key.key_id.as_str())
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored, expected_hash);

    let listed = apikeys::list(&env.pool, ws).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, key.key_id.as_str());
    assert_eq!(listed[0].label, "ci pipeline");
    assert_eq!(listed[0].scope, "full");
    assert_eq!(listed[0].revoked_at, None);
    env.cleanup().await;
}

#[tokio::test]
async fn a_key_for_a_workspace_that_does_not_exist_is_refused_and_nothing_is_written() {
    let env = TestEnv::new().await;
    let ghost = WorkspaceId::new(uuid::Uuid::new_v4());
    let err = apikeys::issue(&env.pool, ghost, "").await.unwrap_err();
    assert!(
        matches!(err, ApiKeyError::WorkspaceNotFound(w) if w == ghost),
        "{err}"
    );
    assert!(err.to_string().contains("rp workspaces create"));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(env.store.head_position().await.unwrap(), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once_and_revoking_twice_appends_once() {
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let key = apikeys::issue(&env.pool, ws, "laptop").await.unwrap();
    let keep = apikeys::issue(&env.pool, ws, "server").await.unwrap();

    assert_eq!(
        apikeys::revoke(&env.pool, &key.key_id).await.unwrap(),
        Revocation::Revoked { workspace_id: ws }
    );
    let err = apikeys::authenticate(&env.pool, &bearer(&key.plaintext))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("was revoked"), "{}", err.message());
    assert!(
        err.message().contains("rp keys create"),
        "{}",
        err.message()
    );
    // The other key of the workspace still works.
    apikeys::authenticate(&env.pool, &bearer(&keep.plaintext))
        .await
        .unwrap();

    assert_eq!(
        apikeys::revoke(&env.pool, &key.key_id).await.unwrap(),
        Revocation::AlreadyRevoked { workspace_id: ws }
    );
    let types: Vec<&str> = env
        .store
        .read_stream(&ws.stream(), 1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert_eq!(
        types,
        [
            "WorkspaceCreated",
            "ApiKeyIssued",
            "ApiKeyIssued",
            "ApiKeyRevoked"
        ]
    );
    let listed = apikeys::list(&env.pool, ws).await.unwrap();
    assert!(
        listed
            .iter()
            .find(|k| k.key_id == key.key_id.as_str())
            .unwrap()
            .revoked_at
            .is_some()
    );

    let unknown = KeyId::parse(&"0".repeat(32)).unwrap();
    assert!(matches!(
        apikeys::revoke(&env.pool, &unknown).await,
        Err(ApiKeyError::KeyNotFound(_))
    ));
    env.cleanup().await;
}

#[tokio::test]
async fn unknown_keys_and_wrong_secrets_are_unauthenticated_without_saying_which() {
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let key = apikeys::issue(&env.pool, ws, "").await.unwrap();
    let wrong_secret = format!("{}{}_{}", apikeys::KEY_PREFIX, key.key_id, "ab".repeat(32));
    let unknown_id = format!(
        "{}{}_{}",
        apikeys::KEY_PREFIX,
        "cd".repeat(16),
        "ab".repeat(32)
    );
    for presented in [wrong_secret, unknown_id] {
        let err = apikeys::authenticate(&env.pool, &bearer(&presented))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert!(
            err.message().starts_with("unknown API key"),
            "{}",
            err.message()
        );
    }
    let missing = apikeys::authenticate(&env.pool, &tonic::Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().starts_with("missing API key"));
    let malformed = apikeys::authenticate(&env.pool, &bearer("hunter2"))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::Unauthenticated);
    assert!(malformed.message().starts_with("malformed API key"));
    env.cleanup().await;
}

#[tokio::test]
async fn a_key_acts_only_for_its_own_workspace() {
    let env = TestEnv::new().await;
    let (a, b) = (workspace(&env).await, workspace(&env).await);
    let key = apikeys::issue(&env.pool, a, "").await.unwrap();
    let caller = apikeys::authenticate(&env.pool, &bearer(&key.plaintext))
        .await
        .unwrap();
    assert_eq!(caller.authorize(&a.to_string()).unwrap(), a);
    let denied = caller.authorize(&b.to_string()).unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // It names the key's own workspace, never the one asked for (issue 15.4).
    assert!(!denied.message().contains(&b.to_string()));
    assert!(denied.message().contains(&a.to_string()));
    env.cleanup().await;
}

#[tokio::test]
async fn the_database_being_down_is_unavailable_not_unauthenticated() {
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let key = apikeys::issue(&env.pool, ws, "").await.unwrap();
    let pool = env.pool.clone();
    pool.close().await;
    let err = apikeys::authenticate(&pool, &bearer(&key.plaintext))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    env.cleanup().await;
}
