//! The `rp` binary, run as operators run it, against a real PostgreSQL and NATS.

use rp_platform::consumer::{
    self, ConsumerConfig, Handler, HandlerContext, HandlerError, Ordering,
};
use rp_platform::contracts::events::v1::{SyncFailed, SyncRequested, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, RecordedEvent};
use rp_platform::relay::Relay;
use rp_platform::testing::{TestEnv, eventually};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn rp(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    cmd.args(args);
    for (k, v) in env.env_vars() {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn seed(env: &TestEnv) {
    for (i, ws) in ["ws-a", "ws-b", "ws-a"].iter().enumerate() {
        env.store
            .append(
                &format!("syncrun-{i}"),
                ExpectedVersion::NoStream,
                vec![
                    NewEvent::new(
                        *ws,
                        Event::SyncRequested(SyncRequested {
                            sync_run_id: i.to_string(),
                            ..Default::default()
                        }),
                    ),
                    NewEvent::new(
                        *ws,
                        Event::SyncFailed(SyncFailed {
                            sync_run_id: i.to_string(),
                            message: "HubSpot is unavailable".into(),
                            ..Default::default()
                        }),
                    ),
                ],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn tail_filters_and_pages_the_log() {
    let env = TestEnv::new().await;
    seed(&env).await;
    let all = rp(&env, &["events", "tail", "--from", "0", "--json"]).await;
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let rows = json_lines(&all);
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["position"], 1);
    assert_eq!(rows[1]["event_type"], "SyncFailed");

    let failed_a = rp(
        &env,
        &[
            "events",
            "tail",
            "--from",
            "0",
            "--workspace",
            "ws-a",
            "--type",
            "SyncFailed",
            "--json",
        ],
    )
    .await;
    let rows = json_lines(&failed_a);
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["workspace_id"] == "ws-a" && r["event_type"] == "SyncFailed")
    );

    // Readable table for people.
    let table = rp(&env, &["events", "tail", "--limit", "2"]).await;
    let text = stdout(&table);
    assert!(text.trim_start().starts_with("POSITION"), "{text}");
    assert_eq!(text.lines().count(), 3, "header + the newest 2:\n{text}");
    env.cleanup().await;
}

#[tokio::test]
async fn stream_shows_one_stream_and_says_when_it_does_not_exist() {
    let env = TestEnv::new().await;
    seed(&env).await;
    let out = rp(&env, &["events", "stream", "syncrun-1", "--json"]).await;
    let rows = json_lines(&out);
    assert_eq!(
        rows.iter()
            .map(|r| r["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    let missing = rp(&env, &["events", "stream", "syncrun-99"]).await;
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no stream \"syncrun-99\""));
    env.cleanup().await;
}

#[tokio::test]
async fn bad_arguments_exit_2_with_a_clear_message() {
    let env = TestEnv::new().await;
    let bad_type = rp(&env, &["events", "tail", "--type", "SyncExploded"]).await;
    assert_eq!(bad_type.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_type.stderr).contains("unknown event type"));
    let bad_range = rp(&env, &["events", "replay", "--from", "10", "--to", "2"]).await;
    assert_eq!(bad_range.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_range.stderr).contains("--to 2 is before --from 10"));
    let negative = rp(&env, &["events", "tail", "--from", "-4"]).await;
    assert_eq!(negative.status.code(), Some(2));
    let mut bad_env = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    let out = bad_env
        .args(["events", "tail"])
        .env("DATABASE_URL", "mysql://nope")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
    env.cleanup().await;
}

struct AlwaysFails;

impl Handler for AlwaysFails {
    async fn handle(&self, _: &mut HandlerContext, _: &RecordedEvent) -> Result<(), HandlerError> {
        Err(HandlerError::Reject("cannot attribute: no pipeline".into()))
    }
}

#[tokio::test]
async fn replay_is_safe_twice_and_consumers_show_lag_and_dead_letters() {
    let env = TestEnv::new().await;
    seed(&env).await;
    Relay::new(env.store.clone(), env.js.clone(), env.bus.clone())
        .publish_pending()
        .await
        .unwrap();
    for _ in 0..2 {
        let out = rp(&env, &["events", "replay", "--from", "0", "--json"]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = &json_lines(&out)[0];
        assert_eq!(r["published"], "6");
        assert_eq!(r["duplicates"], "6");
    }

    let cancel = CancellationToken::new();
    let mut cfg = ConsumerConfig::new("attribution", Ordering::Unordered { concurrency: 2 })
        .event_types(&["SyncFailed"]);
    cfg.ack_wait = Duration::from_secs(2);
    let task = tokio::spawn(consumer::run(
        env.js.clone(),
        env.bus.clone(),
        env.pool.clone(),
        cfg,
        Arc::new(AlwaysFails),
        cancel.clone(),
    ));
    eventually(Duration::from_secs(30), "three dead letters", || async {
        let d = consumer::dead_letters(&env.pool, Some("attribution"))
            .await
            .unwrap();
        (d.len() == 3).then_some(())
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();

    let out = rp(&env, &["consumers", "--dead-letters", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_lines(&out);
    let c = rows
        .iter()
        .find(|r| r["consumer"] == "attribution")
        .unwrap();
    assert_eq!(c["dead"], "3");
    assert_eq!(c["pending"], "0");
    // Three events, and each dead letter told in the log (EventDeadLettered).
    assert_eq!(c["log_head"], "9");
    let dead: Vec<_> = rows
        .iter()
        .filter(|r| r.get("dead_letter").is_some())
        .collect();
    assert_eq!(dead.len(), 3);
    assert!(
        dead.iter()
            .all(|d| d["error"] == "cannot attribute: no pipeline")
    );
    env.cleanup().await;
}

#[tokio::test]
async fn migrate_creates_a_missing_database() {
    let env = TestEnv::new().await;
    let fresh = env.database_url.replace("rp_test_", "rp_test_m");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    for (k, v) in env.env_vars() {
        cmd.env(k, v);
    }
    let out = cmd
        .env("DATABASE_URL", &fresh)
        .args(["migrate", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["database_created"], "true");
    // Twice is fine.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    let again = cmd
        .env("DATABASE_URL", &fresh)
        .args(["migrate"])
        .output()
        .await
        .unwrap();
    assert!(again.status.success());
    let admin = rp_platform::db::connect(&env.database_url, 1)
        .await
        .unwrap();
    let name = fresh.rsplit('/').next().unwrap().to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn migrate_with_a_service_role_grants_it_appending_but_not_changing_history() {
    let env = TestEnv::new().await;
    let role = format!(
        "rp_cli_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let rp = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
        for (k, v) in env.env_vars() {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    };
    let out = rp(vec![
        "migrate".into(),
        "--service-role".into(),
        role.clone(),
        "--json".into(),
    ])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert!(
        lines.iter().any(|l| l["role"] == role.as_str()),
        "{lines:?}"
    );
    let (insert, update, truncate): (bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege($1, 'events', 'INSERT'), \
                has_table_privilege($1, 'events', 'UPDATE'), \
                has_table_privilege($1, 'events', 'TRUNCATE')",
    )
    .bind(&role)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((insert, update, truncate), (true, false, false));

    // A name that would need quoting is refused before any SQL.
    let bad = rp(vec![
        "migrate".into(),
        "--service-role".into(),
        "x\"; DROP TABLE events; --".into(),
    ])
    .output()
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a role name"));

    for s in [
        format!("DROP OWNED BY \"{role}\""),
        format!("DROP ROLE \"{role}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&env.pool)
            .await
            .unwrap();
    }
    env.cleanup().await;
}
