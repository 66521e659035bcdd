//! `rp storage` against a real PostgreSQL, on a database of the test's own: every table with its
//! owner and bytes, the owners' totals and projections ÷ event log, a saved measurement
//! compared with a later one, and clear errors (never a panic) on bad input.

use rp_platform::contracts::events::v1::{RecordsPulled, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::testing::TestEnv;
use std::process::Output;

async fn rp(env: &TestEnv, args: &[&str]) -> Output {
    rp_with(env, args, &[]).await
}

async fn rp_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    cmd.args(args);
    for (k, v) in env.env_vars() {
        cmd.env(k, v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().await.expect("rp runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `n` RecordsPulled events of about 2 kB each.
async fn append(env: &TestEnv, stream: &str, n: usize) {
    let events = (0..n)
        .map(|i| {
            NewEvent::new(
                "ws-storage",
                Event::RecordsPulled(RecordsPulled {
                    sync_run_id: format!("{stream}-{i}-{}", "x".repeat(2000)),
                    ..Default::default()
                }),
            )
        })
        .collect();
    env.store
        .append(stream, ExpectedVersion::NoStream, events)
        .await
        .expect("append");
}

#[tokio::test]
async fn storage_lists_every_table_by_owner_with_the_ratio_and_the_growth() {
    let env = TestEnv::new().await;
    // A projection's tables beside the log's, as in a deployment.
    attribution::store::migrate(&env.pool)
        .await
        .expect("attribution migrations");
    append(&env, "s-1", 200).await;
    sqlx::query(
        "INSERT INTO attribution_organizations (workspace_id, organization_id, name) \
         SELECT 'ws-storage', g::text, repeat('n', 200) FROM generate_series(1, 2000) g",
    )
    .execute(&env.pool)
    .await
    .expect("projection rows");
    sqlx::query("ANALYZE")
        .execute(&env.pool)
        .await
        .expect("analyze");

    let dir = std::env::temp_dir().join(format!("rp-storage-{}", env.id));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let saved = dir.join("first.json");
    let saved_arg = saved.to_string_lossy().into_owned();

    let o = rp(&env, &["--json", "storage", "--save", &saved_arg]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    let row = |t: &str| {
        lines
            .iter()
            .find(|l| l["table"] == t)
            .unwrap_or_else(|| panic!("no row for {t}: {lines:?}"))
            .clone()
    };
    let events = row("events");
    assert_eq!(events["owner"], "event log");
    let orgs = row("attribution_organizations");
    assert_eq!(orgs["owner"], "attribution");
    assert_eq!(orgs["rows"], "2000");
    assert_eq!(row("processed_events")["owner"], "platform");
    let bytes = |v: &serde_json::Value, k: &str| -> i64 {
        v[k].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {v}"))
    };
    // Every part is counted, and the parts make the total.
    for r in lines.iter().filter(|l| l.get("table").is_some()) {
        assert_eq!(
            bytes(r, "heap") + bytes(r, "toast") + bytes(r, "indexes"),
            bytes(r, "total"),
            "{r}"
        );
    }
    assert_eq!(events["rows"], "200");
    assert!(bytes(&events, "heap") > 0, "{events}");
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["result"], "storage");
    let log = summary["event_log"].as_i64().expect("event_log");
    let attribution = summary["attribution"].as_i64().expect("attribution");
    assert!(log >= bytes(&events, "total"));
    let per_log = summary["projections_per_log"].as_f64().expect("ratio");
    let projections = summary["projections"].as_i64().expect("projections");
    assert!(projections >= attribution && attribution >= bytes(&orgs, "total"));
    assert!((per_log - projections as f64 / log as f64).abs() < 1e-9);

    // The log grows; a later measurement against the saved one says by how much.
    append(&env, "s-2", 2000).await;
    let o = rp(
        &env,
        &["--json", "storage", "--baseline", &saved.to_string_lossy()],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let later = json_lines(&o);
    let s = later.last().expect("summary");
    let growth = s["growth"].as_f64().expect("growth");
    assert_eq!(s["baseline_total"], summary["total"]);
    assert!(growth > 1.0, "{s}");
    assert!(
        later
            .iter()
            .any(|l| l["table"] == "events" && l["before"] == events["total"]),
        "{later:?}"
    );

    // For people: the owners' totals and both ratios in words.
    let o = rp(&env, &["storage", "--baseline", &saved_arg]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "OWNER",
        "event log",
        "attribution_organizations",
        "projections ÷ event log",
        "total now ÷ baseline",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }

    // Bad input: exit 2 with a sentence, never a panic.
    let missing = dir.join("nope.json");
    let o = rp(&env, &["storage", "--baseline", &missing.to_string_lossy()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot read the baseline"),
        "{}",
        stderr(&o)
    );
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"not\": \"a report\"}").expect("write");
    let o = rp(&env, &["storage", "--baseline", &garbage.to_string_lossy()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a measurement saved by `rp storage --save`"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));

    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}

#[tokio::test]
async fn storage_with_bad_configuration_says_what_is_wrong() {
    let env = TestEnv::new().await;
    // Not a postgres URL: a usage error naming the variable.
    let o = rp_with(&env, &["storage"], &[("DATABASE_URL", "mysql://x/y")]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("DATABASE_URL"), "{}", stderr(&o));
    // A server that is not there: an infrastructure error.
    let port = rp_platform::testing::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/rp?connect_timeout=2");
    let o = rp_with(&env, &["storage"], &[("DATABASE_URL", url.as_str())]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("rp: "), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    // A database without our tables: not found, with what to do.
    let empty = format!("rp_test_empty_{}", env.id);
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{empty}\"")))
        .execute(&env.pool)
        .await
        .expect("create database");
    let (head, _) = env.database_url.rsplit_once('/').expect("a database URL");
    let empty_url = format!("{head}/{empty}");
    let o = rp_with(&env, &["storage"], &[("DATABASE_URL", empty_url.as_str())]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("rp migrate"), "{}", stderr(&o));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{empty}\" WITH (FORCE)"
    )))
    .execute(&env.pool)
    .await
    .expect("drop database");
    env.cleanup().await;
}
