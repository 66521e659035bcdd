//! OAuth against the sandbox: PKCE code exchange, refresh, rotation, refusal, denial, outage.

mod providers_support;

use std::time::Duration;

use connector::domain::provider::{GrantRefusal, OutageCause, Provider, ProviderError, Secret};
use connector::providers::http_client;
use connector::providers::oauth::OAuthClient;
use providers_support::start;
use sandbox::SandboxConfig;
use serde_json::json;

const ALL: [Provider; 3] = [Provider::Linkedin, Provider::Hubspot, Provider::Salesforce];

#[tokio::test]
async fn pkce_code_exchange_and_refresh_for_each_provider() {
    let env = start(SandboxConfig::for_tests()).await;
    for p in ALL {
        let tokens = env.connect(p).await;
        let refresh = tokens
            .refresh_token
            .clone()
            .expect("a refresh token on code exchange");
        match p {
            Provider::Salesforce => {
                assert_eq!(tokens.expires_in, None, "Salesforce sends no expires_in");
                assert_eq!(tokens.instance_url.as_deref(), Some(env.url(p).as_str()));
            }
            Provider::Linkedin => {
                assert_eq!(tokens.expires_in, Some(Duration::from_secs(3600)));
                assert!(tokens.refresh_token_expires_in.is_some());
            }
            Provider::Hubspot => assert_eq!(tokens.expires_in, Some(Duration::from_secs(3600))),
        }
        // Tokens never show in Debug output.
        let shown = format!("{tokens:?}");
        assert!(
            !shown.contains(tokens.access_token.expose()),
            "{p}: {shown}"
        );
        assert!(!shown.contains(refresh.expose()));

        let again = env.oauth(p).refresh(&refresh).await.expect("refresh");
        assert_ne!(again.access_token, tokens.access_token);
        assert!(
            !again.refresh_token_rotated,
            "{p} does not rotate by default"
        );
        assert_eq!(
            again.refresh_token.as_ref(),
            Some(&refresh),
            "{p}: keep the one we have"
        );
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_reported_and_the_old_one_dies() {
    let env = start(SandboxConfig::for_tests()).await;
    for p in ALL {
        env.admin(
            "PUT",
            &format!(
                "/providers/{}/refresh-rotation",
                providers_support::sb_provider(p)
            ),
            json!({"enabled": true}),
        )
        .await;
        let tokens = env.connect(p).await;
        let old = tokens.refresh_token.expect("refresh token");
        let oauth = env.oauth(p);
        let refreshed = oauth.refresh(&old).await.expect("refresh");
        assert!(refreshed.refresh_token_rotated, "{p}");
        let new = refreshed.refresh_token.expect("rotated token");
        assert_ne!(new, old);
        assert!(matches!(
            oauth.refresh(&old).await,
            Err(ProviderError::GrantRefused { .. })
        ));
        oauth.refresh(&new).await.expect("the rotated token works");
    }
}

#[tokio::test]
async fn a_revoked_grant_is_refused_with_the_providers_message() {
    let env = start(SandboxConfig::for_tests()).await;
    for p in ALL {
        let tokens = env.connect(p).await;
        env.admin(
            "POST",
            &format!(
                "/providers/{}/grants/revoke",
                providers_support::sb_provider(p)
            ),
            json!({}),
        )
        .await;
        let err = env
            .oauth(p)
            .refresh(tokens.refresh_token.as_ref().expect("refresh token"))
            .await
            .expect_err("refused");
        let ProviderError::GrantRefused {
            provider,
            reason,
            provider_message,
        } = err
        else {
            panic!("{p}: expected GrantRefused, got {err:?}");
        };
        assert_eq!(provider, p);
        match p {
            Provider::Hubspot => {
                assert_eq!(provider_message, "missing or unknown refresh token");
                assert_eq!(reason, GrantRefusal::Revoked);
            }
            // Salesforce says "expired" of a revoked grant too; its refresh tokens live until
            // revoked (the connected app's default policy), so a refusal is a revocation.
            Provider::Salesforce => {
                assert_eq!(provider_message, "expired access/refresh token");
                assert_eq!(reason, GrantRefusal::Revoked);
            }
            // "invalid, expired or revoked": the refresh token's deadline decides (the vault).
            Provider::Linkedin => {
                assert!(provider_message.contains("revoked"), "{provider_message}");
                assert_eq!(reason, GrantRefusal::Unclear);
            }
        }
    }
}

#[tokio::test]
async fn a_wrong_verifier_or_reused_code_is_a_request_error() {
    let env = start(SandboxConfig::for_tests()).await;
    for p in ALL {
        let oauth = env.oauth(p);
        let (query, verifier) = env.authorize(&oauth, "s").await;
        let cb = oauth.parse_callback(&query).expect("code");
        let wrong = Secret::new("w".repeat(64));
        if p == Provider::Linkedin {
            // LinkedIn's web flow has no PKCE: no verifier is sent, the code is exchanged once.
            assert!(oauth.exchange_code(&cb.code, &wrong).await.is_ok(), "{p:?}");
        } else {
            assert!(matches!(
                oauth.exchange_code(&cb.code, &wrong).await,
                Err(ProviderError::Request { .. })
            ));
        }
        // The code was burnt by the failed attempt.
        assert!(matches!(
            oauth.exchange_code(&cb.code, &verifier).await,
            Err(ProviderError::Request { .. })
        ));
    }
}

#[tokio::test]
async fn a_declined_consent_is_denied() {
    let env = start(SandboxConfig::for_tests()).await;
    env.admin("POST", "/providers/linkedin/deny-next-authorize", json!({}))
        .await;
    let oauth = env.oauth(Provider::Linkedin);
    let (query, _) = env.authorize(&oauth, "s").await;
    match oauth.parse_callback(&query) {
        Err(ProviderError::Denied { error, .. }) => assert_eq!(error, "user_cancelled_authorize"),
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_endpoint_outage_is_an_outage_after_retries() {
    let env = start(SandboxConfig::for_tests()).await;
    let tokens = env.connect(Provider::Hubspot).await;
    let refresh = tokens.refresh_token.expect("refresh token");
    env.admin("PUT", "/providers/hubspot/outage", json!({"mode": "503"}))
        .await;
    match env.oauth(Provider::Hubspot).refresh(&refresh).await {
        Err(ProviderError::Outage {
            cause: OutageCause::Status(503),
            attempts: 3,
            ..
        }) => {}
        other => panic!("expected Outage(503) after 3 attempts, got {other:?}"),
    }
    let logged = env.requests(Provider::Hubspot).await;
    let refreshes = logged
        .iter()
        .filter(|r| r["path"] == "/oauth/v1/token" && r["status"] == 503)
        .count();
    assert_eq!(refreshes, 3);

    // Hanging: the client's timeout turns it into an Outage too.
    env.admin(
        "PUT",
        "/providers/hubspot/outage",
        json!({"mode": "timeout"}),
    )
    .await;
    let impatient = OAuthClient::new(
        env.oauth_config(Provider::Hubspot),
        http_client(Duration::from_millis(200)).expect("client"),
    )
    .expect("oauth");
    match impatient.refresh(&refresh).await {
        Err(ProviderError::Outage {
            cause: OutageCause::Timeout,
            ..
        }) => {}
        other => panic!("expected Outage(timeout), got {other:?}"),
    }
}
