//! Issue 17: every statement of the help page done and seen in a real browser. Starts the
//! system ([`System`]: the sandbox and the four services as processes) and the `web` edge, then
//! runs `services/web/ui/tests/browser.mjs` under Node: headless Debian Chromium driven by
//! playwright-core against the page at `http://app.test` (the services' `RP_APP_BASE_URL`, so
//! the OAuth callback and the notifications' links land on the page; Chromium resolves it to
//! the edge's port). The workspace id and API key reach the script by environment and the
//! page through its sign-in form, never a URL.
//!
//! Needs Chromium (`infra/dev-up.sh` installs it) and the page built with its npm toolchain
//! (`make web`); `make test` does both. Screenshots of every step (and axe-core's findings) go
//! to `target/web-browser/`.

use e2e::{APP, SandboxData, Sizes, System, WAIT, bin_dir, free_port};
use rp_platform::contracts::api::v1 as api;
use rp_platform::testing::{ServiceProcess, authed, eventually};
use std::path::PathBuf;
use std::time::Duration;

const PLAN: &str = "growth";

const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: false,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_page_in_a_browser_connect_sync_now_disconnected_bell_reconnect_disconnect_schedule()
 {
    let ui = repo().join("services/web/ui");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run infra/dev-up.sh (it installs Debian's chromium) or set CHROMIUM"
    );
    assert!(
        ui.join("node_modules/playwright-core").is_dir() && ui.join("dist/index.html").is_file(),
        "the page is not built: run `make web` (npm ci and the build in services/web/ui)"
    );
    let artifacts = repo().join("target/web-browser");
    std::fs::create_dir_all(&artifacts).unwrap_or_else(|e| panic!("{}: {e}", artifacts.display()));

    let s = System::start(PLAN, &SANDBOX).await;
    let port = free_port();
    let mut vars = vec![("WEB_ADDR".to_string(), format!("127.0.0.1:{port}"))];
    vars.extend(s.grpc_addrs.iter().cloned());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let web = ServiceProcess::spawn(&bin_dir().join("web").to_string_lossy(), &s.env, &vars);
    let http = reqwest::Client::new();
    eventually(WAIT, "the web edge to serve the page", || async {
        let r = http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // Another workspace (the attacker's) starts a Salesforce connect; its link is "sent" to this
    // workspace's person, whose browser follows it (the last scenario of browser.mjs).
    let attacker = s
        .rp(&[
            "--json",
            "workspaces",
            "create",
            "--name",
            "attacker",
            "--plan",
            PLAN,
        ])
        .await["workspace_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let attacker_key = s
        .rp(&[
            "--json",
            "keys",
            "create",
            "--workspace",
            &attacker,
            "--label",
            "attacker",
        ])
        .await["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let forwarded = s
        .connections
        .clone()
        .start_connect(authed(
            &attacker_key,
            api::StartConnectRequest {
                workspace_id: attacker.clone(),
                provider: api::Provider::Salesforce as i32,
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("the attacker's StartConnect: {e}"))
        .into_inner();

    let run = tokio::process::Command::new("node")
        .arg("tests/browser.mjs")
        .current_dir(&ui)
        .env("APP_URL", APP)
        .env("WEB_PORT", port.to_string())
        .env("SANDBOX_URL", s.sandbox_url())
        .env("RP_WORKSPACE", &s.workspace_id)
        .env("RP_API_KEY", s.api_key())
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .env("FORWARDED_URL", &forwarded.authorize_url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .unwrap_or_else(|_| panic!("the browser scenarios took over 10 minutes"))
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser scenarios failed ({:?}); screenshots in {}\n{stdout}\n{stderr}",
        out.status,
        artifacts.display()
    );

    // The forwarded link connected nothing in the workspace that started it either.
    let theirs = s
        .connections
        .clone()
        .get_connection(authed(
            &attacker_key,
            api::GetConnectionRequest {
                workspace_id: attacker.clone(),
                integration_id: forwarded.integration_id.clone(),
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("the attacker's GetConnection: {e}"))
        .into_inner();
    assert_eq!(
        theirs.status,
        api::ConnectionStatus::Pending as i32,
        "a connect link followed by someone else connected the workspace that started it"
    );

    let status = web.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "the web edge stops cleanly: {status:?}");
    s.stop().await;
}
