//! A client that acts and then reads sees its own action: right after Disconnect returns, the
//! Connections page says Disconnected (no next sync); right after the OAuth callback completes,
//! it says Connected. Each is checked many times, with a single read and no waiting, so a health
//! projection that lags the action (the orchestrator catching up a few milliseconds later) shows.

use e2e::{SandboxData, Sizes, System};
use rp_platform::contracts::api::v1 as api;

const PLAN: &str = "growth";

const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: false,
};

/// How many times each action is followed by an immediate read.
const ROUNDS: usize = 20;

/// One read of the Connections page, now: the integration's health, if it is listed.
async fn health_now(s: &System, integration_id: &str) -> Option<api::IntegrationHealth> {
    s.sync
        .clone()
        .get_connection_health(s.req(api::GetConnectionHealthRequest {
            workspace_id: s.workspace_id.clone(),
        }))
        .await
        .unwrap_or_else(|e| panic!("GetConnectionHealth: {e}"))
        .into_inner()
        .integrations
        .into_iter()
        .find(|h| h.integration_id == integration_id)
}

fn assert_connected(h: Option<api::IntegrationHealth>, when: &str) {
    let h = h.unwrap_or_else(|| panic!("{when}: the integration is not listed at all"));
    assert_eq!(
        h.status,
        api::ConnectionStatus::Connected as i32,
        "{when}: {h:?}"
    );
    assert!(h.next_scheduled_sync_at.is_some(), "{when}: {h:?}");
    assert_eq!(h.disconnect_reason, "", "{when}: {h:?}");
}

#[tokio::test]
async fn the_first_connection_is_read_as_connected_as_soon_as_the_callback_completes() {
    let s = System::start(PLAN, &SANDBOX).await;
    for p in [
        api::Provider::Linkedin,
        api::Provider::Hubspot,
        api::Provider::Salesforce,
    ] {
        let started = s
            .connections
            .clone()
            .start_connect(s.req(api::StartConnectRequest {
                workspace_id: s.workspace_id.clone(),
                provider: p as i32,
            }))
            .await
            .unwrap_or_else(|e| panic!("StartConnect({p:?}): {e}"))
            .into_inner();
        s.complete_oauth(&started.authorize_url).await;
        assert_connected(
            health_now(&s, &started.integration_id).await,
            &format!("{p:?}, right after its first OAuth callback"),
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn disconnect_and_reconnect_are_read_back_at_once_every_time() {
    let s = System::start(PLAN, &SANDBOX).await;
    let id = s.connect(api::Provider::Hubspot).await;
    for round in 0..ROUNDS {
        s.connections
            .clone()
            .disconnect(s.req(api::DisconnectRequest {
                workspace_id: s.workspace_id.clone(),
                integration_id: id.clone(),
            }))
            .await
            .unwrap_or_else(|e| panic!("round {round}: Disconnect: {e}"));
        let h = health_now(&s, &id)
            .await
            .unwrap_or_else(|| panic!("round {round}: the integration is not listed"));
        let when = format!("round {round}, right after Disconnect returned");
        assert_eq!(
            h.status,
            api::ConnectionStatus::Disconnected as i32,
            "{when}: {h:?}"
        );
        assert!(h.next_scheduled_sync_at.is_none(), "{when}: {h:?}");
        assert_eq!(
            h.disconnect_reason, "Disconnected by a user of this workspace",
            "{when}: {h:?}"
        );

        let again = s
            .connections
            .clone()
            .reconnect(s.req(api::ReconnectRequest {
                workspace_id: s.workspace_id.clone(),
                integration_id: id.clone(),
            }))
            .await
            .unwrap_or_else(|e| panic!("round {round}: Reconnect: {e}"))
            .into_inner();
        s.complete_oauth(&again.authorize_url).await;
        assert_connected(
            health_now(&s, &id).await,
            &format!("round {round}, right after the OAuth callback of the reconnect"),
        );
    }
    s.stop().await;
}
