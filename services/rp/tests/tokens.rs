//! `rp tokens rewrap`, run as operators run it: tokens sealed under k1, the ring k1+k2 with k2
//! active; afterwards every row is sealed under k2 and opens with k2 alone. Nothing printed is a
//! token. (The connector reading and refreshing rewrapped rows with k1 gone is
//! services/connector/tests/connect.rs `rewrap_reseals_every_token_under_the_active_key_and_the_old_key_can_go`.)

use base64::Engine as _;
use connector::crypto::{KeyRing, Sealed};
use rp_platform::testing::TestEnv;
use sqlx::Row;
use std::process::Output;

fn key(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

async fn rp(env: &TestEnv, keys: &str, active: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    cmd.args(args);
    for (k, v) in env.env_vars() {
        cmd.env(k, v);
    }
    cmd.env("CONNECTOR_TOKEN_KEYS", keys)
        .env("CONNECTOR_TOKEN_KEY_ID", active);
    cmd.output().await.unwrap()
}

fn lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn rewrap_reseals_every_token_under_the_active_key_and_prints_counts_only() {
    let env = TestEnv::new().await;
    connector::store::migrate(&env.pool).await.unwrap();
    let old = KeyRing::parse(&format!("k1:{}", key(1)), "k1").unwrap();
    let ws = uuid::Uuid::new_v4();
    let mut rows = Vec::new();
    for (i, provider) in ["linkedin", "hubspot", "salesforce"].iter().enumerate() {
        let id = uuid::Uuid::new_v4();
        let secret = format!("{{\"access_token\":\"secret-access-{i}\"}}");
        let sealed = old.seal(secret.as_bytes(), id.as_bytes()).unwrap();
        sqlx::query(
            "INSERT INTO connector_connections (integration_id, workspace_id, provider, status) \
             VALUES ($1, $2, $3, 'connected')",
        )
        .bind(id)
        .bind(ws)
        .bind(provider)
        .execute(&env.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO connector_tokens (integration_id, key_id, nonce, ciphertext) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&env.pool)
        .await
        .unwrap();
        rows.push((id, secret));
    }
    let ring = format!("k1:{},k2:{}", key(1), key(2));
    let out = rp(
        &env,
        &ring,
        "k2",
        &["tokens", "rewrap", "--batch", "2", "--json"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("secret-"), "{printed}");
    let report = lines(&out);
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["from_key_id"], "k1");
    assert_eq!(report[0]["to_key_id"], "k2");
    assert_eq!(report[0]["resealed"], "3");
    assert_eq!(report[0]["failed"], "0");

    // Every row under k2, readable with k1 gone from the ring.
    let only_new = KeyRing::parse(&format!("k2:{}", key(2)), "k2").unwrap();
    for (id, secret) in &rows {
        let r = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM connector_tokens WHERE integration_id = $1",
        )
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        let sealed = Sealed {
            key_id: r.get("key_id"),
            nonce: r.get("nonce"),
            ciphertext: r.get("ciphertext"),
        };
        assert_eq!(sealed.key_id, "k2");
        assert_eq!(
            only_new.open(&sealed, id.as_bytes()).unwrap(),
            secret.as_bytes()
        );
    }

    // Idempotent: a second run has nothing to do.
    let again = rp(&env, &ring, "k2", &["tokens", "rewrap"]).await;
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already sealed under k2"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // A row whose key is not in the ring is reported, left alone, and the exit code says so.
    let only_new_ring = format!("k2:{}", key(2));
    let stray = uuid::Uuid::new_v4();
    let sealed = old.seal(b"{}", stray.as_bytes()).unwrap();
    sqlx::query(
        "INSERT INTO connector_connections (integration_id, workspace_id, provider, status) \
         VALUES ($1, $2, 'hubspot', 'connected')",
    )
    .bind(stray)
    .bind(uuid::Uuid::new_v4())
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO connector_tokens (integration_id, key_id, nonce, ciphertext) VALUES ($1, 'k1', $2, $3)",
    )
    .bind(stray)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .execute(&env.pool)
    .await
    .unwrap();
    let missing = rp(&env, &only_new_ring, "k2", &["tokens", "rewrap", "--json"]).await;
    assert_eq!(missing.status.code(), Some(1));
    let report = lines(&missing);
    assert_eq!(report[0]["from_key_id"], "k1");
    assert_eq!(report[0]["failed"], "1");
    env.cleanup().await;
}
