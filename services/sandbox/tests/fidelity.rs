//! Issue 13: the sandbox answers as the real providers do where it used to diverge (LinkedIn's
//! version table, HubSpot's search limit, each OAuth server's PKCE and response_type rules, and
//! request forms the real APIs accept). Black-box, against the real server on port 0; time moves
//! through the sandbox clock (`POST /admin/clock/advance`), never by sleeping.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use reqwest::StatusCode;
use sandbox::{Provider, RateLimit, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const VERIFIER: &str = "fidelity-test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct T {
    sb: Sandbox,
    http: reqwest::Client,
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_path(p: Provider) -> &'static str {
    match p {
        Provider::Linkedin => "/oauth/v2/authorization",
        Provider::Hubspot => "/oauth/authorize",
        Provider::Salesforce => "/services/oauth2/authorize",
    }
}

fn token_path(p: Provider) -> &'static str {
    match p {
        Provider::Linkedin => "/oauth/v2/accessToken",
        Provider::Hubspot => "/oauth/v1/token",
        Provider::Salesforce => "/services/oauth2/token",
    }
}

/// The query pairs of a redirect's `Location`, decoded.
fn redirect_query(resp: &reqwest::Response) -> Vec<(String, String)> {
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    url_pairs(q)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

impl T {
    async fn new(config: SandboxConfig) -> T {
        let _ = rustls::crypto::ring::default_provider().install_default();
        T {
            sb: Sandbox::spawn(config).await.unwrap(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// `GET authorize` with these query pairs (client_id and redirect_uri added).
    async fn authorize_raw(&self, p: Provider, extra: &[(&str, &str)]) -> reqwest::Response {
        let c = self.sb.client(p);
        let mut q: Vec<(&str, &str)> = vec![
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "s1"),
            ("scope", "r_ads r_ads_reporting r_organization_social"),
        ];
        q.extend_from_slice(extra);
        self.http
            .get(format!("{}{}", self.sb.url(p), authorize_path(p)))
            .query(&q)
            .send()
            .await
            .unwrap()
    }

    /// Authorize and return the code (panics on anything but a code redirect).
    async fn code(&self, p: Provider, extra: &[(&str, &str)]) -> String {
        let resp = self.authorize_raw(p, extra).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{p}");
        let q = redirect_query(&resp);
        get(&q, "code")
            .unwrap_or_else(|| panic!("{p}: no code in {q:?}"))
            .to_string()
    }

    async fn token_raw(&self, p: Provider, form: &[(&str, &str)]) -> reqwest::Response {
        let c = self.sb.client(p);
        let mut f: Vec<(&str, &str)> = form.to_vec();
        f.push(("client_id", &c.client_id));
        f.push(("client_secret", &c.client_secret));
        self.http
            .post(format!("{}{}", self.sb.url(p), token_path(p)))
            .form(&f)
            .send()
            .await
            .unwrap()
    }

    async fn exchange(
        &self,
        p: Provider,
        code: &str,
        verifier: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let r = self.token_raw(p, &form).await;
        (r.status(), r.json().await.unwrap())
    }

    /// A working access token (PKCE, as a careful client sends it).
    async fn connect(&self, p: Provider) -> Value {
        let ch = challenge(VERIFIER);
        let code = self
            .code(
                p,
                &[
                    ("response_type", "code"),
                    ("code_challenge", &ch),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        let (s, body) = self.exchange(p, &code, Some(VERIFIER)).await;
        assert_eq!(s, StatusCode::OK, "{p}: {body}");
        body
    }

    async fn access(&self, p: Provider) -> String {
        self.connect(p).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn linkedin(&self, token: &str, version: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.sb.url(Provider::Linkedin), path))
            .bearer_auth(token)
            .header("LinkedIn-Version", version)
            .header("X-Restli-Protocol-Version", "2.0.0")
            .send()
            .await
            .unwrap()
    }

    async fn api(&self, p: Provider, token: &str, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.sb.url(p), path_and_query))
            .bearer_auth(token)
            .header("LinkedIn-Version", "202506")
            .send()
            .await
            .unwrap()
    }

    async fn search(&self, token: &str, object: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!(
                "{}/crm/v3/objects/{object}/search",
                self.sb.url(Provider::Hubspot)
            ))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.sb.admin_url(), path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self.http.request(m, url).json(&body).send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "{method} {path}: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    async fn advance_ms(&self, ms: i64) {
        self.admin("POST", "/clock/advance", json!({ "ms": ms }))
            .await;
    }
}

fn anchored(y: i32, m: u32, d: u32) -> SandboxConfig {
    SandboxConfig {
        anchor: NaiveDate::from_ymd_opt(y, m, d),
        ..SandboxConfig::for_tests()
    }
}

fn rate_headers(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("x-hubspot-ratelimit"))
        .collect()
}

// ---- 1. LinkedIn versions ----------------------------------------------------------------

#[tokio::test]
async fn linkedin_answers_426_for_a_version_outside_the_active_table_on_the_sandbox_clock() {
    // "Today" of the demo: 2026-12-07. Each YYYYMM version lives from the 1st of its month
    // until the 1st of the same month a year later.
    let t = T::new(anchored(2026, 12, 7)).await;
    let tok = t.access(Provider::Linkedin).await;
    let path = "/rest/adAccounts?q=search";
    for v in ["202601", "202611", "202612"] {
        let r = t.linkedin(&tok, v, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{v} is active on 2026-12-07");
    }
    for v in [
        "202512", "202501", "202001", "209912", "202701", "202613", "202600",
    ] {
        let r = t.linkedin(&tok, v, path).await;
        assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED, "{v}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(
            b,
            json!({"status": 426, "code": "NONEXISTENT_VERSION", "message": format!("Requested version {v} is not active")}),
            "{v}"
        );
    }
    // Malformed and missing still answer as before.
    let r = t.linkedin(&tok, "2026-11", path).await;
    assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
    let r = t
        .http
        .get(format!("{}{path}", t.sb.url(Provider::Linkedin)))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "VERSION_MISSING");

    // The table is read against the sandbox clock: on 2027-01-01 202601 is sunset.
    t.advance_ms(25 * 86_400_000).await;
    let tok = t.access(Provider::Linkedin).await;
    let r = t.linkedin(&tok, "202601", path).await;
    assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
    let r = t.linkedin(&tok, "202602", path).await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---- 2. HubSpot search limit -----------------------------------------------------------------

fn modified_search() -> Value {
    json!({
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        "limit": 2,
    })
}

#[tokio::test]
async fn hubspot_search_has_its_own_secondly_limit_and_no_rate_limit_headers() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: Some(RateLimit {
            max: 3,
            interval_ms: 60_000,
            daily: 1000,
        }),
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Hubspot).await;
    for i in 0..5 {
        let r = t.search(&tok, "companies", &modified_search()).await;
        assert_eq!(r.status(), StatusCode::OK, "search {i}");
        assert_eq!(rate_headers(&r), Vec::<String>::new(), "search {i}");
        assert!(r.headers().contains_key("x-hubspot-correlation-id"));
    }
    let r = t.search(&tok, "companies", &modified_search()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rate_headers(&r), Vec::<String>::new());
    let cid = r.headers()["x-hubspot-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b,
        json!({
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": cid,
            "policyName": "SECONDLY",
            "groupName": "publicapi:crm-search",
        })
    );
    // The general window saw none of the searches.
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies?limit=1")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "2");
    assert!(r.headers().contains_key("x-hubspot-correlation-id"));
    let st = t.admin("GET", "/providers/hubspot", json!(null)).await;
    assert_eq!(st["rejected"], 1, "{st}");
    assert_eq!(st["search_peak_window"], 5, "{st}");
    assert_eq!(st["peak_window"], 1, "{st}");
    assert_eq!(
        st["search_limit"],
        json!({"max": 5, "interval_ms": 1000}),
        "{st}"
    );

    // A second later (sandbox clock) the search window has rolled.
    t.advance_ms(1000).await;
    let r = t.search(&tok, "companies", &modified_search()).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Configurable with the rest of the limit.
    t.admin(
        "PUT",
        "/providers/hubspot/rate-limit",
        json!({"search_max": 2, "search_interval_ms": 500}),
    )
    .await;
    for _ in 0..2 {
        let r = t.search(&tok, "contacts", &modified_search()).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = t.search(&tok, "contacts", &modified_search()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let st = t.admin("GET", "/providers/hubspot", json!(null)).await;
    assert_eq!(st["search_limit"], json!({"max": 2, "interval_ms": 500}));
    assert_eq!(
        st["rate_limit"]["max"], 3,
        "the general limit is kept: {st}"
    );

    // Limits off: searches are not limited either.
    t.admin("DELETE", "/providers/hubspot/rate-limit", json!(null))
        .await;
    for _ in 0..8 {
        let r = t.search(&tok, "deals", &modified_search()).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

// ---- 3. OAuth strictness --------------------------------------------------------------------

#[tokio::test]
async fn linkedin_oauth_has_no_pkce_and_answers_scopes_comma_separated() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let p = Provider::Linkedin;
    // The standard 3-legged flow: no code_challenge, no code_verifier.
    let code = t.code(p, &[("response_type", "code")]).await;
    let (s, tok) = t.exchange(p, &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert_eq!(tok["scope"], "r_ads,r_ads_reporting,r_organization_social");
    // A challenge sent anyway is ignored: LinkedIn does no PKCE for web apps.
    let ch = challenge(VERIFIER);
    let with = [
        ("response_type", "code"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = t.code(p, &with).await;
    let (s, body) = t.exchange(p, &code, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let code = t.code(p, &with).await;
    let (s, body) = t.exchange(p, &code, Some(&"x".repeat(50))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A refresh keeps the comma-separated form.
    let rt = tok["refresh_token"].as_str().unwrap();
    let r = t
        .token_raw(p, &[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["scope"],
        "r_ads,r_ads_reporting,r_organization_social"
    );
    // response_type is required: LinkedIn redirects back with the error.
    for extra in [&[][..], &[("response_type", "token")][..]] {
        let r = t.authorize_raw(p, extra).await;
        assert_eq!(r.status(), StatusCode::FOUND);
        let q = redirect_query(&r);
        assert_eq!(get(&q, "error"), Some("unsupported_response_type"), "{q:?}");
        assert_eq!(get(&q, "state"), Some("s1"));
        assert!(get(&q, "code").is_none());
    }
}

#[tokio::test]
async fn hubspot_and_salesforce_enforce_pkce_only_when_a_challenge_was_sent() {
    let t = T::new(SandboxConfig::for_tests()).await;
    for p in [Provider::Hubspot, Provider::Salesforce] {
        // No challenge: no verifier needed.
        let code = t.code(p, &[("response_type", "code")]).await;
        let (s, body) = t.exchange(p, &code, None).await;
        assert_eq!(s, StatusCode::OK, "{p}: {body}");
        // A challenge: the verifier must come and match.
        let ch = challenge(VERIFIER);
        let with = [
            ("response_type", "code"),
            ("code_challenge", ch.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let code = t.code(p, &with).await;
        let (s, body) = t.exchange(p, &code, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{p}: {body}");
        let code = t.code(p, &with).await;
        let (s, body) = t.exchange(p, &code, Some(&"y".repeat(50))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{p}: {body}");
        match p {
            Provider::Salesforce => assert_eq!(
                body,
                json!({"error": "invalid_grant", "error_description": "invalid code verifier"})
            ),
            _ => assert_eq!(body["status"], "BAD_AUTH_CODE", "{body}"),
        }
        let code = t.code(p, &with).await;
        let (s, body) = t.exchange(p, &code, Some(VERIFIER)).await;
        assert_eq!(s, StatusCode::OK, "{p}: {body}");
        // Only S256 is a challenge method the sandbox models: say so, do not ignore it.
        let r = t
            .authorize_raw(
                p,
                &[
                    ("response_type", "code"),
                    ("code_challenge", VERIFIER),
                    ("code_challenge_method", "plain"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        let q = redirect_query(&r);
        assert_eq!(get(&q, "error"), Some("invalid_request"), "{p}: {q:?}");
    }
    // HubSpot's authorize URL has no response_type (client_id, scope, redirect_uri, state).
    let code = t.code(Provider::Hubspot, &[]).await;
    let (s, body) = t.exchange(Provider::Hubspot, &code, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Salesforce requires response_type=code and words its refusal its own way.
    for extra in [&[][..], &[("response_type", "token")][..]] {
        let r = t.authorize_raw(Provider::Salesforce, extra).await;
        let q = redirect_query(&r);
        assert_eq!(get(&q, "error"), Some("unsupported_response_type"), "{q:?}");
        assert_eq!(
            get(&q, "error_description"),
            Some("response type not supported")
        );
    }
    // A wrong response_type at HubSpot is refused too (the sandbox has only the code flow).
    let r = t
        .authorize_raw(Provider::Hubspot, &[("response_type", "token")])
        .await;
    let q = redirect_query(&r);
    assert!(
        get(&q, "error").is_some() && get(&q, "code").is_none(),
        "{q:?}"
    );
}

#[tokio::test]
async fn hubspot_oauth_calls_and_answers_carry_no_daily_limit_headers() {
    // "OAuth authenticated calls will not include X-HubSpot-RateLimit-Daily or
    // X-HubSpot-RateLimit-Daily-Remaining" (HubSpot changelog, "Rate limit headers will now
    // appear for OAuth authenticated calls"); every call to the sandbox is OAuth-authenticated.
    let t = T::new(SandboxConfig::for_tests()).await;
    let tok = t.access(Provider::Hubspot).await;
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies?limit=1")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        rate_headers(&r),
        [
            "x-hubspot-ratelimit-interval-milliseconds",
            "x-hubspot-ratelimit-max",
            "x-hubspot-ratelimit-remaining"
        ]
    );
    // The OAuth server's own answers carry none.
    let code = t.code(Provider::Hubspot, &[]).await;
    let r = t
        .token_raw(
            Provider::Hubspot,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rate_headers(&r), Vec::<String>::new());
    let tok: Value = r.json().await.unwrap();
    let at = tok["access_token"].as_str().unwrap();
    let r = t
        .token_raw(
            Provider::Hubspot,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tok["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rate_headers(&r), Vec::<String>::new());
    let r = t
        .http
        .get(format!(
            "{}/oauth/v1/access-tokens/{at}",
            t.sb.url(Provider::Hubspot)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rate_headers(&r), Vec::<String>::new());
    // Refused ones neither.
    let r = t
        .token_raw(
            Provider::Hubspot,
            &[("grant_type", "refresh_token"), ("refresh_token", "nope")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(rate_headers(&r), Vec::<String>::new());
}

// ---- 4. Request forms the real APIs accept ------------------------------------------------

#[tokio::test]
async fn hubspot_reads_repeated_and_comma_separated_list_params() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: None,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Hubspot).await;
    let keys = |b: &Value| -> Vec<String> {
        let mut k: Vec<String> = b["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    for q in [
        "properties=name&properties=website&properties=country",
        "properties=name,website&properties=country",
        "properties=name%2Cwebsite%2Ccountry",
    ] {
        let b: Value = t
            .api(
                Provider::Hubspot,
                &tok,
                &format!("/crm/v3/objects/companies?limit=3&{q}"),
            )
            .await
            .json()
            .await
            .unwrap();
        for r in b["results"].as_array().unwrap() {
            assert_eq!(keys(r), ["country", "name", "website"], "{q}: {r}");
        }
        let one: Value = t
            .api(
                Provider::Hubspot,
                &tok,
                &format!("/crm/v3/objects/companies/7000000001?{q}"),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(keys(&one), ["country", "name", "website"], "{q}: {one}");
    }
    // paging.next.link keeps the query: following it reads the same properties.
    let first: Value = t
        .api(
            Provider::Hubspot,
            &tok,
            "/crm/v3/objects/companies?limit=2&properties=name&properties=country",
        )
        .await
        .json()
        .await
        .unwrap();
    let link = first["paging"]["next"]["link"].as_str().unwrap();
    let base = t.sb.url(Provider::Hubspot);
    assert!(link.starts_with(&base), "{link}");
    let next: Value = t
        .api(Provider::Hubspot, &tok, &link[base.len()..])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["results"].as_array().unwrap().len(), 2, "{link}");
    for r in next["results"].as_array().unwrap() {
        assert_eq!(keys(r), ["country", "name"], "{link}: {r}");
    }
    // associations repeated: the second one is read too (and refused when not modelled).
    let r = t
        .api(
            Provider::Hubspot,
            &tok,
            "/crm/v3/objects/deals?limit=5&associations=companies&associations=tickets",
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: Value = t
        .api(
            Provider::Hubspot,
            &tok,
            "/crm/v3/objects/deals?limit=20&properties=dealname&associations=companies",
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        b["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.get("associations").is_some())
    );
    // Property history is not kept by the sandbox: HubSpot's 400, never a silent answer
    // without it, in either form.
    for q in [
        "propertiesWithHistory=name",
        "properties=name&propertiesWithHistory=name&propertiesWithHistory=website",
    ] {
        for path in [
            "/crm/v3/objects/companies",
            "/crm/v3/objects/companies/7000000001",
        ] {
            let r = t.api(Provider::Hubspot, &tok, &format!("{path}?{q}")).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}?{q}");
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["category"], "VALIDATION_ERROR");
        }
    }
}

#[tokio::test]
async fn hubspot_archived_is_a_boolean_in_any_case_and_anything_else_is_a_400() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: None,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    t.admin("DELETE", "/crm/companies/7000000004", json!(null))
        .await;
    let tok = t.access(Provider::Hubspot).await;
    for v in ["true", "True", "TRUE", "tRuE"] {
        let b: Value = t
            .api(
                Provider::Hubspot,
                &tok,
                &format!("/crm/v3/objects/companies?limit=100&archived={v}"),
            )
            .await
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = b["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["7000000004"], "archived={v}");
        let one = t
            .api(
                Provider::Hubspot,
                &tok,
                &format!("/crm/v3/objects/companies/7000000004?archived={v}"),
            )
            .await;
        assert_eq!(one.status(), StatusCode::OK, "get archived={v}");
        assert_eq!(one.json::<Value>().await.unwrap()["archived"], true);
    }
    // Following paging.next.link of an archived listing stays in the archived records.
    t.admin("DELETE", "/crm/companies/7000000007", json!(null))
        .await;
    let b: Value = t
        .api(
            Provider::Hubspot,
            &tok,
            "/crm/v3/objects/companies?limit=1&archived=True",
        )
        .await
        .json()
        .await
        .unwrap();
    let link = b["paging"]["next"]["link"].as_str().unwrap().to_string();
    let base = t.sb.url(Provider::Hubspot);
    let next: Value = t
        .api(Provider::Hubspot, &tok, &link[base.len()..])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["results"][0]["id"], "7000000007", "{link}: {next}");
    assert!(next.get("paging").is_none(), "{next}");
    for v in ["false", "False", "FALSE"] {
        let b: Value = t
            .api(
                Provider::Hubspot,
                &tok,
                &format!("/crm/v3/objects/companies?limit=100&archived={v}"),
            )
            .await
            .json()
            .await
            .unwrap();
        let results = b["results"].as_array().unwrap();
        assert!(results.len() > 1, "archived={v}");
        assert!(
            results.iter().all(|r| r["archived"] == false),
            "archived={v}"
        );
    }
    for v in ["yes", "1", "", "truee"] {
        for path in [
            "/crm/v3/objects/companies?archived=",
            "/crm/v3/objects/companies/7000000001?archived=",
        ] {
            let r = t.api(Provider::Hubspot, &tok, &format!("{path}{v}")).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}{v}");
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["status"], "error");
            assert_eq!(b["category"], "VALIDATION_ERROR");
        }
    }
}

#[tokio::test]
async fn salesforce_instance_url_is_a_bare_origin_that_serves_the_rest_api() {
    let cfg = SandboxConfig {
        salesforce_batch_size: 25,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.connect(Provider::Salesforce).await;
    let instance = tok["instance_url"].as_str().unwrap().to_string();
    assert_eq!(instance, t.sb.base_url(), "an origin, no path");
    let at = tok["access_token"].as_str().unwrap();
    let soql = "SELECT Id FROM Account";
    let mut seen = 0;
    // A trailing slash on query, as real Salesforce accepts it; then nextRecordsUrl from the
    // instance URL.
    let r = t
        .http
        .get(format!("{instance}/services/data/v60.0/query/"))
        .query(&[("q", soql)])
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut b: Value = r.json().await.unwrap();
    loop {
        seen += b["records"].as_array().unwrap().len();
        if b["done"] == true {
            break;
        }
        let next = b["nextRecordsUrl"].as_str().unwrap();
        b = t
            .http
            .get(format!("{instance}{next}"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    assert_eq!(seen, sandbox::Sizes::TINY.companies);
    // The old prefixed routes still work, trailing slash or not.
    for path in [
        "/salesforce/services/data/v60.0/query",
        "/salesforce/services/data/v60.0/query/",
        "/services/data/v60.0/query",
    ] {
        let r = t
            .http
            .get(format!("{}{path}", t.sb.base_url()))
            .query(&[("q", soql)])
            .bearer_auth(at)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // Unknown paths under the origin's /services answer in Salesforce's shape.
    let r = t
        .http
        .get(format!("{instance}/services/data/v60.0/nothing"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b[0]["errorCode"], "NOT_FOUND");
    // The request log names them Salesforce's, path as the API sees it.
    let log = t
        .admin("GET", "/requests?provider=salesforce", json!(null))
        .await;
    assert!(
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "/services/data/v60.0/query/")
    );
}

#[tokio::test]
async fn linkedin_accepts_rest_li_query_tunnelling_on_every_get_endpoint() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let tok = t.access(Provider::Linkedin).await;
    let truth = t
        .admin("GET", "/truth?include=ads,matches", json!(null))
        .await;
    let org = truth["matches"][0]["linkedin_org_id"].as_u64().unwrap();
    let campaign = truth["campaigns"][0]["id"].as_u64().unwrap();
    // A query long enough that a client must tunnel it (past 4k characters).
    let mut campaigns: Vec<String> = (0..120)
        .map(|i| format!("urn%3Ali%3AsponsoredCampaign%3A{}", 990_000_000 + i))
        .collect();
    campaigns.push(format!("urn%3Ali%3AsponsoredCampaign%3A{campaign}"));
    let analytics = format!(
        "q=statistics&pivots=List(MEMBER_COMPANY,CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:2025,month:1,day:1))&campaigns=List({})",
        campaigns.join(",")
    );
    assert!(analytics.len() > 4000);
    let cases: Vec<(String, String)> = vec![
        ("/rest/adAccounts".into(), "q=search".into()),
        ("/rest/adAccountUsers".into(), "q=authenticatedUser".into()),
        (
            "/rest/adAccounts/510000001/adCampaigns".into(),
            "q=search&start=1&count=2".into(),
        ),
        ("/rest/adAnalytics".into(), analytics),
        ("/rest/organizations".into(), format!("ids=List({org},999)")),
        (format!("/rest/organizations/{org}"), String::new()),
    ];
    for (path, query) in cases {
        let get = t.linkedin(&tok, "202506", &format!("{path}?{query}")).await;
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        let want: Value = get.json().await.unwrap();
        let post = t
            .http
            .post(format!("{}{path}", t.sb.url(Provider::Linkedin)))
            .bearer_auth(&tok)
            .header("LinkedIn-Version", "202506")
            .header("X-Restli-Protocol-Version", "2.0.0")
            .header("X-HTTP-Method-Override", "GET")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(query.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::OK, "tunnelled {path}");
        let got: Value = post.json().await.unwrap();
        assert_eq!(got, want, "tunnelled {path}");
    }
    // A tunnelled call is still checked like any other (version, token).
    let r = t
        .http
        .post(format!("{}/rest/adAccounts", t.sb.url(Provider::Linkedin)))
        .bearer_auth(&tok)
        .header("LinkedIn-Version", "202001")
        .header("X-HTTP-Method-Override", "GET")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("q=search")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
    // A POST that is not a tunnelled GET: LinkedIn's error shape, not an empty 405.
    for (override_, ct) in [
        (None, "application/x-www-form-urlencoded"),
        (Some("DELETE"), "application/x-www-form-urlencoded"),
        (Some("GET"), "application/json"),
    ] {
        let mut rb = t
            .http
            .post(format!("{}/rest/adAccounts", t.sb.url(Provider::Linkedin)))
            .bearer_auth(&tok)
            .header("LinkedIn-Version", "202506")
            .header("Content-Type", ct)
            .body("q=search");
        if let Some(o) = override_ {
            rb = rb.header("X-HTTP-Method-Override", o);
        }
        let r = rb.send().await.unwrap();
        assert!(
            r.status().is_client_error(),
            "{override_:?} {ct}: {}",
            r.status()
        );
        let b: Value = r.json().await.unwrap();
        assert!(b["status"].is_number(), "{override_:?} {ct}: {b}");
        assert!(b["message"].is_string());
    }
}

#[tokio::test]
async fn hubspot_search_implements_not_in_and_contains_token_and_refuses_the_rest() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: None,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Hubspot).await;
    let all = |filters: Value| json!({"filterGroups": [{"filters": filters}], "properties": ["dealname", "dealstage", "email", "name"], "limit": 200});
    let ids = |b: &Value| -> Vec<String> {
        let mut v: Vec<String> = b["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let everything: Value = t
        .search(
            &tok,
            "deals",
            &json!({"limit": 200, "properties": ["dealstage"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let n = everything["total"].as_u64().unwrap();
    let stages: Vec<String> = everything["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["properties"]["dealstage"].as_str().map(String::from))
        .collect();
    let first_stage = stages[0].clone();

    // NOT_IN: the complement of IN.
    let r = t
        .search(
            &tok,
            "deals",
            &all(json!([{"propertyName": "dealstage", "operator": "IN", "values": [first_stage]}])),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let inn: Value = r.json().await.unwrap();
    let r = t
        .search(&tok, "deals", &all(json!([{"propertyName": "dealstage", "operator": "NOT_IN", "values": [first_stage]}])))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let not_in: Value = r.json().await.unwrap();
    let (a, b) = (
        inn["total"].as_u64().unwrap(),
        not_in["total"].as_u64().unwrap(),
    );
    assert!(a > 0 && b > 0, "{a} {b}");
    assert_eq!(a + b, n);
    assert!(
        not_in["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["properties"]["dealstage"] != first_stage.as_str())
    );

    // CONTAINS_TOKEN: a word of the value, or a * wildcard.
    let created = t
        .admin(
            "POST",
            "/crm/companies",
            json!({"name": "Zyxwv Qorvath Holdingz", "website": "https://zyxwv.example"}),
        )
        .await;
    let zid = created["hubspot_id"].as_str().unwrap().to_string();
    for value in ["qorvath", "Qorvath", "zyx*", "*holdingz"] {
        let r = t
            .search(
                &tok,
                "companies",
                &all(
                    json!([{"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": value}]),
                ),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{value}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(ids(&b), [zid.as_str()], "{value}");
    }
    let r = t
        .search(
            &tok,
            "companies",
            &all(json!([{"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": "qorv"}])),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["total"],
        0,
        "a token, not a substring"
    );
    let r = t
        .search(&tok, "companies", &all(json!([{"propertyName": "name", "operator": "NOT_CONTAINS_TOKEN", "value": "qorvath"}])))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert!(!ids(&b).contains(&zid));

    // Two filter groups are an OR, even when the first bounds the modified time.
    let r = t
        .search(
            &tok,
            "companies",
            &json!({"filterGroups": [
                {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": "1"}]},
                {"filters": [{"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": "zyxwv"}]},
            ], "limit": 200}),
        )
        .await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(ids(&b), [zid.as_str()], "{b}");

    // What the sandbox does not implement, or a filter missing its value: HubSpot's 400.
    for f in [
        json!({"propertyName": "name", "operator": "WITHIN", "value": "1"}),
        json!({"propertyName": "name", "operator": "eq", "value": "x"}),
        json!({"propertyName": "name", "operator": "EQ"}),
        json!({"propertyName": "name", "operator": "CONTAINS_TOKEN"}),
        json!({"propertyName": "name", "operator": "IN", "values": []}),
        json!({"propertyName": "name", "operator": "NOT_IN"}),
        json!({"propertyName": "name", "operator": "BETWEEN", "value": "a"}),
    ] {
        let r = t
            .search(
                &tok,
                "companies",
                &json!({"filterGroups": [{"filters": [f.clone()]}]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{f}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["category"], "VALIDATION_ERROR", "{f}");
    }
}

#[tokio::test]
async fn hubspot_association_batch_errors_carry_hubspots_sub_category() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: None,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Hubspot).await;
    let lonely = t
        .admin(
            "POST",
            "/crm/contacts",
            json!({"first_name": "Ada", "last_name": "Alone", "email": "ada@alone.example"}),
        )
        .await;
    let lonely = lonely["hubspot_id"].as_str().unwrap().to_string();
    // A contact with a company (the first one that has one).
    let page: Value = t
        .api(
            Provider::Hubspot,
            &tok,
            "/crm/v3/objects/contacts?limit=50&associations=companies",
        )
        .await
        .json()
        .await
        .unwrap();
    let with = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("associations").is_some())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .http
        .post(format!(
            "{}/crm/v4/associations/contacts/companies/batch/read",
            t.sb.url(Provider::Hubspot)
        ))
        .bearer_auth(&tok)
        .json(&json!({"inputs": [{"id": with}, {"id": lonely}, {"id": "99999999999"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "COMPLETE");
    assert_eq!(b["results"].as_array().unwrap().len(), 1);
    assert_eq!(b["numErrors"], 2);
    for (e, id) in b["errors"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&lonely, "99999999999"])
    {
        assert_eq!(
            e,
            &json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No company is associated with contact {id}."),
                "context": {"fromObjectId": [id], "fromObjectType": ["contact"], "toObjectType": ["company"]},
            })
        );
    }
}

#[tokio::test]
async fn unknown_methods_get_the_providers_error_shape() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let hs = t.access(Provider::Hubspot).await;
    let r = t
        .http
        .delete(format!(
            "{}/crm/v3/pipelines/deals",
            t.sb.url(Provider::Hubspot)
        ))
        .bearer_auth(&hs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "error");
    let r = t
        .http
        .delete(format!(
            "{}/services/data/v60.0/query",
            t.sb.url(Provider::Salesforce)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json::<Value>().await.unwrap()[0]["errorCode"].is_string());
}
