//! The notification rules end to end, against real PostgreSQL and NATS: events appended to the
//! log and relayed, the service's consumer deciding, the bell read over gRPC.

mod support;

use rp_platform::contracts::api::v1::NotificationKind;
use rp_platform::contracts::events::v1::{
    DisconnectReason, FailureKind, Provider, envelope::Event,
};
use rp_platform::testing::TestEnv;
use support::*;

#[tokio::test]
async fn a_revoked_authorization_raises_exactly_one_notification_naming_the_integration_with_the_connections_link()
 {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let integration = "li-1";
    let ids = feed_and_wait(
        &env,
        vec![
            connected(&ws, integration, Provider::Linkedin),
            disconnected(
                &ws,
                integration,
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
            // The connector reports it again (a retry of its own): still one incident.
            disconnected(
                &ws,
                integration,
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
        ],
    )
    .await;

    let mut client = svc.client().await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let n = &all[0];
    assert_eq!(n.kind(), NotificationKind::ConnectionDisconnected);
    assert_eq!(n.integration_id, integration);
    assert_eq!(n.provider, "LinkedIn");
    assert_eq!(n.title, "LinkedIn disconnected");
    assert_eq!(
        n.body,
        "LinkedIn was disconnected because access was revoked in LinkedIn. Syncing has stopped."
    );
    assert_eq!(n.action, "Reconnect LinkedIn on the Connections page");
    assert_eq!(n.link, LINK);
    assert_eq!(n.incident_key, format!("{integration}:disconnected"));
    assert!(n.read_at.is_none() && n.resolved_at.is_none());

    // It is an event in the log, caused by the disconnection, in the workspace's stream.
    let events = notification_events(&env, &ws).await;
    assert_eq!(events.len(), 1);
    let Some(Event::NotificationRaised(raised)) = events[0].event() else {
        panic!("{:?}", events[0].event());
    };
    assert_eq!(raised.notification_id, n.notification_id);
    assert_eq!(raised.kind, "connection_disconnected");
    assert_eq!(events[0].meta().causation_id, ids[1].to_string());
    assert_eq!(events[0].meta().integration_id, integration);
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn repeated_sync_failures_raise_one_notification_and_a_later_completed_sync_resolves_it() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let hubspot = "hs-1";
    let next = tomorrow_at_six();
    feed_and_wait(
        &env,
        vec![
            connected(&ws, hubspot, Provider::Hubspot),
            sync_failed(&ws, hubspot, FailureKind::ProviderOutage, next),
            sync_failed(&ws, hubspot, FailureKind::ProviderOutage, next),
            sync_failed(&ws, hubspot, FailureKind::RateLimited, next),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(
        all.len(),
        1,
        "retries of the same failure add none: {all:#?}"
    );
    let interruption = &all[0];
    assert_eq!(interruption.kind(), NotificationKind::SyncInterrupted);
    assert_eq!(interruption.provider, "HubSpot");
    assert_eq!(
        interruption.body,
        format!(
            "Your HubSpot sync was interrupted because HubSpot is temporarily unavailable. We'll retry automatically at the next scheduled sync on {} at 06:00 UTC.",
            next.format("%a %-d %b")
        )
    );
    assert_eq!(interruption.action, "No action needed");
    assert_eq!(interruption.link, LINK);

    feed_and_wait(&env, vec![sync_completed(&ws, hubspot)]).await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let (resolved, original) = (&all[0], &all[1]);
    assert_eq!(resolved.kind(), NotificationKind::Resolved);
    assert_eq!(
        resolved.resolves_notification_id,
        interruption.notification_id
    );
    assert_eq!(resolved.title, "HubSpot sync resumed");
    assert_eq!(resolved.link, LINK);
    assert_eq!(original.notification_id, interruption.notification_id);
    assert!(original.resolved_at.is_some(), "the interruption is over");

    let types: Vec<&str> = notification_events(&env, &ws)
        .await
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert_eq!(
        types,
        [
            "NotificationRaised",
            "NotificationRaised",
            "NotificationResolved"
        ]
    );

    // A sync that completes with nothing open raises nothing.
    feed_and_wait(&env, vec![sync_completed(&ws, hubspot)]).await;
    assert_eq!(list_all(&mut client, &ws).await.len(), 2);
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn reconnecting_raises_the_resolving_notification_and_a_new_failure_is_a_new_incident() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let sf = "sf-1";
    feed_and_wait(
        &env,
        vec![
            connected(&ws, sf, Provider::Salesforce),
            disconnected(
                &ws,
                sf,
                Provider::Salesforce,
                DisconnectReason::AuthorizationExpired,
            ),
            // Runs that were already in flight fail while disconnected: no new notification.
            sync_failed(&ws, sf, FailureKind::Authorization, tomorrow_at_six()),
            reconnected(&ws, sf, Provider::Salesforce),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let (resolved, disconnection) = (&all[0], &all[1]);
    assert_eq!(
        disconnection.kind(),
        NotificationKind::ConnectionDisconnected
    );
    assert_eq!(
        disconnection.body,
        "Salesforce was disconnected because its authorization expired. Syncing has stopped."
    );
    assert!(disconnection.resolved_at.is_some());
    assert_eq!(resolved.kind(), NotificationKind::Resolved);
    assert_eq!(
        resolved.resolves_notification_id,
        disconnection.notification_id
    );
    assert_eq!(resolved.title, "Salesforce reconnected");
    assert_eq!(resolved.action, "No action needed");

    // The incident is over: the next failure opens a new one.
    feed_and_wait(
        &env,
        vec![sync_failed(
            &ws,
            sf,
            FailureKind::ProviderOutage,
            tomorrow_at_six(),
        )],
    )
    .await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].kind(), NotificationKind::SyncInterrupted);
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_disconnection_supersedes_an_open_interruption_and_one_reconnect_resolves_everything() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let li = "li-2";
    feed_and_wait(
        &env,
        vec![
            connected(&ws, li, Provider::Linkedin),
            sync_failed(&ws, li, FailureKind::Authorization, tomorrow_at_six()),
            disconnected(
                &ws,
                li,
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let (disconnection, interruption) = (&all[0], &all[1]);
    assert_eq!(
        disconnection.kind(),
        NotificationKind::ConnectionDisconnected
    );
    assert_eq!(interruption.kind(), NotificationKind::SyncInterrupted);
    assert!(
        interruption.resolved_at.is_some(),
        "superseded by the disconnection"
    );
    assert!(disconnection.resolved_at.is_none());
    assert!(
        all.iter().all(|n| n.kind() != NotificationKind::Resolved),
        "nothing was fixed, so nothing says resolved"
    );

    feed_and_wait(&env, vec![reconnected(&ws, li, Provider::Linkedin)]).await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].kind(), NotificationKind::Resolved);
    assert_eq!(
        all[0].resolves_notification_id,
        disconnection.notification_id
    );
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_user_requested_disconnect_is_recorded_with_no_action_needed() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    feed_and_wait(
        &env,
        vec![
            connected(&ws, "hs-9", Provider::Hubspot),
            disconnected(
                &ws,
                "hs-9",
                Provider::Hubspot,
                DisconnectReason::UserRequested,
            ),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].kind(), NotificationKind::ConnectionDisconnected);
    assert!(
        all[0].action.starts_with("No action needed."),
        "{}",
        all[0].action
    );
    assert_eq!(all[0].link, LINK);
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn each_integration_and_each_workspace_has_its_own_incidents() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let (a, b) = (workspace(&env).await, workspace(&env).await);
    feed_and_wait(
        &env,
        vec![
            connected(&a, "li-a", Provider::Linkedin),
            connected(&a, "hs-a", Provider::Hubspot),
            connected(&b, "hs-b", Provider::Hubspot),
            sync_failed(&a, "li-a", FailureKind::ProviderOutage, tomorrow_at_six()),
            sync_failed(&a, "hs-a", FailureKind::ProviderOutage, tomorrow_at_six()),
            sync_failed(&b, "hs-b", FailureKind::ProviderOutage, tomorrow_at_six()),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let in_a = list_all(&mut client, &a).await;
    let in_b = list_all(&mut client, &b).await;
    assert_eq!(in_a.len(), 2);
    assert_eq!(in_b.len(), 1);
    let mut providers: Vec<&str> = in_a.iter().map(|n| n.provider.as_str()).collect();
    providers.sort();
    assert_eq!(providers, ["HubSpot", "LinkedIn"]);
    assert!(in_b.iter().all(|n| n.workspace_id == b.id.to_string()));
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_sync_failure_without_an_integration_is_dead_lettered_for_operators_not_dropped() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let (stream, mut bad) = sync_failed(&ws, "x", FailureKind::Internal, tomorrow_at_six());
    bad.integration_id = String::new();
    feed(&env, vec![(stream, bad)]).await;
    let dead = rp_platform::testing::eventually(WAIT, "a dead letter", || async {
        let d = rp_platform::consumer::dead_letters(&env.pool, Some("notification"))
            .await
            .unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert!(
        dead[0].error.contains("no integration_id"),
        "{}",
        dead[0].error
    );
    svc.stop().await;
    env.cleanup().await;
}
