//! Connecting as a user does it, against the sandbox's OAuth servers: StartConnect gives an
//! authorize URL with PKCE and a state; the browser follows the provider's redirect to our
//! callback, which hands the Connections page a single-use completion; the page's
//! CompleteConnect, with a key of the workspace that started, stores the tokens encrypted and
//! appends ConnectionConnected. Forwarded links, forged, replayed and expired states are refused; the API answers bad requests with codes that say what to do;
//! no response or row shows a token.

mod connector_support;

use connector::crypto::{KeyRing, Sealed};
use connector::domain::provider::ProviderError;
use connector::domain::{IntegrationId, Provider};
use connector::vault::{Cause, Vault, rewrap_all};
use connector_support::{Harness, Options, key_b64};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{self as ev, envelope::Event};
use sandbox::Provider as SbProvider;
use serde_json::json;
use sqlx::Row;
use tonic::Code;

async fn sealed_row(h: &Harness, id: IntegrationId) -> (Sealed, Vec<u8>) {
    let row = sqlx::query(
        "SELECT key_id, nonce, ciphertext FROM connector_tokens WHERE integration_id = $1",
    )
    .bind(id.as_uuid())
    .fetch_one(&h.env.pool)
    .await
    .unwrap();
    let s = Sealed {
        key_id: row.get("key_id"),
        nonce: row.get("nonce"),
        ciphertext: row.get("ciphertext"),
    };
    let raw = s.ciphertext.clone();
    (s, raw)
}

#[tokio::test]
async fn connecting_each_provider_end_to_end_stores_tokens_encrypted_and_shows_none() {
    let h = Harness::start().await;
    let mut grpc = h.grpc().await;
    for (provider, slug) in [
        (api::Provider::Linkedin, "linkedin"),
        (api::Provider::Hubspot, "hubspot"),
        (api::Provider::Salesforce, "salesforce"),
    ] {
        let started = grpc
            .start_connect(h.req(api::StartConnectRequest {
                workspace_id: h.ws(),
                provider: provider as i32,
            }))
            .await
            .unwrap()
            .into_inner();
        let url = reqwest::Url::parse(&started.authorize_url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        // PKCE where the provider takes it (HubSpot, Salesforce), not in LinkedIn's web flow.
        if provider == api::Provider::Linkedin {
            assert!(!q.contains_key("code_challenge"), "{q:?}");
        } else {
            assert_eq!(q["code_challenge_method"], "S256");
            assert_eq!(q["code_challenge"].len(), 43);
        }
        assert_eq!(q["state"].len(), 43, "256 random bits");
        assert_eq!(
            q["redirect_uri"],
            format!("http://{}/oauth/callback", h.http_addr)
        );
        assert!(started.expires_at.is_some());

        let cb = h.follow_authorize(&started.authorize_url).await;
        let page = h.callback(&cb).await;
        // The callback connects nothing itself: it hands a single-use completion to the page.
        assert!(
            page.starts_with(&format!(
                "http://localhost:3000/workspace/connections?status=authorized&provider={slug}&integration_id={}&completion=",
                started.integration_id
            )),
            "{page}"
        );
        let id = IntegrationId::parse(&started.integration_id).unwrap();
        assert!(h.stream(&id.connection_stream()).await.is_empty());
        let done = h.complete(&page).await.expect("CompleteConnect");
        assert!(!done.reconnected && !done.account_changed);
        assert_eq!(
            done.connection.as_ref().map(|c| c.status),
            Some(api::ConnectionStatus::Connected as i32)
        );
        let e = h
            .wait_event(&id.connection_stream(), "ConnectionConnected")
            .await;
        let Some(Event::ConnectionConnected(c)) = &e.envelope.event else {
            unreachable!()
        };
        assert_eq!(
            c.provider,
            connector::domain::Provider::from_slug(slug)
                .unwrap()
                .to_event() as i32
        );
        assert_eq!(e.meta().workspace_id, h.ws());

        // The tokens are in the vault, encrypted: the plaintext is nowhere in the row.
        let access = h
            .connector
            .vault
            .access(id, &Cause::default())
            .await
            .unwrap();
        let (sealed, raw) = sealed_row(&h, id).await;
        assert_eq!(sealed.key_id, "k1");
        let token = access.token.expose().as_bytes();
        assert!(!raw.windows(token.len()).any(|w| w == token));
        // ...nor in the event log, nor in any API response.
        let log = h.stream(&id.connection_stream()).await;
        for ev in &log {
            let bytes = prost::Message::encode_to_vec(&ev.envelope);
            assert!(!bytes.windows(token.len()).any(|w| w == token));
        }
        let got = grpc
            .get_connection(h.req(api::GetConnectionRequest {
                workspace_id: h.ws(),
                integration_id: id.to_string(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(!format!("{got:?}").contains(access.token.expose()));
        assert_eq!(got.status, api::ConnectionStatus::Connected as i32);
        assert_eq!(got.provider, provider as i32);
        assert!(got.connected_at.is_some() && got.authorized_at.is_some());
        // Every connection knows its scopes and its account: HubSpot's come from its token
        // metadata (the token answer names neither), Salesforce's account is its org (from the
        // identity URL), LinkedIn's the member (from their ad account roles).
        assert!(!got.scopes.is_empty(), "{provider:?} scopes");
        match provider {
            api::Provider::Salesforce => {
                assert_eq!(got.external_account_id, "00DDn0000000001MAA")
            }
            api::Provider::Hubspot => assert_eq!(got.external_account_id, "4242424"),
            api::Provider::Linkedin => {
                assert_eq!(got.external_account_id, "urn:li:person:dEmO000000")
            }
            api::Provider::Unspecified => {}
        }
    }
    let list = grpc
        .list_connections(h.req(api::ListConnectionsRequest {
            workspace_id: h.ws(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.connections.len(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn forged_replayed_and_malformed_states_are_refused() {
    let h = Harness::start().await;
    let cb = format!("http://{}/oauth/callback", h.http_addr);
    // Forged: looks like one of ours, was never issued.
    let forged = h
        .callback(&format!("{cb}?code=abc&state={}", "A".repeat(43)))
        .await;
    assert!(
        forged.ends_with("status=error&reason=invalid_state"),
        "{forged}"
    );
    for bad in ["", "?code=abc", "?code=abc&state=short", "?state=%00%01"] {
        let page = h.callback(&format!("{cb}{bad}")).await;
        assert!(
            page.ends_with("status=error&reason=invalid_state"),
            "{bad}: {page}"
        );
    }

    // Replayed: the same callback twice.
    let started = h
        .grpc()
        .await
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: h.ws(),
            provider: api::Provider::Hubspot as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    let callback_url = h.follow_authorize(&started.authorize_url).await;
    h.callback_and_complete(&callback_url).await;
    let replay = h.callback(&callback_url).await;
    assert!(
        replay.ends_with("status=error&reason=state_used"),
        "{replay}"
    );
    let id = IntegrationId::parse(&started.integration_id).unwrap();
    let events = h.stream(&id.connection_stream()).await;
    assert_eq!(events.len(), 1, "connected once");
    h.shutdown().await;
}

#[tokio::test]
async fn an_expired_state_is_refused_and_the_integration_stays_pending() {
    let h = Harness::with(Options {
        tweak: Box::new(|c| c.oauth_state_ttl = std::time::Duration::ZERO),
        ..Default::default()
    })
    .await;
    let mut grpc = h.grpc().await;
    let started = grpc
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: h.ws(),
            provider: api::Provider::Salesforce as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    let cb = h.follow_authorize(&started.authorize_url).await;
    let page = h.callback(&cb).await;
    assert!(
        page.ends_with("status=error&reason=state_expired"),
        "{page}"
    );
    let id = IntegrationId::parse(&started.integration_id).unwrap();
    assert!(h.stream(&id.connection_stream()).await.is_empty());
    let got = grpc
        .get_connection(h.req(api::GetConnectionRequest {
            workspace_id: h.ws(),
            integration_id: id.to_string(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, api::ConnectionStatus::Pending as i32);
    let list = grpc
        .list_connections(h.req(api::ListConnectionsRequest {
            workspace_id: h.ws(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        list.connections.is_empty(),
        "pending integrations are not listed"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_declined_consent_sends_the_user_back_with_denied() {
    let h = Harness::start().await;
    h.admin("POST", "/providers/hubspot/deny-next-authorize", json!({}))
        .await;
    let started = h
        .grpc()
        .await
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: h.ws(),
            provider: api::Provider::Hubspot as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    let cb = h.follow_authorize(&started.authorize_url).await;
    let page = h.callback(&cb).await;
    assert!(page.contains("status=denied&provider=hubspot"), "{page}");
    let id = IntegrationId::parse(&started.integration_id).unwrap();
    assert!(h.stream(&id.connection_stream()).await.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_codes_and_messages_that_say_what_to_do() {
    let h = Harness::start().await;
    let mut grpc = h.grpc().await;
    let ws = h.ws();

    let e = grpc
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: ws.clone(),
            provider: 0,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("provider: "), "{}", e.message());

    let e = grpc
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: "nope".into(),
            provider: 2,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("workspace_id: "), "{}", e.message());

    let e = grpc
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: uuid::Uuid::new_v4().to_string(),
            provider: 2,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let e = grpc
        .list_connections(api::ListConnectionsRequest {
            workspace_id: ws.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let e = grpc
        .get_connection(h.req(api::GetConnectionRequest {
            workspace_id: ws.clone(),
            integration_id: "42".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("integration_id: "),
        "{}",
        e.message()
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    let e = grpc
        .get_connection(h.req(api::GetConnectionRequest {
            workspace_id: ws.clone(),
            integration_id: unknown.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains(&unknown));

    let id = h.connect(api::Provider::Hubspot).await;
    let e = grpc
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: ws.clone(),
            provider: 2,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("already connected"), "{}", e.message());
    let e = grpc
        .reconnect(h.req(api::ReconnectRequest {
            workspace_id: ws.clone(),
            integration_id: id.to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("nothing to reconnect"),
        "{}",
        e.message()
    );

    let off = grpc
        .disconnect(h.req(api::DisconnectRequest {
            workspace_id: ws.clone(),
            integration_id: id.to_string(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(off.status, api::ConnectionStatus::Disconnected as i32);
    assert_eq!(
        off.disconnect_reason,
        api::DisconnectReason::UserRequested as i32
    );
    let e = grpc
        .disconnect(h.req(api::DisconnectRequest {
            workspace_id: ws.clone(),
            integration_id: id.to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("not connected"), "{}", e.message());
    let events = h.stream(&id.connection_stream()).await;
    let Some(Event::ConnectionDisconnected(d)) = &events.last().unwrap().envelope.event else {
        panic!("disconnected");
    };
    assert_eq!(d.reason, ev::DisconnectReason::UserRequested as i32);
    // Disconnect forgets the tokens.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM connector_tokens")
        .fetch_one(&h.env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // Connect again = reconnect on the same integration.
    let again = grpc
        .start_connect(h.req(api::StartConnectRequest {
            workspace_id: ws.clone(),
            provider: 2,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.integration_id, id.to_string());
    h.shutdown().await;
}

#[tokio::test]
async fn token_keys_rotate_without_losing_a_connection() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let before = h
        .connector
        .vault
        .access(id, &Cause::default())
        .await
        .unwrap();
    let rotated = KeyRing::parse(&format!("k1:{},k2:{}", key_b64(7), key_b64(9)), "k2").unwrap();
    let vault = Vault::new(
        h.env.pool.clone(),
        rotated,
        h.connector.clients.clone(),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(
        vault.access(id, &Cause::default()).await.unwrap().token,
        before.token
    );
    assert!(vault.rewrap(id).await.unwrap());
    assert_eq!(sealed_row(&h, id).await.0.key_id, "k2");
    let only_new = KeyRing::parse(&format!("k2:{}", key_b64(9)), "k2").unwrap();
    let vault = Vault::new(
        h.env.pool.clone(),
        only_new,
        h.connector.clients.clone(),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(
        vault.access(id, &Cause::default()).await.unwrap().token,
        before.token
    );
    h.shutdown().await;
}

#[tokio::test]
async fn rewrap_reseals_every_token_under_the_active_key_and_the_old_key_can_go() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for p in [
        api::Provider::Linkedin,
        api::Provider::Hubspot,
        api::Provider::Salesforce,
    ] {
        ids.push(h.connect(p).await);
    }
    for id in &ids {
        assert_eq!(sealed_row(&h, *id).await.0.key_id, "k1");
    }
    let rotated = KeyRing::parse(&format!("k1:{},k2:{}", key_b64(7), key_b64(9)), "k2").unwrap();
    // Batches of 2 over 3 rows: more than one batch.
    let report = rewrap_all(&h.env.pool, &rotated, 2).await.unwrap();
    assert_eq!(report.resealed.get("k1"), Some(&3), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    for id in &ids {
        assert_eq!(sealed_row(&h, *id).await.0.key_id, "k2");
    }
    // Idempotent: nothing is left to re-seal.
    let again = rewrap_all(&h.env.pool, &rotated, 2).await.unwrap();
    assert!(again.resealed.is_empty(), "{again:?}");
    // k1 dropped from the ring: the connector still reads and refreshes every connection.
    let only_new = KeyRing::parse(&format!("k2:{}", key_b64(9)), "k2").unwrap();
    let vault = Vault::new(
        h.env.pool.clone(),
        only_new,
        h.connector.clients.clone(),
        std::time::Duration::from_secs(60),
    );
    for id in &ids {
        let access = vault.access(*id, &Cause::default()).await.unwrap();
        let refreshed = vault
            .refresh(*id, access.generation, &Cause::default())
            .await
            .unwrap();
        assert!(refreshed.generation > access.generation);
        assert_eq!(sealed_row(&h, *id).await.0.key_id, "k2");
    }
    h.shutdown().await;
}

async fn sandbox_status(h: &Harness, slug: &str) -> serde_json::Value {
    h.http
        .get(format!("{}/providers/{slug}", h.sb.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn disconnect(h: &Harness, id: IntegrationId) -> api::Connection {
    h.grpc()
        .await
        .disconnect(h.req(api::DisconnectRequest {
            workspace_id: h.ws(),
            integration_id: id.to_string(),
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn disconnect_revokes_the_grant_at_each_provider() {
    let h = Harness::start().await;
    for (provider, ours, slug) in [
        (api::Provider::Linkedin, Provider::Linkedin, "linkedin"),
        (api::Provider::Hubspot, Provider::Hubspot, "hubspot"),
        (
            api::Provider::Salesforce,
            Provider::Salesforce,
            "salesforce",
        ),
    ] {
        let id = h.connect(provider).await;
        let before = sandbox_status(&h, slug).await;
        assert_eq!(before["live_grants"], 1, "{slug}: {before}");
        assert_eq!(before["revocations"], 0, "{slug}: {before}");
        let (sealed, _) = sealed_row(&h, id).await;
        let (_, refresh) = h.connector.vault.grant_tokens(id, &sealed).unwrap();
        let off = disconnect(&h, id).await;
        assert_eq!(off.status, api::ConnectionStatus::Disconnected as i32);
        // The provider forgot the grant: its refresh and access tokens no longer work there.
        let after = sandbox_status(&h, slug).await;
        assert_eq!(after["live_grants"], 0, "{slug}: {after}");
        assert_eq!(after["revocations"], 1, "{slug}: {after}");
        let refused = h
            .connector
            .clients
            .oauth(ours)
            .refresh(&refresh.unwrap())
            .await;
        assert!(
            matches!(refused, Err(ProviderError::GrantRefused { .. })),
            "{slug}: {refused:?}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_provider_that_fails_to_revoke_does_not_stop_the_disconnect() {
    let h = Harness::start().await;
    let id = h.connect(api::Provider::Hubspot).await;
    let failed = || {
        connector::metrics::metrics()
            .grant_revocations
            .get_or_create(&[("provider", "hubspot".into()), ("result", "failed".into())])
            .get()
    };
    let failed_before = failed();
    let r = h
        .http
        .put(format!("{}/providers/hubspot/outage", h.sb.admin_url()))
        .json(&json!({"mode": "503"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let off = disconnect(&h, id).await;
    assert_eq!(off.status, api::ConnectionStatus::Disconnected as i32);
    assert_eq!(
        off.disconnect_reason,
        api::DisconnectReason::UserRequested as i32
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM connector_tokens")
        .fetch_one(&h.env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(failed() > failed_before, "the failure is counted");
    let status = sandbox_status(&h, "hubspot").await;
    assert_eq!(status["live_grants"], 1, "{status}");
    h.shutdown().await;
}

/// Issue 15.8, the forwarded-link attack: someone starts a connect in their own workspace and
/// sends the authorize link to a victim. The victim consents at HubSpot and their browser comes
/// back to their own Connections page, signed in to their own workspace. Before the fix the
/// callback connected the starter's integration right there, with the victim's CRM behind it.
/// Now the callback connects nothing, the victim's page cannot complete another workspace's
/// authorization (it answers as for an unknown handle and spends it), and no token is ever
/// fetched.
#[tokio::test]
async fn a_connect_link_forwarded_to_someone_else_connects_nothing() {
    let h = Harness::start().await;
    let (victim_ws, victim_key) = h.another_workspace().await;
    let started = h.start_connect(api::Provider::Hubspot).await;
    let id = IntegrationId::parse(&started.integration_id).unwrap();
    h.clear_requests().await;
    let cb = h.follow_authorize(&started.authorize_url).await;
    let page = h.callback(&cb).await;
    assert!(
        h.stream(&id.connection_stream()).await.is_empty(),
        "the callback connected the starter's integration: {page}"
    );

    // The victim's page completes with the victim's key: refused, as for an unknown handle.
    let refused = h
        .complete_as(&victim_ws, &victim_key, &page)
        .await
        .expect_err("another workspace's authorization");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert!(
        refused.message().contains("someone sent you"),
        "{}",
        refused.message()
    );
    assert!(
        !refused.message().contains(&h.ws()) && !refused.message().contains(&id.to_string()),
        "the refusal names nothing of the starter's: {}",
        refused.message()
    );
    let unknown = h
        .complete_as(
            &victim_ws,
            &victim_key,
            &page.replace("completion=", "completion=A"),
        )
        .await
        .expect_err("a malformed handle");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    // A well-formed handle never issued answers exactly like the forwarded one.
    let never = format!(
        "{}completion={}",
        &page[..page.find("completion=").unwrap()],
        "B".repeat(43)
    );
    let never = h
        .complete_as(&victim_ws, &victim_key, &never)
        .await
        .expect_err("an unknown handle");
    assert_eq!(
        (never.code(), never.message()),
        (refused.code(), refused.message())
    );

    // The handle is spent: even the starter cannot use it now.
    let spent = h.complete(&page).await.expect_err("a spent handle");
    assert_eq!(spent.code(), tonic::Code::FailedPrecondition);

    // Nothing connected, no token fetched at HubSpot, nothing in the vault.
    assert!(h.stream(&id.connection_stream()).await.is_empty());
    let token_calls = h
        .requests(SbProvider::Hubspot)
        .await
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/oauth/v1/token"))
        })
        .count();
    assert_eq!(token_calls, 0, "no code exchange");
    let sealed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM connector_tokens WHERE integration_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&h.env.pool)
            .await
            .unwrap();
    assert_eq!(sealed, 0);
    let got = h.connection(id).await;
    assert_eq!(got.status, api::ConnectionStatus::Pending as i32);
    // And the victim's workspace has no integration either.
    let victims = h
        .grpc()
        .await
        .list_connections(rp_platform::testing::authed(
            &victim_key,
            api::ListConnectionsRequest {
                workspace_id: victim_ws.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(victims.connections.is_empty());
    h.shutdown().await;
}

/// Issue 15.8: a second authorization never replaces a connected integration's tokens or
/// account. Two connect links issued while the integration was pending (two tabs): the first
/// completed connects it; the second is refused without even exchanging its code.
#[tokio::test]
async fn a_second_authorization_never_replaces_a_connected_one() {
    let h = Harness::start().await;
    let first = h.start_connect(api::Provider::Hubspot).await;
    let second = h.start_connect(api::Provider::Hubspot).await;
    assert_eq!(first.integration_id, second.integration_id);
    let id = IntegrationId::parse(&first.integration_id).unwrap();
    let first_page = h
        .callback(&h.follow_authorize(&first.authorize_url).await)
        .await;
    // The second one is for another HubSpot portal.
    h.admin("PUT", "/providers/hubspot/account", json!({"account": 1}))
        .await;
    let second_page = h
        .callback(&h.follow_authorize(&second.authorize_url).await)
        .await;
    h.admin("PUT", "/providers/hubspot/account", json!({"account": 0}))
        .await;

    let done = h.complete(&first_page).await.expect("the first completes");
    let account = done.connection.unwrap().external_account_id;
    let (before, _) = sealed_row(&h, id).await;
    h.clear_requests().await;
    let refused = h
        .complete(&second_page)
        .await
        .expect_err("a second authorization while connected");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("already connected"),
        "{}",
        refused.message()
    );
    let (after, _) = sealed_row(&h, id).await;
    assert_eq!(
        before.ciphertext, after.ciphertext,
        "the tokens are unchanged"
    );
    let got = h.connection(id).await;
    assert_eq!(got.external_account_id, account, "the account is unchanged");
    let types: Vec<String> = h
        .stream(&id.connection_stream())
        .await
        .iter()
        .map(|e| e.event_type().to_string())
        .collect();
    assert_eq!(types, ["ConnectionConnected"]);
    assert!(
        h.requests(SbProvider::Hubspot)
            .await
            .iter()
            .all(|r| !r["path"].as_str().unwrap_or("").contains("/oauth/v1/token")),
        "the refused code was never exchanged"
    );
    h.shutdown().await;
}

/// A completion handle is single use and expires with the state's time to live.
#[tokio::test]
async fn a_completion_is_single_use_and_expires() {
    let h = Harness::start().await;
    let started = h.start_connect(api::Provider::Linkedin).await;
    let page = h
        .callback(&h.follow_authorize(&started.authorize_url).await)
        .await;
    h.complete(&page).await.expect("completes once");
    let again = h.complete(&page).await.expect_err("twice");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(
        again.message().contains("already completed"),
        "{}",
        again.message()
    );
    h.shutdown().await;

    // A held code older than the state's time to live.
    let h = Harness::start().await;
    let started = h.start_connect(api::Provider::Hubspot).await;
    let page = h
        .callback(&h.follow_authorize(&started.authorize_url).await)
        .await;
    sqlx::query(
        "UPDATE connector_oauth_states SET completion_expires_at = now() - interval '1 second'",
    )
    .execute(&h.env.pool)
    .await
    .unwrap();
    let expired = h.complete(&page).await.expect_err("expired");
    assert_eq!(expired.code(), tonic::Code::FailedPrecondition);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );
    let id = IntegrationId::parse(&started.integration_id).unwrap();
    assert!(h.stream(&id.connection_stream()).await.is_empty());
    h.shutdown().await;
}
