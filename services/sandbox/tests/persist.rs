//! A real provider does not forget its grants when our system restarts: with a state directory
//! the sandbox keeps its OAuth state and its clock across restarts (issue 11, item 8). Black-box,
//! over real HTTP, restarting the sandbox on the same directory.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use sandbox::{Provider, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const VERIFIER: &str = "sandbox-persist-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A state directory of the test's own, removed at the end.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sandbox-state-{}", uuid::Uuid::new_v4()));
        StateDir(dir)
    }

    fn files(&self) -> Vec<String> {
        files_in(&self.0)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn paths(p: Provider) -> (&'static str, &'static str) {
    match p {
        Provider::Linkedin => ("/oauth/v2/authorization", "/oauth/v2/accessToken"),
        Provider::Hubspot => ("/oauth/authorize", "/oauth/v1/token"),
        Provider::Salesforce => ("/services/oauth2/authorize", "/services/oauth2/token"),
    }
}

/// A user consenting: the authorization code the sandbox redirects back with.
async fn authorize(sb: &Sandbox, p: Provider) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let resp = http()
        .get(format!("{}{}", sb.url(p), paths(p).0))
        .query(&[
            ("response_type", "code"),
            ("client_id", sb.client(p).client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
            ("scope", "crm.objects.companies.read"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    loc.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap_or_else(|| panic!("no code in {loc}"))
        .to_string()
}

async fn token(sb: &Sandbox, p: Provider, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let c = sb.client(p);
    let mut f: Vec<(&str, &str)> = form.to_vec();
    f.push(("client_id", &c.client_id));
    f.push(("client_secret", &c.client_secret));
    let resp = http()
        .post(format!("{}{}", sb.url(p), paths(p).1))
        .form(&f)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn exchange(sb: &Sandbox, p: Provider, code: &str) -> (StatusCode, Value) {
    token(
        sb,
        p,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// Authorize and exchange the code: `(access_token, refresh_token)`.
async fn connect(sb: &Sandbox, p: Provider) -> (String, String) {
    let code = authorize(sb, p).await;
    let (s, body) = exchange(sb, p, &code).await;
    assert_eq!(s, StatusCode::OK, "{p}: {body}");
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn refresh(sb: &Sandbox, p: Provider, rt: &str) -> (StatusCode, Value) {
    token(
        sb,
        p,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn admin(sb: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = http()
        .request(method, format!("{}{path}", sb.admin_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn clock_ms(sb: &Sandbox) -> i64 {
    admin(sb, reqwest::Method::GET, "/clock", Value::Null).await["now_ms"]
        .as_i64()
        .unwrap()
}

async fn hubspot_companies(sb: &Sandbox, access: &str) -> StatusCode {
    http()
        .get(format!(
            "{}/crm/v3/objects/companies?limit=1",
            sb.url(Provider::Hubspot)
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn grants_tokens_codes_and_the_clock_survive_a_restart_on_the_same_state_dir() {
    let dir = StateDir::new();
    let config = SandboxConfig {
        state_dir: Some(dir.0.clone()),
        ..SandboxConfig::for_tests()
    };

    let sb = Sandbox::spawn(config.clone()).await.unwrap();
    let (_, linkedin_refresh) = connect(&sb, Provider::Linkedin).await;
    let (hubspot_access, hubspot_refresh) = connect(&sb, Provider::Hubspot).await;
    let (_, salesforce_refresh) = connect(&sb, Provider::Salesforce).await;
    // A user who consented but whose code was not exchanged yet when the sandbox stopped.
    let pending_code = authorize(&sb, Provider::Hubspot).await;
    // A revocation is part of the state too.
    admin(
        &sb,
        reqwest::Method::POST,
        "/providers/salesforce/grants/revoke",
        json!({}),
    )
    .await;
    // Five minutes later (the access tokens live an hour, the code ten minutes).
    admin(
        &sb,
        reqwest::Method::POST,
        "/clock/advance",
        json!({"seconds": 300}),
    )
    .await;
    let before = clock_ms(&sb).await;
    sb.shutdown().await;

    let files = dir.files();
    assert!(!files.is_empty(), "the state was written to {:?}", dir.0);
    assert!(
        files.iter().all(|f| !f.ends_with(".tmp")),
        "no half-written file is left: {files:?}"
    );

    let sb = Sandbox::spawn(config).await.unwrap();
    let after = clock_ms(&sb).await;
    assert!(
        after >= before,
        "the clock goes on from where it was ({before}), not from the anchor: {after}"
    );
    assert!(
        after - before < 60_000,
        "the clock did not jump ahead: {before} → {after}"
    );

    let (s, body) = refresh(&sb, Provider::Linkedin, &linkedin_refresh).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "LinkedIn's refresh token still works: {body}"
    );
    assert_eq!(
        hubspot_companies(&sb, &hubspot_access).await,
        StatusCode::OK,
        "HubSpot's access token is still live"
    );
    let (s, body) = refresh(&sb, Provider::Hubspot, &hubspot_refresh).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "HubSpot's refresh token still works: {body}"
    );
    let fresh = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(hubspot_companies(&sb, &fresh).await, StatusCode::OK);
    let (s, body) = exchange(&sb, Provider::Hubspot, &pending_code).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the pending code can be exchanged: {body}"
    );
    let (s, body) = refresh(&sb, Provider::Salesforce, &salesforce_refresh).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a revoked grant stays revoked: {body}"
    );
    let linkedin = admin(
        &sb,
        reqwest::Method::GET,
        "/providers/linkedin",
        Value::Null,
    )
    .await;
    assert_eq!(linkedin["live_grants"], 1, "{linkedin}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_change_after_the_restart_is_kept_too() {
    let dir = StateDir::new();
    let config = SandboxConfig {
        state_dir: Some(dir.0.clone()),
        ..SandboxConfig::for_tests()
    };
    let sb = Sandbox::spawn(config.clone()).await.unwrap();
    let (_, first) = connect(&sb, Provider::Hubspot).await;
    sb.shutdown().await;

    let sb = Sandbox::spawn(config.clone()).await.unwrap();
    let (_, second) = connect(&sb, Provider::Hubspot).await;
    sb.shutdown().await;

    let sb = Sandbox::spawn(config).await.unwrap();
    for rt in [&first, &second] {
        let (s, body) = refresh(&sb, Provider::Hubspot, rt).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let hubspot = admin(&sb, reqwest::Method::GET, "/providers/hubspot", Value::Null).await;
    assert_eq!(hubspot["live_grants"], 2, "{hubspot}");
    sb.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_state_file_is_set_aside_and_the_sandbox_starts_afresh() {
    let dir = StateDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("state.json"), b"{ not json").unwrap();
    let config = SandboxConfig {
        state_dir: Some(dir.0.clone()),
        ..SandboxConfig::for_tests()
    };
    let sb = Sandbox::spawn(config.clone()).await.unwrap();
    let (_, rt) = connect(&sb, Provider::Linkedin).await;
    sb.shutdown().await;
    assert!(
        dir.files()
            .iter()
            .any(|f| f.starts_with("state.json.unreadable")),
        "the unreadable file is kept for a look: {:?}",
        dir.files()
    );

    let sb = Sandbox::spawn(config).await.unwrap();
    let (s, body) = refresh(&sb, Provider::Linkedin, &rt).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    sb.shutdown().await;
}

#[tokio::test]
async fn without_a_state_dir_the_sandbox_keeps_state_in_memory_only() {
    assert_eq!(SandboxConfig::default().state_dir, None);
    assert_eq!(SandboxConfig::for_tests().state_dir, None);
    let cwd = std::env::current_dir().unwrap();
    let before = files_in(&cwd);

    let sb = Sandbox::spawn(SandboxConfig::for_tests()).await.unwrap();
    let (_, rt) = connect(&sb, Provider::Hubspot).await;
    admin(
        &sb,
        reqwest::Method::POST,
        "/clock/advance",
        json!({"seconds": 60}),
    )
    .await;
    sb.shutdown().await;
    assert_eq!(files_in(&cwd), before, "nothing was written");

    let sb = Sandbox::spawn(SandboxConfig::for_tests()).await.unwrap();
    let (s, _) = refresh(&sb, Provider::Hubspot, &rt).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a new sandbox knows no grant");
    sb.shutdown().await;
}
