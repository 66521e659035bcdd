//! `make run` twice in a row (issue 11, item 8): `infra/run.sh` with `RUN_ONCE=1` (show the
//! system working, then stop everything and exit) on the debug binaries, run twice with the same
//! `.run` directory, against the test's own database, stream and ports. Both runs must exit 0;
//! the second must reuse the demo workspace and its connections and sync them again, because the
//! provider sandbox kept its grants across the restart (as a real provider does), instead of
//! refusing the connector's stored tokens and disconnecting the integrations as revoked.
//!
//! It also checks the demo's first cycle follows the help page's daily sequence: LinkedIn's Sync
//! Now finishes before HubSpot's starts.

use e2e::{bin_dir, free_port};
use rp_platform::eventlog::ReadFilter;
use rp_platform::testing::TestEnv;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How long one `make run` (start, connect, two syncs, stop) may take in a debug build.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The ports and directory one demo installation keeps between its runs.
struct Installation {
    run_dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl Installation {
    fn new(env: &TestEnv) -> Self {
        let run_dir = std::env::temp_dir().join(format!("rp-run-twice-{}", env.id));
        let addr = || format!("127.0.0.1:{}", free_port());
        let mut vars = env.env_vars();
        for (k, v) in [
            ("BIN", bin_dir().to_string_lossy().into_owned()),
            ("RUN", run_dir.to_string_lossy().into_owned()),
            ("RUN_ONCE", "1".into()),
            ("SANDBOX_ADDR", addr()),
            ("CONNECTOR_GRPC_ADDR", addr()),
            ("CONNECTOR_HTTP_ADDR", addr()),
            ("MATCHER_GRPC_ADDR", addr()),
            ("ATTRIBUTION_GRPC_ADDR", addr()),
            ("NOTIFICATION_GRPC_ADDR", addr()),
            ("WEB_ADDR", addr()),
            ("CONNECTOR_METRICS_ADDR", addr()),
            ("MATCHER_METRICS_ADDR", addr()),
            ("ATTRIBUTION_METRICS_ADDR", addr()),
            ("NOTIFICATION_METRICS_ADDR", addr()),
            // A small workspace, so that a debug build syncs it in seconds.
            ("SANDBOX_COMPANIES", "150".into()),
            ("SANDBOX_CONTACTS", "300".into()),
            ("SANDBOX_DEALS", "120".into()),
            ("SANDBOX_ORGS", "60".into()),
            ("SANDBOX_DAYS", "120".into()),
            ("CONNECTOR_PULL_POLL", "100ms".into()),
            ("CONNECTOR_PROVIDER_RETRY_DELAY", "5ms".into()),
        ] {
            vars.push((k.to_string(), v));
        }
        Self { run_dir, vars }
    }

    /// One `make run` (as `RUN_ONCE=1 infra/run.sh`): its exit status and everything it printed.
    async fn run(&self, which: &str) -> (std::process::ExitStatus, String) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("infra/run.sh")
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a run that hangs can be stopped with all it started.
            .process_group(0)
            .kill_on_drop(true);
        // Only the test's settings: nothing of a `make run` in the developer's shell.
        for k in [
            "SANDBOX_STATE_DIR",
            "CONNECTOR_TOKEN_KEYS",
            "CONNECTOR_TOKEN_KEY_ID",
            "RP_API_KEY",
            "WS",
            "RP_CONNECTOR_GRPC",
            "RP_ATTRIBUTION_GRPC",
            "RP_APP_BASE_URL",
            "RUST_LOG",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start infra/run.sh: {e}"));
        let pid = child.id();
        let out = match tokio::time::timeout(RUN_LIMIT, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("waiting for infra/run.sh: {e}"),
            Err(_) => {
                if let Some(pid) = pid {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &format!("-{pid}")])
                        .status();
                }
                panic!(
                    "the {which} run did not finish within {RUN_LIMIT:?}\n{}",
                    self.logs()
                );
            }
        };
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, printed)
    }

    /// The last lines of every service's log, for a failure message.
    fn logs(&self) -> String {
        let mut s = String::new();
        let Ok(dir) = std::fs::read_dir(self.run_dir.join("logs")) else {
            return s;
        };
        for entry in dir.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            s.push_str(&format!("--- {}\n{tail}\n", entry.path().display()));
        }
        s
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// The `rp sync-now --wait` lines of a run that report a finished sync, in order.
fn finished_syncs(printed: &str) -> Vec<&str> {
    printed
        .lines()
        .filter(|l| l.starts_with("sync ") && l.contains(": "))
        .collect()
}

/// The demo's first cycle runs LinkedIn's sync to its end, then HubSpot's.
fn assert_linkedin_then_hubspot(which: &str, printed: &str) {
    let syncs = finished_syncs(printed);
    assert_eq!(
        syncs.len(),
        2,
        "the {which} run synced each integration once: {syncs:#?}\n{printed}"
    );
    assert!(
        syncs.iter().all(|l| l.contains(" completed: ")),
        "the {which} run's syncs completed: {syncs:#?}"
    );
    assert!(
        syncs[0].contains("LinkedIn pull") && !syncs[0].contains("CRM pull"),
        "the {which} run synced LinkedIn first: {syncs:#?}"
    );
    assert!(
        syncs[1].contains("CRM pull"),
        "the {which} run synced HubSpot second: {syncs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn make_run_works_twice_in_a_row_reusing_its_workspace() {
    let env = TestEnv::new().await;
    let install = Installation::new(&env);

    let (status, first) = install.run("first").await;
    assert!(
        status.success(),
        "the first run failed ({status:?}):\n{first}\n{}",
        install.logs()
    );
    let ws = first
        .lines()
        .find_map(|l| l.strip_prefix("created demo workspace "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the first run created no demo workspace:\n{first}"))
        .to_string();
    assert_linkedin_then_hubspot("first", &first);

    let (status, second) = install.run("second").await;
    assert!(
        status.success(),
        "the second run failed ({status:?}):\n{second}\n{}",
        install.logs()
    );
    assert!(
        second.contains(&format!("demo workspace {ws} (from")),
        "the second run reused the demo workspace {ws}:\n{second}"
    );
    assert!(
        !second.contains("created demo workspace"),
        "the second run made no new workspace:\n{second}"
    );
    assert_linkedin_then_hubspot("second", &second);

    // What the event log says happened: one workspace, each integration connected once and
    // never disconnected, and each synced to completion in both runs.
    let events = env
        .store
        .read_all(
            0,
            100_000,
            &ReadFilter {
                workspace_id: Some(ws.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("reading the event log: {e}"));
    let count = |t: &str| events.iter().filter(|e| e.event_type() == t).count();
    assert_eq!(count("WorkspaceCreated"), 1);
    assert_eq!(
        count("ConnectionConnected"),
        2,
        "LinkedIn and HubSpot, once"
    );
    assert_eq!(
        count("ConnectionDisconnected"),
        0,
        "no integration was disconnected"
    );
    assert_eq!(count("ConnectionReconnected"), 0, "none had to reconnect");
    assert!(
        count("SyncCompleted") >= 4,
        "two syncs a run: {}",
        count("SyncCompleted")
    );
    let all_workspaces = env
        .store
        .read_all(
            0,
            100,
            &ReadFilter {
                event_types: vec!["WorkspaceCreated".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("reading the event log: {e}"));
    assert_eq!(all_workspaces.len(), 1, "only the one demo workspace");

    assert!(
        install.run_dir.join("sandbox").join("state.json").exists(),
        "the sandbox kept its state in the run directory"
    );
    drop(install);
    env.cleanup().await;
}
