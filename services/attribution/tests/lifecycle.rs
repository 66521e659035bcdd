//! The attribution service as a process: it starts, consumes, completes its step, and shuts
//! down cleanly on SIGTERM; bad configuration stops it with a message naming the variable.

use chrono::SubsecRound;
use rp_platform::contracts::events::v1::{AccountsMatched, envelope::Event};
use rp_platform::contracts::{from_timestamp, timestamp};
use rp_platform::eventlog::{ExpectedVersion, NewEvent};
use rp_platform::testing::{ServiceProcess, TestEnv, eventually, wait_for_consumer};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_attribution");

#[tokio::test]
async fn starts_handles_its_step_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new().await;
    // Port 0: tests run in parallel; the gRPC API is tested in-process elsewhere.
    let svc = ServiceProcess::spawn(BIN, &env, &[("ATTRIBUTION_GRPC_ADDR", "127.0.0.1:0")]);
    wait_for_consumer(&env, "attribution-p0", Duration::from_secs(60)).await;

    let matched = NewEvent::new(
        "ws-1",
        Event::AccountsMatched(AccountsMatched {
            sync_run_id: "run-1".into(),
            ..Default::default()
        }),
    )
    .correlation("run-1");
    env.store
        .append("syncrun-run-1", ExpectedVersion::Any, vec![matched])
        .await
        .unwrap();
    // The service's own relay publishes it; its consumer completes the attribution step.
    let updated = eventually(Duration::from_secs(30), "AttributionUpdated", || async {
        let events = env.store.read_stream("syncrun-run-1", 1, 10).await.unwrap();
        events
            .into_iter()
            .find(|e| e.event_type() == "AttributionUpdated")
    })
    .await;
    assert_eq!(updated.meta().correlation_id, "run-1");
    // The numbers are as of the event that completed the matching step, not the wall clock.
    let Some(Event::AttributionUpdated(u)) = updated.event() else {
        panic!("not AttributionUpdated: {updated:?}");
    };
    let matched_at = env.store.read_stream("syncrun-run-1", 1, 1).await.unwrap()[0]
        .meta()
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap();
    // To the microsecond, as the projection keeps it (and the API serves it).
    assert_eq!(u.as_of, Some(timestamp(matched_at.trunc_subsecs(6))));

    let status = svc.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_malformed_setting_stops_startup_naming_the_variable() {
    let env = TestEnv::new().await;
    let out = tokio::process::Command::new(BIN)
        .env("DATABASE_URL", env.database_url.clone())
        .env("RP_BUS_PARTITIONS", "many")
        .env("ATTRIBUTION_GRPC_ADDR", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RP_BUS_PARTITIONS"), "{err}");
    for (var, value) in [
        ("ATTRIBUTION_HALF_LIFE_DAYS", "0"),
        ("ATTRIBUTION_HALF_LIFE_DAYS", "a week"),
        ("ATTRIBUTION_GRPC_ADDR", "nowhere"),
        ("RP_PLANS", "growth"),
    ] {
        let out = tokio::process::Command::new(BIN)
            .env("DATABASE_URL", env.database_url.clone())
            .env(var, value)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}={value}: {err}");
    }
    env.cleanup().await;
}
