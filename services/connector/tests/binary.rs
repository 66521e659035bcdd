//! The `connector` binary as deployed: configured from the environment, wired by main.rs. One
//! user journey (connect, sync with an expired token, revoked grant, shutdown on SIGTERM) with
//! debug logging on, then the whole log is searched for every secret that passed through:
//! access and refresh tokens, the authorization code. None may appear.

mod connector_support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use connector::domain::IntegrationId;
use connector::vault::{Cause, Vault};
use connector_support::{WAIT, key_b64, test_config};
use rp_platform::apikeys;
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::api::v1::connections_client::ConnectionsClient;
use rp_platform::contracts::events::v1::{SyncRequested, SyncTrigger, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::ids::WorkspaceId;
use rp_platform::testing::{TestEnv, eventually};
use sandbox::{Provider as SbProvider, Sandbox, SandboxConfig};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

fn authed<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

use rp_platform::testing::free_port;

#[tokio::test]
async fn the_binary_runs_a_user_journey_and_never_logs_a_secret() {
    let env = TestEnv::new().await;
    let sb = Sandbox::spawn(SandboxConfig::for_tests()).await.unwrap();
    let (grpc_port, http_port) = (free_port(), free_port());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_connector"));
    cmd.envs(env.env_vars())
        .env("RUST_LOG", "debug")
        .env("CONNECTOR_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
        .env("CONNECTOR_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("CONNECTOR_METRICS_ADDR", "127.0.0.1:0")
        .env("CONNECTOR_TOKEN_KEYS", format!("k1:{}", key_b64(7)))
        .env("CONNECTOR_TOKEN_KEY_ID", "k1")
        .env(
            "CONNECTOR_PROVIDER_CLOCK_URL",
            format!("{}/clock", sb.admin_url()),
        )
        .env("CONNECTOR_PROVIDER_RETRY_DELAY", "5ms")
        .env("CONNECTOR_PULL_POLL", "200ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (p, prefix) in [
        (SbProvider::Linkedin, "LINKEDIN"),
        (SbProvider::Hubspot, "HUBSPOT"),
        (SbProvider::Salesforce, "SALESFORCE"),
    ] {
        let c = sb.client(p);
        cmd.env(format!("{prefix}_API_BASE"), sb.url(p))
            .env(format!("{prefix}_AUTH_BASE"), sb.url(p))
            .env(format!("{prefix}_CLIENT_ID"), &c.client_id)
            .env(format!("{prefix}_CLIENT_SECRET"), &c.client_secret);
    }
    let mut child = cmd.spawn().expect("the connector binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });

    let workspace = env.create_workspace("Acme", "growth").await.as_uuid();
    let key = apikeys::issue(&env.pool, WorkspaceId::new(workspace), "t")
        .await
        .unwrap();
    let bearer = key.plaintext.clone();
    let mut grpc = eventually(WAIT, "the binary's gRPC server", || async {
        ConnectionsClient::connect(format!("http://127.0.0.1:{grpc_port}"))
            .await
            .ok()
    })
    .await;
    let started = eventually(WAIT, "StartConnect to answer", || {
        let mut g = grpc.clone();
        let r = authed(
            &bearer,
            api::StartConnectRequest {
                workspace_id: workspace.to_string(),
                provider: api::Provider::Hubspot as i32,
            },
        );
        async move { g.start_connect(r).await.ok() }
    })
    .await
    .into_inner();
    let browser = connector::providers::http_client(Duration::from_secs(10)).unwrap();
    let resp = browser.get(&started.authorize_url).send().await.unwrap();
    let callback = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with(&format!("http://127.0.0.1:{http_port}/oauth/callback?")));
    let code = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let resp = browser.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
    let page = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(page.contains("status=authorized"), "{page}");
    let completion = reqwest::Url::parse(&page)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "completion")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    grpc.complete_connect(authed(
        &bearer,
        api::CompleteConnectRequest {
            workspace_id: workspace.to_string(),
            completion,
        },
    ))
    .await
    .expect("CompleteConnect");
    let id = IntegrationId::parse(&started.integration_id).unwrap();

    // Read the vault the way the binary does (same key) to learn the secrets to look for.
    let cfg = test_config(&sb, "http://127.0.0.1:9/oauth/callback".into());
    let clients = connector::clients::Clients::new(&cfg).unwrap();
    let vault = Arc::new(Vault::new(
        env.pool.clone(),
        cfg.keys.clone(),
        clients,
        cfg.refresh_margin,
    ));
    let mut secrets = vec![code];
    secrets.push(
        vault
            .access(id, &Cause::default())
            .await
            .unwrap()
            .token
            .expose()
            .to_string(),
    );
    let refresh: Option<String> = {
        let row = connector::store::tokens(&mut env.pool.acquire().await.unwrap(), id)
            .await
            .unwrap()
            .unwrap();
        let plain = cfg.keys.open(&row.sealed, id.as_uuid().as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        v["refresh_token"].as_str().map(String::from)
    };
    secrets.push(refresh.expect("a refresh token"));

    // A sync that has to refresh (so the refresh path logs), then one after a revocation.
    let admin = |path: &str| format!("{}{path}", sb.admin_url());
    browser
        .post(admin("/tokens/expire"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let sync = |n: &str| {
        let run = format!("run-{n}-{}", Uuid::new_v4().simple());
        let e = NewEvent::new(
            workspace.to_string(),
            Event::SyncRequested(SyncRequested {
                sync_run_id: run.clone(),
                trigger: SyncTrigger::Manual as i32,
                requested_by: "t".into(),
                scheduled_for: None,
            }),
        )
        .integration(id.to_string())
        .correlation(run.clone());
        (run, e)
    };
    let (run, e) = sync("a");
    let stream = rp_platform::ids::SyncRunId::parse(&run)
        .unwrap()
        .run_stream();
    env.store
        .append(&stream, ExpectedVersion::Any, vec![e])
        .await
        .unwrap();
    eventually(WAIT, "the first sync to complete", || async {
        let events = env.store.read_stream(&stream, 1, 100).await.unwrap();
        events
            .iter()
            .any(|e| e.event_type() == "PullCompleted")
            .then_some(())
    })
    .await;
    secrets.push(
        vault
            .access(id, &Cause::default())
            .await
            .unwrap()
            .token
            .expose()
            .to_string(),
    );

    browser
        .post(admin("/providers/hubspot/grants/revoke"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let (run, e) = sync("b");
    let stream = rp_platform::ids::SyncRunId::parse(&run)
        .unwrap()
        .run_stream();
    env.store
        .append(&stream, ExpectedVersion::Any, vec![e])
        .await
        .unwrap();
    eventually(WAIT, "the revoked sync to fail", || async {
        let events = env.store.read_stream(&stream, 1, 100).await.unwrap();
        events
            .iter()
            .any(|e| e.event_type() == "SyncFailed")
            .then_some(())
    })
    .await;
    let listed = grpc
        .list_connections(authed(
            &bearer,
            api::ListConnectionsRequest {
                workspace_id: workspace.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.connections[0].status,
        api::ConnectionStatus::Disconnected as i32
    );

    // SIGTERM: a clean shutdown.
    let pid = child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    let log = format!("{}{}", out.await.unwrap(), err.await.unwrap());
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains("access token refreshed"),
        "the refresh is logged"
    );
    assert!(
        log.contains("refresh refused: disconnecting"),
        "the refusal is logged"
    );
    assert!(log.contains("pull completed"));
    for s in &secrets {
        assert!(s.len() >= 16, "a real secret");
        assert!(!log.contains(s.as_str()), "a secret leaked into the log");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn bad_configuration_stops_the_binary_with_an_error_naming_the_variable() {
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_connector"));
        cmd.env_clear();
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("runs")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONNECTOR_TOKEN_KEYS is required"), "{err}");

    let secret_looking = "k1:c2hvcnQ=";
    let out = run(&[
        ("CONNECTOR_TOKEN_KEYS", secret_looking),
        ("CONNECTOR_TOKEN_KEY_ID", "k1"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONNECTOR_TOKEN_KEYS") && err.contains("32 bytes"),
        "{err}"
    );
    assert!(!err.contains("c2hvcnQ="), "the key is not echoed: {err}");

    let key = format!("k1:{}", key_b64(1));
    let out = run(&[
        ("CONNECTOR_TOKEN_KEYS", &key),
        ("CONNECTOR_TOKEN_KEY_ID", "k1"),
        ("HUBSPOT_AUTH_BASE", "https://app.hubspot.com"),
        ("HUBSPOT_API_BASE", "https://api.hubapi.com"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HUBSPOT_CLIENT_ID is required"), "{err}");

    let out = run(&[
        ("CONNECTOR_TOKEN_KEYS", &key),
        ("CONNECTOR_TOKEN_KEY_ID", "k1"),
        ("CONNECTOR_GRPC_ADDR", "localhost"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONNECTOR_GRPC_ADDR") && err.contains("host:port"),
        "{err}"
    );
}
