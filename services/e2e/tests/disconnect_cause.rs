//! What the user is told when a provider refuses our refresh token: the cause the Connections page
//! and the bell name must be the true one, for every provider, whether its refresh token ran out
//! of life (the sandbox clock moved past it) or its grant was revoked (the sandbox's admin API).
//!
//! The providers' words do not say which (LinkedIn: "invalid, expired or revoked"; Salesforce
//! says "expired access/refresh token" for a revoked grant too), so the connector decides from
//! what it knows of the grant: LinkedIn's refresh tokens live 365 days (the token answer says how
//! long is left); HubSpot's and Salesforce's (under the connected app's default policy) live until
//! revoked, so a year later they still refresh.

use e2e::{SandboxData, Sizes, System, WAIT};
use rp_platform::contracts::api::v1 as api;
use rp_platform::testing::eventually;
use serde_json::json;

const PLAN: &str = "growth";

const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: false,
};

/// A year and a day: past LinkedIn's 365-day refresh tokens.
const A_YEAR_AND_A_DAY_SECS: i64 = 366 * 86_400;

fn name(p: api::Provider) -> &'static str {
    match p {
        api::Provider::Linkedin => "LinkedIn",
        api::Provider::Hubspot => "HubSpot",
        api::Provider::Salesforce => "Salesforce",
        api::Provider::Unspecified => "?",
    }
}

fn slug(p: api::Provider) -> &'static str {
    match p {
        api::Provider::Linkedin => "linkedin",
        api::Provider::Hubspot => "hubspot",
        api::Provider::Salesforce => "salesforce",
        api::Provider::Unspecified => "?",
    }
}

const ALL: [api::Provider; 3] = [
    api::Provider::Linkedin,
    api::Provider::Hubspot,
    api::Provider::Salesforce,
];

/// The bell's "disconnected" notification of the integration, once it is there.
async fn disconnected_notification(s: &System, integration_id: &str) -> api::Notification {
    eventually(WAIT, "the disconnection's notification", || async {
        s.notifications_list().await.into_iter().find(|n| {
            n.integration_id == integration_id
                && n.kind == api::NotificationKind::ConnectionDisconnected as i32
        })
    })
    .await
}

/// Sync Now, and the run once it has finished (whichever way).
async fn sync_once(s: &System, integration_id: &str) -> api::SyncRun {
    let started = s.sync_now(integration_id).await;
    s.finished_run(&started.sync_run_id).await
}

/// Syncs the integration, which the provider no longer lets us refresh, and checks what the
/// Connections page and the bell say.
async fn assert_told(s: &System, p: api::Provider, id: &str, page: &str, bell: &str) {
    let run = sync_once(s, id).await;
    assert_eq!(run.state, "interrupted", "{p:?}: {run:?}");
    let h = s
        .health_of(id, |h| {
            h.status == api::ConnectionStatus::Disconnected as i32
        })
        .await;
    assert_eq!(h.disconnect_reason, page, "{p:?}: the Connections page");
    assert!(h.next_scheduled_sync_at.is_none(), "{p:?}: {h:?}");
    let n = disconnected_notification(s, id).await;
    assert!(
        n.body.starts_with(bell),
        "{p:?}: the bell says {:?}, expected it to start with {bell:?}",
        n.body
    );
    assert_eq!(
        n.action,
        format!("Reconnect {} on the Connections page", name(p))
    );
}

#[tokio::test]
async fn a_refresh_token_past_its_life_is_told_as_expired_and_only_linkedins_has_one() {
    let s = System::start(PLAN, &SANDBOX).await;
    let mut ids = Vec::new();
    for p in ALL {
        ids.push((p, s.connect(p).await));
    }
    s.sandbox_admin(
        reqwest::Method::POST,
        "/clock/advance",
        json!({ "seconds": A_YEAR_AND_A_DAY_SECS }),
    )
    .await;

    for (p, id) in &ids {
        match p {
            // LinkedIn's refresh tokens live 365 days: this one ran out.
            api::Provider::Linkedin => {
                assert_told(
                    &s,
                    *p,
                    id,
                    "The authorization with LinkedIn expired",
                    "LinkedIn was disconnected because its authorization expired.",
                )
                .await
            }
            // HubSpot's never expire by themselves, nor Salesforce's under the connected app's
            // default policy ("valid until revoked"): a year later they still refresh, and the
            // sync goes on.
            _ => {
                let run = sync_once(&s, id).await;
                assert_eq!(run.state, "completed", "{p:?}: {run:?}");
                let h = s.health_of(id, |_| true).await;
                assert_eq!(
                    h.status,
                    api::ConnectionStatus::Connected as i32,
                    "{p:?}: {h:?}"
                );
            }
        }
    }
    let disconnected: Vec<_> = s
        .notifications_list()
        .await
        .into_iter()
        .filter(|n| n.kind == api::NotificationKind::ConnectionDisconnected as i32)
        .map(|n| n.provider)
        .collect();
    assert_eq!(disconnected, vec!["LinkedIn".to_string()]);
    s.stop().await;
}

#[tokio::test]
async fn a_revoked_grant_is_told_as_revoked_for_every_provider() {
    let s = System::start(PLAN, &SANDBOX).await;
    for p in ALL {
        let id = s.connect(p).await;
        s.sandbox_admin(
            reqwest::Method::POST,
            &format!("/providers/{}/grants/revoke", slug(p)),
            json!({}),
        )
        .await;
        assert_told(
            &s,
            p,
            &id,
            &format!("Access was revoked in {}", name(p)),
            &format!(
                "{} was disconnected because access was revoked in {}.",
                name(p),
                name(p)
            ),
        )
        .await;
    }
    s.stop().await;
}
