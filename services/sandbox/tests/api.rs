//! Black-box tests: start a sandbox on port 0, speak HTTP to it like a provider client would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use sandbox::{Provider, Sandbox, SandboxConfig, Sizes};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const VERIFIER: &str = "sandbox-test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct T {
    sb: Sandbox,
    http: reqwest::Client,
}

impl T {
    async fn new(config: SandboxConfig) -> T {
        T {
            sb: Sandbox::spawn(config).await.unwrap(),
            http: http(),
        }
    }

    fn paths(p: Provider) -> (&'static str, &'static str) {
        match p {
            Provider::Linkedin => ("/oauth/v2/authorization", "/oauth/v2/accessToken"),
            Provider::Hubspot => ("/oauth/authorize", "/oauth/v1/token"),
            Provider::Salesforce => ("/services/oauth2/authorize", "/services/oauth2/token"),
        }
    }

    /// Authorize and return the redirect's query pairs.
    async fn authorize(&self, p: Provider, verifier: &str) -> Vec<(String, String)> {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let c = self.sb.client(p);
        let resp = self
            .http
            .get(format!("{}{}", self.sb.url(p), Self::paths(p).0))
            .query(&[
                ("response_type", "code"),
                ("client_id", c.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("state", "st 1"),
                ("scope", "r_ads r_ads_reporting"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let q = loc.split_once('?').unwrap().1;
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.replace("%20", " "))
            })
            .collect()
    }

    async fn token(&self, p: Provider, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let c = self.sb.client(p);
        let mut f: Vec<(&str, &str)> = form.to_vec();
        f.push(("client_id", &c.client_id));
        f.push(("client_secret", &c.client_secret));
        let resp = self
            .http
            .post(format!("{}{}", self.sb.url(p), Self::paths(p).1))
            .form(&f)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    async fn connect(&self, p: Provider) -> Value {
        let q = self.authorize(p, VERIFIER).await;
        let code = q.iter().find(|(k, _)| k == "code").unwrap().1.clone();
        let (s, body) = self
            .token(
                p,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }

    async fn access(&self, p: Provider) -> String {
        self.connect(p).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn api(&self, p: Provider, token: &str, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.sb.url(p), path_and_query))
            .bearer_auth(token)
            .header("LinkedIn-Version", "202501")
            .header("X-Restli-Protocol-Version", "2.0.0")
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
}

#[tokio::test]
async fn oauth_code_flow_with_pkce_in_each_providers_shape() {
    let t = T::new(SandboxConfig::for_tests()).await;
    for p in Provider::ALL {
        let q = t.authorize(p, VERIFIER).await;
        assert!(q.iter().any(|(k, v)| k == "state" && v == "st 1"));
        let code = q.iter().find(|(k, _)| k == "code").unwrap().1.clone();
        // Wrong verifier: refused, and the code is burnt (LinkedIn does no PKCE: a challenge
        // sent anyway is ignored; tests/fidelity.rs has its flow).
        if p == Provider::Linkedin {
            let (s, body) = t
                .token(
                    p,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", "x".repeat(50).as_str()),
                    ],
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{p}: {body}");
        } else {
            let (s, body) = t
                .token(
                    p,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", "x".repeat(50).as_str()),
                    ],
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{p}: {body}");
            let (s, _) = t
                .token(
                    p,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", VERIFIER),
                    ],
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{p}: codes are single-use");
        }

        let tok = t.connect(p).await;
        assert!(tok["access_token"].is_string());
        match p {
            Provider::Linkedin => {
                assert!(tok["expires_in"].as_i64().unwrap() > 0);
                assert!(tok["refresh_token_expires_in"].as_i64().unwrap() > 0);
                assert_eq!(tok["scope"], "r_ads,r_ads_reporting");
            }
            Provider::Hubspot => assert_eq!(tok["token_type"], "bearer"),
            Provider::Salesforce => {
                assert!(tok.get("expires_in").is_none());
                assert_eq!(tok["token_type"], "Bearer");
                assert_eq!(tok["instance_url"], t.sb.url(Provider::Salesforce));
                assert!(tok["issued_at"].as_str().unwrap().parse::<i64>().is_ok());
            }
        }
        let rt = tok["refresh_token"].as_str().unwrap().to_string();
        let (s, refreshed) = t
            .token(
                p,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_ne!(refreshed["access_token"], tok["access_token"]);
        match p {
            Provider::Salesforce => assert!(refreshed.get("refresh_token").is_none()),
            _ => assert_eq!(refreshed["refresh_token"], rt.as_str()),
        }
    }
}

#[tokio::test]
async fn rotation_deny_expiry_and_revocation() {
    let t = T::new(SandboxConfig::for_tests()).await;
    // Rotation: a new refresh token each time; the old one is refused.
    t.admin(
        "PUT",
        "/providers/hubspot/refresh-rotation",
        json!({"enabled": true}),
    )
    .await;
    let tok = t.connect(Provider::Hubspot).await;
    let rt = tok["refresh_token"].as_str().unwrap().to_string();
    let (_, r) = t
        .token(
            Provider::Hubspot,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
    assert_ne!(r["refresh_token"], rt.as_str());
    let (s, e) = t
        .token(
            Provider::Hubspot,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(e["message"], "missing or unknown refresh token");
    assert!(e["correlationId"].is_string());

    // Deny.
    t.admin("POST", "/providers/linkedin/deny-next-authorize", json!({}))
        .await;
    let q = t.authorize(Provider::Linkedin, VERIFIER).await;
    assert!(
        q.iter()
            .any(|(k, v)| k == "error" && v == "user_cancelled_authorize")
    );
    assert!(q.iter().any(|(k, _)| k == "state"));

    // Expiry, per provider shape.
    let li = t.access(Provider::Linkedin).await;
    let hs = t.access(Provider::Hubspot).await;
    let sf = t.access(Provider::Salesforce).await;
    t.admin("POST", "/tokens/expire", json!({})).await;
    t.admin("POST", "/clock/advance", json!({"seconds": 180}))
        .await;
    let r = t
        .api(Provider::Linkedin, &li, "/rest/adAccounts?q=search")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "EXPIRED_ACCESS_TOKEN");
    assert_eq!(b["serviceErrorCode"], 65600);
    let r = t
        .api(Provider::Hubspot, &hs, "/crm/v3/objects/companies")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["category"], "EXPIRED_AUTHENTICATION");
    assert_eq!(
        b["message"],
        "The OAuth token used to make this call expired 3 minute(s) ago."
    );
    let r = t
        .api(
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/query?q=SELECT+Id+FROM+Account",
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b[0]["errorCode"], "INVALID_SESSION_ID");

    // Revocation: the access token says revoked, the refresh is refused.
    let tok = t.connect(Provider::Linkedin).await;
    t.admin("POST", "/providers/linkedin/grants/revoke", json!({}))
        .await;
    let r = t
        .api(
            Provider::Linkedin,
            tok["access_token"].as_str().unwrap(),
            "/rest/adAccounts?q=search",
        )
        .await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "REVOKED_ACCESS_TOKEN");
    assert_eq!(b["serviceErrorCode"], 65601);
    let (s, e) = t
        .token(
            Provider::Linkedin,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tok["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "invalid_grant");
    let sft = t.connect(Provider::Salesforce).await;
    t.admin("POST", "/providers/salesforce/grants/revoke", json!({}))
        .await;
    let (s, e) = t
        .token(
            Provider::Salesforce,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", sft["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        e,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
}

#[tokio::test]
async fn hubspot_lists_page_through_everything_and_search_is_capped() {
    let cfg = SandboxConfig {
        hubspot_search_cap: 50,
        hubspot_rate_limit: None,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Hubspot).await;
    let mut after: Option<String> = None;
    let mut ids = Vec::new();
    loop {
        let mut path = "/crm/v3/objects/deals?limit=7&properties=dealname,amount,deal_currency_code,dealstage,pipeline&associations=companies".to_string();
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let r = t.api(Provider::Hubspot, &tok, &path).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-hubspot-ratelimit-max").is_none());
        let b: Value = r.json().await.unwrap();
        for d in b["results"].as_array().unwrap() {
            ids.push(d["id"].as_str().unwrap().to_string());
            assert_eq!(d["archived"], false);
            assert!(d["properties"]["dealname"].is_string());
            if let Some(a) = d.get("associations") {
                assert_eq!(a["companies"]["results"][0]["type"], "deal_to_company");
            }
        }
        match b.get("paging") {
            Some(p) => after = Some(p["next"]["after"].as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), Sizes::TINY.deals);
    ids.dedup();
    assert_eq!(ids.len(), Sizes::TINY.deals);

    // Search: contacts modified since epoch, ascending; past the cap is a 400.
    let search = |after: usize| {
        json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email"],
            "limit": 100,
            "after": after.to_string(),
        })
    };
    let url = format!(
        "{}/crm/v3/objects/contacts/search",
        t.sb.url(Provider::Hubspot)
    );
    let r = t
        .http
        .post(&url)
        .bearer_auth(&tok)
        .json(&search(0))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["total"], Sizes::TINY.contacts);
    assert_eq!(b["results"].as_array().unwrap().len(), 100);
    let times: Vec<&str> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["hs_lastmodifieddate"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let r = t
        .http
        .post(&url)
        .bearer_auth(&tok)
        .json(&search(50))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["category"], "VALIDATION_ERROR");
    // Bad JSON body: HubSpot's error shape, not a panic.
    let r = t
        .http
        .post(&url)
        .bearer_auth(&tok)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "error");

    // Pipelines.
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/pipelines/deals")
        .await;
    let b: Value = r.json().await.unwrap();
    let stages = b["results"][0]["stages"].as_array().unwrap();
    assert!(
        stages
            .iter()
            .any(|s| s["metadata"]["isClosed"] == "true" && s["metadata"]["probability"] == "1.0")
    );
}

#[tokio::test]
async fn hubspot_rate_limit_answers_429_with_headers() {
    let cfg = SandboxConfig {
        hubspot_rate_limit: Some(sandbox::RateLimit {
            max: 3,
            interval_ms: 60_000,
            daily: 1000,
        }),
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Hubspot).await;
    for remaining in [2, 1, 0] {
        let r = t
            .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies")
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-hubspot-ratelimit-max"], "3");
        assert_eq!(
            r.headers()["x-hubspot-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
        assert_eq!(
            r.headers()["x-hubspot-ratelimit-interval-milliseconds"],
            "60000"
        );
    }
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(b["errorType"], "RATE_LIMIT");
    let st = t.admin("GET", "/providers/hubspot", json!(null)).await;
    assert_eq!(st["rejected"], 1);
    assert_eq!(st["peak_window"], 3);
}

#[tokio::test]
async fn salesforce_soql_batches_errors_and_limits() {
    let cfg = SandboxConfig {
        salesforce_batch_size: 40,
        salesforce_daily_limit: Some(50),
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Salesforce).await;
    let soql = "SELECT Id, Name, Website, BillingCountry, SystemModstamp FROM Account WHERE SystemModstamp >= 2000-01-01T00:00:00Z ORDER BY SystemModstamp ASC, Id ASC";
    let r = t
        .http
        .get(format!(
            "{}/services/data/v60.0/query",
            t.sb.url(Provider::Salesforce)
        ))
        .query(&[("q", soql)])
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["sforce-limit-info"]
            .to_str()
            .unwrap()
            .starts_with("api-usage=1/50")
    );
    let mut b: Value = r.json().await.unwrap();
    let mut seen = Vec::new();
    loop {
        assert_eq!(b["totalSize"], Sizes::TINY.companies);
        for rec in b["records"].as_array().unwrap() {
            assert_eq!(rec["attributes"]["type"], "Account");
            let id = rec["Id"].as_str().unwrap();
            assert_eq!(id.len(), 18);
            assert!(id.starts_with("001"));
            seen.push(rec["SystemModstamp"].as_str().unwrap().to_string());
        }
        if b["done"] == true {
            break;
        }
        let next = b["nextRecordsUrl"].as_str().unwrap().to_string();
        assert!(next.starts_with("/services/data/v60.0/query/"));
        b = t
            .api(Provider::Salesforce, &tok, &next)
            .await
            .json()
            .await
            .unwrap();
    }
    assert_eq!(seen.len(), Sizes::TINY.companies);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));

    for (q, code) in [
        ("SELECT Id FROM Account WHERE Name = 'x'", "MALFORMED_QUERY"),
        ("SELECT Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
        ("SELECT Id FROM Account LIMIT", "MALFORMED_QUERY"),
    ] {
        let r = t
            .http
            .get(format!(
                "{}/services/data/v60.0/query",
                t.sb.url(Provider::Salesforce)
            ))
            .query(&[("q", q)])
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b[0]["errorCode"], code, "{q}");
    }

    // Exhaust the daily limit.
    let mut last = StatusCode::OK;
    for _ in 0..60 {
        last = t
            .api(
                Provider::Salesforce,
                &tok,
                "/services/data/v60.0/query?q=SELECT+Id+FROM+OpportunityStage",
            )
            .await
            .status();
        if last != StatusCode::OK {
            break;
        }
    }
    assert_eq!(last, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn linkedin_analytics_truncates_and_organizations_batch() {
    let cfg = SandboxConfig {
        linkedin_analytics_cap: 25,
        ..SandboxConfig::for_tests()
    };
    let t = T::new(cfg).await;
    let tok = t.access(Provider::Linkedin).await;
    let q = "/rest/adAnalytics?q=statistics&pivots=List(MEMBER_COMPANY,CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:2025,month:1,day:1),end:(year:2025,month:6,day:29))&accounts=List(urn%3Ali%3AsponsoredAccount%3A510000001,urn%3Ali%3AsponsoredAccount%3A510000002)&fields=impressions,clicks,totalEngagements,dateRange,pivotValues";
    let r = t.api(Provider::Linkedin, &tok, q).await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    let els = b["elements"].as_array().unwrap();
    assert_eq!(els.len(), 25, "truncated at the cap");
    let e = &els[0];
    assert!(
        e["pivotValues"][0]
            .as_str()
            .unwrap()
            .starts_with("urn:li:organization:")
    );
    assert!(
        e["pivotValues"][1]
            .as_str()
            .unwrap()
            .starts_with("urn:li:sponsoredCampaign:")
    );
    assert_eq!(e["dateRange"]["start"], e["dateRange"]["end"]);
    assert!(e["impressions"].as_u64().unwrap() > 0);

    // Missing version header.
    let r = t
        .http
        .get(format!(
            "{}/rest/adAccounts?q=search",
            t.sb.url(Provider::Linkedin)
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Bad Rest.li syntax.
    let r = t
        .api(
            Provider::Linkedin,
            &tok,
            "/rest/adAnalytics?q=statistics&pivots=List(MEMBER_COMPANY&timeGranularity=DAILY",
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], 400);

    let truth = t.admin("GET", "/truth?include=matches", json!(null)).await;
    let org = truth["matches"][0]["linkedin_org_id"].as_u64().unwrap();
    let r = t
        .api(
            Provider::Linkedin,
            &tok,
            &format!("/rest/organizations?ids=List({org},999)"),
        )
        .await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["statuses"][org.to_string()], 200);
    assert_eq!(b["statuses"]["999"], 404);
    assert!(b["errors"]["999"].is_object());
    assert!(b["results"][org.to_string()]["localizedName"].is_string());
    let ids: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let r = t
        .api(
            Provider::Linkedin,
            &tok,
            &format!("/rest/organizations?ids=List({})", ids.join(",")),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_mutations_log_outage_and_malformed() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let tok = t.access(Provider::Hubspot).await;
    let before = t.admin("GET", "/clock", json!(null)).await["now_ms"]
        .as_i64()
        .unwrap();
    let c = t
        .admin(
            "PATCH",
            "/crm/companies/7000000001",
            json!({"website": "https://new.example.com"}),
        )
        .await;
    assert_eq!(c["domain"], "new.example.com");
    let cleared = t
        .admin(
            "PATCH",
            "/crm/companies/7000000002",
            json!({"website": null}),
        )
        .await;
    assert!(cleared["website"].is_null() && cleared["domain"].is_null());
    assert!(cleared["name"].is_string(), "absent fields are kept");
    let created = t
        .admin(
            "POST",
            "/crm/deals",
            json!({"name": "Fresh", "amount": "1200.50", "currency": "EUR", "company_id": "7000000001", "stage": "closedwon"}),
        )
        .await;
    assert!(
        created["salesforce_id"]
            .as_str()
            .unwrap()
            .starts_with("006")
    );
    t.admin("DELETE", "/requests", json!(null)).await;
    let body = json!({
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": before.to_string()}]}],
        "properties": ["name", "domain"], "limit": 100,
    });
    let r = t
        .http
        .post(format!(
            "{}/crm/v3/objects/companies/search",
            t.sb.url(Provider::Hubspot)
        ))
        .bearer_auth(&tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["total"], 2);
    assert!(
        b["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["properties"]["domain"] == "new.example.com")
    );
    let log = t
        .admin("GET", "/requests?provider=hubspot", json!(null))
        .await;
    let reqs = log["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], "/crm/v3/objects/companies/search");
    assert_eq!(reqs[0]["method"], "POST");
    assert_eq!(reqs[0]["status"], 200);

    t.admin("PUT", "/providers/hubspot/outage", json!({"mode": "503"}))
        .await;
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies")
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    t.admin("DELETE", "/providers/hubspot/outage", json!(null))
        .await;
    t.admin("POST", "/providers/hubspot/malformed", json!({"count": 1}))
        .await;
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.is_err());
    let r = t
        .api(Provider::Hubspot, &tok, "/crm/v3/objects/companies")
        .await;
    assert!(r.json::<Value>().await.is_ok());
}

#[tokio::test]
async fn truth_links_linkedin_orgs_to_both_crms() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let truth = t.admin("GET", "/truth", json!(null)).await;
    let matches = truth["matches"].as_array().unwrap();
    assert_eq!(matches.len(), Sizes::TINY.engaged_orgs);
    for m in matches {
        match m["match"].as_str() {
            Some("domain") => {
                let d = m["domain"].as_str().unwrap();
                let crm = m["crm_website"].as_str().unwrap().to_lowercase();
                let li = m["linkedin_website"].as_str().unwrap().to_lowercase();
                assert!(crm.contains(d) && li.contains(d), "{m}");
                assert!(
                    m["salesforce_account_id"]
                        .as_str()
                        .unwrap()
                        .starts_with("001")
                );
            }
            Some("name") => assert!(m["crm_website"].is_null()),
            None => assert!(m["hubspot_company_id"].is_null()),
            other => panic!("{other:?}"),
        }
    }
    assert!(!truth["engagement"].as_array().unwrap().is_empty());
    assert_eq!(truth["deals"].as_array().unwrap().len(), Sizes::TINY.deals);
}

#[tokio::test]
async fn bad_input_gets_the_providers_error_shape_never_a_5xx() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let li = t.access(Provider::Linkedin).await;
    let hs = t.access(Provider::Hubspot).await;
    let sf = t.access(Provider::Salesforce).await;
    let gets: Vec<(Provider, &str, &str)> = vec![
        (Provider::Linkedin, &li, "/rest/adAccounts"),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAccounts?q=search&start=-1",
        ),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAccounts?q=search&search=(status:",
        ),
        (Provider::Linkedin, &li, "/rest/adAnalytics"),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAnalytics?q=statistics&pivots=List(FOO)&timeGranularity=DAILY",
        ),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAnalytics?q=statistics&pivots=List(CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:99999999999,month:1,day:1))&accounts=List(urn%3Ali%3AsponsoredAccount%3A1)",
        ),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAnalytics?q=statistics&pivots=List(CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:2025,month:13,day:1))&accounts=List(urn%3Ali%3AsponsoredAccount%3A1)",
        ),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAnalytics?q=statistics&pivots=List(CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:2025,month:2,day:1),end:(year:2025,month:1,day:1))&accounts=List(urn%3Ali%3AsponsoredAccount%3A1)",
        ),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAnalytics?q=statistics&pivots=List(CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:2025,month:1,day:1))&accounts=List(123)",
        ),
        (
            Provider::Linkedin,
            &li,
            "/rest/adAnalytics?q=statistics&pivots=List(CAMPAIGN)&timeGranularity=DAILY&dateRange=(start:(year:2025,month:1,day:1))&accounts=List(urn%3Ali%3AsponsoredAccount%3A1)&fields=spend",
        ),
        (Provider::Linkedin, &li, "/rest/organizations?ids=List(abc)"),
        (Provider::Linkedin, &li, "/rest/organizations?ids=%ZZ"),
        (Provider::Linkedin, &li, "/rest/organizations/abc"),
        (Provider::Linkedin, &li, "/rest/nothing"),
        (Provider::Hubspot, &hs, "/crm/v3/objects/widgets"),
        (
            Provider::Hubspot,
            &hs,
            "/crm/v3/objects/companies?limit=1000",
        ),
        (
            Provider::Hubspot,
            &hs,
            "/crm/v3/objects/companies?after=xyz",
        ),
        (
            Provider::Hubspot,
            &hs,
            "/crm/v3/objects/companies?associations=tickets",
        ),
        (Provider::Hubspot, &hs, "/crm/v3/objects/companies/123"),
        (Provider::Hubspot, &hs, "/crm/v3/pipelines/widgets"),
        (Provider::Salesforce, &sf, "/services/data/v60.0/query"),
        (
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/query?q=SELECT",
        ),
        (
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/query?q=SELECT+Id+FROM+Account+WHERE+SystemModstamp+%3E%3D+2025-13-45T99:00:00Z",
        ),
        (
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/query?q=SELECT+Id+FROM+Account+LIMIT+99999999999999999999999",
        ),
        (
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/query/nonsense",
        ),
        (
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/query/01gDn0000000001-abc",
        ),
        (
            Provider::Salesforce,
            &sf,
            "/services/data/banana/query?q=SELECT+Id+FROM+Account",
        ),
    ];
    for (p, tok, path) in gets {
        let r = t.api(p, tok, path).await;
        let status = r.status();
        assert!(status.is_client_error(), "{p} {path}: {status}");
        let body: Value = r
            .json()
            .await
            .unwrap_or_else(|_| panic!("{p} {path}: JSON body"));
        match p {
            Provider::Linkedin => assert!(body["status"].is_number(), "{path}: {body}"),
            Provider::Hubspot => assert_eq!(body["status"], "error", "{path}: {body}"),
            Provider::Salesforce => assert!(body[0]["errorCode"].is_string(), "{path}: {body}"),
        }
    }
    // Bad bodies (limits off: seven searches within a second are over HubSpot's search limit).
    t.admin("DELETE", "/providers/hubspot/rate-limit", json!(null))
        .await;
    let url = format!(
        "{}/crm/v3/objects/deals/search",
        t.sb.url(Provider::Hubspot)
    );
    for body in [
        "",
        "[]",
        r#"{"limit": -1}"#,
        r#"{"limit": 500}"#,
        r#"{"after": "x"}"#,
        r#"{"filterGroups":[{"filters":[{"propertyName":"hs_lastmodifieddate","operator":"WITHIN","value":"1"}]}]}"#,
        r#"{"filterGroups":[{"filters":[{"propertyName":"hs_lastmodifieddate","operator":"GTE","value":"yesterday"}]}]}"#,
    ] {
        let r = t
            .http
            .post(&url)
            .bearer_auth(&hs)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let r = t
        .http
        .post(format!("{}/oauth/v1/token", t.sb.url(Provider::Hubspot)))
        .body("grant_type=authorization_code")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a non-form body");
    let r = t
        .http
        .get(format!(
            "{}/oauth/v2/authorization?client_id=nobody&redirect_uri=x",
            t.sb.url(Provider::Linkedin)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Admin input.
    for (m, path, body) in [
        ("POST", "/clock/advance", "{\"seconds\": 99999999999999999}"),
        ("PUT", "/providers/nowhere/outage", "{\"mode\":\"503\"}"),
        (
            "PUT",
            "/providers/hubspot/outage",
            "{\"mode\":\"sometimes\"}",
        ),
        ("POST", "/crm/deals", "{\"amount\":\"12,5\"}"),
        ("POST", "/crm/deals", "{\"stage\":\"nope\"}"),
        ("PATCH", "/crm/companies/1", "{}"),
        ("POST", "/crm/contacts", "{\"company_id\":\"missing\"}"),
        (
            "POST",
            "/linkedin/engagement",
            "{\"rows\":[{\"date\":\"2025-01-01\",\"org_id\":1,\"campaign_id\":1,\"impressions\":1,\"clicks\":0,\"engagements\":0}]}",
        ),
    ] {
        let r = t
            .http
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                format!("{}{}", t.sb.admin_url(), path),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error() || (path == "/clock/advance" && r.status().is_success()),
            "{m} {path}: {}",
            r.status()
        );
    }
    let clock: Value = t
        .http
        .get(format!("{}/clock", t.sb.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(clock["now"].as_str().unwrap().starts_with("9999-"));
}

#[tokio::test]
async fn deleted_records_are_listed_in_each_crms_shape() {
    let t = T::new(SandboxConfig::for_tests()).await;
    let gone = t
        .admin("DELETE", "/crm/companies/7000000003", json!(null))
        .await;
    assert_eq!(gone["archived"], true);
    let sf_id = gone["salesforce_id"].as_str().unwrap().to_string();

    // HubSpot: the archived list has it, with archivedAt; the normal list does not.
    let hs = t.access(Provider::Hubspot).await;
    let r: Value = t
        .api(
            Provider::Hubspot,
            &hs,
            "/crm/v3/objects/companies?archived=true&limit=100",
        )
        .await
        .json()
        .await
        .unwrap();
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{r}");
    assert_eq!(results[0]["id"], "7000000003");
    assert_eq!(results[0]["archived"], true);
    assert_eq!(results[0]["archivedAt"], gone["modified"]);
    let live: Value = t
        .api(
            Provider::Hubspot,
            &hs,
            "/crm/v3/objects/companies?limit=100",
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        live["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "7000000003" && c.get("archivedAt").is_none())
    );

    // Salesforce: getDeleted over a range that holds the deletion.
    let sf = t.access(Provider::Salesforce).await;
    let now = chrono::DateTime::parse_from_rfc3339(gone["modified"].as_str().unwrap()).unwrap();
    let iso = |d: chrono::Duration| (now + d).to_rfc3339();
    let url = |start: &str, end: &str| {
        format!(
            "/services/data/v60.0/sobjects/Account/deleted/?start={}&end={}",
            start.replace('+', "%2B"),
            end.replace('+', "%2B")
        )
    };
    let minute = chrono::Duration::minutes(1);
    let r = t
        .api(Provider::Salesforce, &sf, &url(&iso(-minute), &iso(minute)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    let recs = b["deletedRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{b}");
    assert_eq!(recs[0]["id"], sf_id.as_str());
    assert!(recs[0]["deletedDate"].as_str().unwrap().ends_with("+0000"));
    assert!(b["earliestDateAvailable"].is_string() && b["latestDateCovered"].is_string());
    // A range before the deletion has none.
    let b: Value = t
        .api(
            Provider::Salesforce,
            &sf,
            &url(&iso(-minute * 10), &iso(-minute)),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["deletedRecords"], json!([]));
    // Out of range or backwards: INVALID_REPLICATION_DATE, never a 5xx.
    for (s, e) in [
        (iso(-chrono::Duration::days(31)), iso(minute)),
        (iso(minute), iso(-minute)),
        ("yesterday".to_string(), iso(minute)),
    ] {
        let r = t.api(Provider::Salesforce, &sf, &url(&s, &e)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b[0]["errorCode"], "INVALID_REPLICATION_DATE", "{b}");
    }
    let r = t
        .api(
            Provider::Salesforce,
            &sf,
            "/services/data/v60.0/sobjects/Lead/deleted/?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
