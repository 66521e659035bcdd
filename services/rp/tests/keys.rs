//! `rp keys`, run as operators run it, against a real PostgreSQL: `--read-only` issues a
//! read-only key (in the log and the table) and `rp keys list` shows every key's scope.

use rp_platform::apikeys::{self, Scope};
use rp_platform::testing::{TestEnv, workspace_with_key};
use std::process::Output;

async fn rp(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    cmd.args(args);
    for (k, v) in env.env_vars() {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn keys_create_read_only_issues_a_read_only_key_and_list_shows_scopes() {
    let env = TestEnv::new().await;
    let (ws, _full) = workspace_with_key(&env, "growth").await;

    let created = json_lines(
        &rp(
            &env,
            &[
                "--json",
                "keys",
                "create",
                "--workspace",
                &ws,
                "--label",
                "screen",
                "--read-only",
            ],
        )
        .await,
    );
    assert_eq!(created[0]["result"], "key_created");
    assert_eq!(created[0]["scope"], "read_only");
    let key_id = created[0]["key_id"].as_str().unwrap().to_string();
    let human = rp(&env, &["keys", "create", "--workspace", &ws, "--read-only"]).await;
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("Created read-only API key"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );

    let listed = json_lines(&rp(&env, &["--json", "keys", "list", "--workspace", &ws]).await);
    let scope_of = |label: &str| {
        listed
            .iter()
            .find(|k| k["label"] == label)
            .map(|k| k["scope"].as_str().unwrap().to_string())
    };
    assert_eq!(scope_of("test").as_deref(), Some("full"));
    assert_eq!(scope_of("screen").as_deref(), Some("read_only"));
    let table = rp(&env, &["keys", "list", "--workspace", &ws]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.lines().next().unwrap().contains("SCOPE"), "{table}");

    let ws_id = rp_platform::ids::WorkspaceId::parse(&ws).unwrap();
    let keys = apikeys::list(&env.pool, ws_id).await.unwrap();
    let made = keys.iter().find(|k| k.key_id == key_id).unwrap();
    assert_eq!(made.scope, Scope::ReadOnly.as_str());
    env.cleanup().await;
}
