//! API key scopes (issue 15.3): every method of the contracts is classified read or write, a
//! read-only key is issued as an event that says so, and `authenticate` refuses it on anything
//! but a read, with a message saying which key is needed; refusals are counted.

use prost::Message;
use rp_platform::apikeys::{self, READ_METHODS, Scope, WRITE_METHODS};
use rp_platform::contracts::events::v1::{ApiKeyScope, envelope::Event};
use rp_platform::ids::WorkspaceId;
use rp_platform::testing::TestEnv;
use tonic::metadata::MetadataValue;
use tonic::{Code, GrpcMethod};

/// Every `<package>.<Service>/<Method>` of the `rp.` contracts, from the descriptor set the
/// servers are generated from (and serve for reflection).
fn contract_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(rp_platform::contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts' descriptor set decodes");
    let mut methods = Vec::new();
    for file in &set.file {
        if !file.package().starts_with("rp.") {
            continue;
        }
        for svc in &file.service {
            for m in &svc.method {
                methods.push(format!("{}.{}/{}", file.package(), svc.name(), m.name()));
            }
        }
    }
    methods.sort();
    methods
}

#[test]
fn every_method_of_every_service_is_classified_read_or_write() {
    let methods = contract_methods();
    assert!(
        methods.len() >= 20,
        "the walk found too few methods: {methods:?}"
    );
    let unclassified: Vec<&String> = methods
        .iter()
        .filter(|m| !READ_METHODS.contains(&m.as_str()) && !WRITE_METHODS.contains(&m.as_str()))
        .collect();
    assert!(
        unclassified.is_empty(),
        "classify these in rp_platform::apikeys (READ_METHODS or WRITE_METHODS); until then a \
         read-only key is refused on them: {unclassified:?}"
    );
    let both: Vec<&&str> = READ_METHODS
        .iter()
        .filter(|m| WRITE_METHODS.contains(m))
        .collect();
    assert!(both.is_empty(), "both read and write: {both:?}");
    // A read that no longer exists is a stale permission: a method re-added under that name
    // could be a write. (The write list may name a method before it lands, like CompleteConnect:
    // listing a write early only refuses more.)
    let stale: Vec<&&str> = READ_METHODS
        .iter()
        .filter(|m| !methods.iter().any(|x| x == *m))
        .collect();
    assert!(
        stale.is_empty(),
        "READ_METHODS names no such method: {stale:?}"
    );
    // What a product promises a read-only key can never do.
    for write in [
        "rp.api.v1.Sync/SyncNow",
        "rp.api.v1.Sync/SetSyncSchedule",
        "rp.api.v1.Connections/StartConnect",
        "rp.api.v1.Connections/CompleteConnect",
        "rp.api.v1.Connections/Reconnect",
        "rp.api.v1.Connections/Disconnect",
        "rp.api.v1.Matches/RecordDecision",
        "rp.api.v1.Notifications/MarkRead",
        "rp.api.v1.Notifications/MarkAllRead",
    ] {
        assert!(WRITE_METHODS.contains(&write), "{write}");
        assert!(!apikeys::permits(Scope::ReadOnly, write), "{write}");
    }
}

async fn workspace(env: &TestEnv) -> WorkspaceId {
    env.create_workspace("Acme", "growth").await
}

/// A call of `method` (`Service/Method` of rp.api.v1, as the servers name it) with `key`; `None`
/// names no method at all.
fn call(key: &str, method: Option<&'static str>) -> tonic::Request<()> {
    let mut r = tonic::Request::new(());
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).unwrap(),
    );
    if let Some(m) = method {
        let (service, method) = m.split_once('/').unwrap();
        let service: &'static str = Box::leak(format!("rp.api.v1.{service}").into_boxed_str());
        r.extensions_mut().insert(GrpcMethod::new(service, method));
    }
    r
}

fn refusals(service: &str, method: &str) -> u64 {
    let text = rp_platform::metrics::encode_all().unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("rp_grpc_read_only_refusals_total{")
                && l.contains(&format!("grpc_service=\"{service}\""))
                && l.contains(&format!("grpc_method=\"{method}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_read_only_key_is_recorded_as_such_and_refused_on_writes_only() {
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let ro = apikeys::issue_with_scope(&env.pool, ws, "wall screen", Scope::ReadOnly)
        .await
        .unwrap();
    let full = apikeys::issue(&env.pool, ws, "web app").await.unwrap();
    assert_eq!(ro.scope, Scope::ReadOnly);
    assert_eq!(full.scope, Scope::Full);

    // The log says what each key may do, so the projection can be rebuilt from it.
    let events = env.store.read_stream(&ws.stream(), 1, 10).await.unwrap();
    let scopes: Vec<(String, ApiKeyScope)> = events
        .iter()
        .filter_map(|e| match e.event() {
            Some(Event::ApiKeyIssued(i)) => Some((i.key_id.clone(), i.scope())),
            _ => None,
        })
        .collect();
    assert_eq!(
        scopes,
        vec![
            (ro.key_id.to_string(), ApiKeyScope::ReadOnly),
            (full.key_id.to_string(), ApiKeyScope::Full),
        ]
    );
    let listed: Vec<(String, String)> = apikeys::list(&env.pool, ws)
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.label, k.scope))
        .collect();
    assert!(listed.contains(&("wall screen".into(), "read_only".into())));
    assert!(listed.contains(&("web app".into(), "full".into())));

    // Reads: both keys.
    for read in [
        "Attribution/GetDashboard",
        "Sync/GetConnectionHealth",
        "Connections/ListConnections",
    ] {
        let caller = apikeys::authenticate(&env.pool, &call(&ro.plaintext, Some(read)))
            .await
            .unwrap_or_else(|e| panic!("{read}: {e:?}"));
        assert_eq!(caller.scope, Scope::ReadOnly);
        apikeys::authenticate(&env.pool, &call(&full.plaintext, Some(read)))
            .await
            .unwrap();
    }
    // Writes: the full key only; the read-only key is told what it is and what is needed.
    let before = refusals("rp.api.v1.Sync", "SyncNow");
    for write in [
        "Sync/SyncNow",
        "Sync/SetSyncSchedule",
        "Connections/Disconnect",
        "Connections/CompleteConnect",
        "Matches/RecordDecision",
        "Notifications/MarkAllRead",
    ] {
        let e = apikeys::authenticate(&env.pool, &call(&ro.plaintext, Some(write)))
            .await
            .expect_err(write);
        assert_eq!(e.code(), Code::PermissionDenied, "{write}: {e:?}");
        assert!(e.message().contains("read-only"), "{}", e.message());
        assert!(e.message().contains(write), "{}", e.message());
        assert!(e.message().contains("full key"), "{}", e.message());
        assert!(!e.message().contains(&ro.plaintext), "{}", e.message());
        let caller = apikeys::authenticate(&env.pool, &call(&full.plaintext, Some(write)))
            .await
            .unwrap();
        assert_eq!(caller.scope, Scope::Full);
    }
    assert_eq!(refusals("rp.api.v1.Sync", "SyncNow"), before + 1);
    // Fail closed: a method classified nowhere, or a call that names none.
    for m in [Some("Sync/PurgeEverything"), None] {
        let e = apikeys::authenticate(&env.pool, &call(&ro.plaintext, m))
            .await
            .expect_err("unclassified");
        assert_eq!(e.code(), Code::PermissionDenied, "{m:?}: {e:?}");
        apikeys::authenticate(&env.pool, &call(&full.plaintext, m))
            .await
            .unwrap();
    }
    env.cleanup().await;
}

#[tokio::test]
async fn keys_issued_before_scopes_existed_are_full() {
    use sha2::{Digest, Sha256};
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    // A row as it was written before the scope column existed: the migration's default applies.
    let key_id = uuid::Uuid::new_v4().simple().to_string();
    let secret = [7u8; 32];
    sqlx::query(
        "INSERT INTO api_keys (key_id, workspace_id, secret_sha256, label) VALUES ($1, $2, $3, '')",
    )
    .bind(&key_id)
    .bind(ws.as_uuid())
    .bind(hex::encode(Sha256::digest(secret)))
    .execute(&env.pool)
    .await
    .unwrap();
    let plaintext = format!("{}{key_id}_{}", apikeys::KEY_PREFIX, hex::encode(secret));
    let caller = apikeys::authenticate(&env.pool, &call(&plaintext, Some("Sync/SyncNow")))
        .await
        .unwrap();
    assert_eq!(caller.scope, Scope::Full);
    // An ApiKeyIssued event without a scope (written before it existed) reads as full.
    let old = rp_platform::contracts::events::v1::ApiKeyIssued {
        key_id,
        secret_sha256: "0".repeat(64),
        label: String::new(),
        ..Default::default()
    };
    assert_eq!(Scope::from_event(&old), Scope::Full);
    env.cleanup().await;
}
