//! The matcher as a process: starts, consumes, serves, stops cleanly on SIGTERM.

use rp_platform::testing::{ServiceProcess, TestEnv, wait_for_consumer};
use std::time::Duration;

#[tokio::test]
async fn starts_consumes_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new().await;
    let svc = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_matcher"),
        &env,
        &[("MATCHER_GRPC_ADDR", "127.0.0.1:0")],
    );
    wait_for_consumer(&env, "matcher-p0", Duration::from_secs(60)).await;
    let status = svc.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    env.cleanup().await;
}
