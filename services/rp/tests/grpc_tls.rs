//! Issue 15.6: `rp` calls the services over TLS when given their CA (`RP_GRPC_TLS_CA`).

use attribution::api::AttributionApi;
use attribution::config::Settings;
use attribution::domain::HalfLife;
use rp_platform::apikeys;
use rp_platform::contracts::events::v1::{WorkspaceCreated, envelope::Event};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::grpc::{Services, serve};
use rp_platform::ids::WorkspaceId;
use rp_platform::plans::{DEFAULT_PLANS, Plans};
use rp_platform::testing::{TestCertificates, TestEnv};
use std::process::Output;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn rp(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rp"));
    cmd.args(args).env_remove("RP_GRPC_TLS_CA");
    for (k, v) in env.env_vars() {
        cmd.env(k, v);
    }
    cmd.envs(vars.iter().copied());
    cmd.output().await.unwrap()
}

#[tokio::test]
async fn rp_calls_a_tls_server_with_its_ca_and_never_in_plaintext() {
    let env = TestEnv::new().await;
    attribution::store::migrate(&env.pool).await.unwrap();
    let ws = Uuid::new_v4();
    env.store
        .append(
            &format!("workspace-{ws}"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                ws.to_string(),
                Event::WorkspaceCreated(WorkspaceCreated {
                    name: "Acme".into(),
                    plan: "standard".into(),
                }),
            )],
        )
        .await
        .unwrap();
    let key = apikeys::issue(&env.pool, WorkspaceId::new(ws), "test")
        .await
        .unwrap()
        .plaintext;
    let settings = Arc::new(Settings {
        plans: Plans::parse(DEFAULT_PLANS).unwrap(),
        half_life: HalfLife::days(7).unwrap(),
    });
    let certs = TestCertificates::new();
    let dir = std::env::temp_dir().join(format!("rp-tls-{}", Uuid::new_v4().simple()));
    let [ca, _, _] = certs.write_to(&dir);
    let ca = ca.to_str().unwrap();
    let cancel = CancellationToken::new();
    let serving = serve(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
        Services::new()
            .service(AttributionApi::new(env.pool.clone(), settings).into_server())
            .tls(certs.server_tls()),
    )
    .await
    .unwrap();
    let port = serving.local_addr().port();
    let https = format!("https://localhost:{port}");
    let http = format!("http://127.0.0.1:{port}");
    let ws = ws.to_string();
    let dashboard = ["dashboard", "--workspace", &ws, "--window", "30"];

    // With the CA: the server answers over TLS (a new workspace has no dashboard yet, and the
    // service says so: FAILED_PRECONDITION, exit 2).
    let ok = rp(
        &env,
        &[
            ("RP_API_KEY", &key),
            ("RP_ATTRIBUTION_GRPC", &https),
            ("RP_GRPC_TLS_CA", ca),
        ],
        &dashboard,
    )
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(ok.status.code(), Some(2), "{said}");
    assert!(said.contains("no sync has completed"), "{said}");

    // Plaintext to the TLS server: never answered (exit 1, an infrastructure error).
    let plain = rp(
        &env,
        &[("RP_API_KEY", &key), ("RP_ATTRIBUTION_GRPC", &http)],
        &dashboard,
    )
    .await;
    assert_eq!(plain.status.code(), Some(1), "{plain:?}");
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("no sync has completed"));

    // https without the CA: refused with what to set.
    let no_ca = rp(
        &env,
        &[("RP_API_KEY", &key), ("RP_ATTRIBUTION_GRPC", &https)],
        &dashboard,
    )
    .await;
    assert_eq!(no_ca.status.code(), Some(2), "{no_ca:?}");
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("RP_GRPC_TLS_CA"));

    // Another CA: the server is not trusted.
    let other = TestCertificates::new();
    let [other_ca, _, _] = other.write_to(&dir.join("other"));
    let strange = rp(
        &env,
        &[
            ("RP_API_KEY", &key),
            ("RP_ATTRIBUTION_GRPC", &https),
            ("RP_GRPC_TLS_CA", other_ca.to_str().unwrap()),
        ],
        &dashboard,
    )
    .await;
    assert_eq!(strange.status.code(), Some(1), "{strange:?}");

    cancel.cancel();
    serving.wait().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}
