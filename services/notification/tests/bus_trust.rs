//! Issue 15, item 5, for the bell: `Subscribe` pushes only what the event log holds. Anyone who
//! can publish on the bus could otherwise put a phishing link in a workspace's bell with a forged
//! NotificationRaised (the bell used to push the message's own text).

mod support;

use futures::StreamExt;
use rp_platform::bus;
use rp_platform::contracts::api::v1::SubscribeRequest;
use rp_platform::contracts::events::v1::{
    DisconnectReason, Envelope, EventMeta, NotificationRaised, Provider, envelope::Event,
};
use rp_platform::eventlog::ExpectedVersion;
use rp_platform::eventlog::RecordedEvent;
use rp_platform::testing::{EnvOptions, PrivateNats, TestEnv};
use support::*;
use uuid::Uuid;

const PHISHING: &str = "https://evil.example/login";

/// A NotificationRaised as the relay would publish it, but never appended to the log.
fn forged(ws: &Workspace, position: i64) -> RecordedEvent {
    let event_id = Uuid::now_v7().to_string();
    RecordedEvent {
        position,
        stream_id: format!("notifications-{}", ws.id),
        version: 1,
        recorded_at: chrono::Utc::now(),
        envelope: Envelope {
            meta: Some(EventMeta {
                event_id: event_id.clone(),
                workspace_id: ws.id.to_string(),
                integration_id: "li-1".into(),
                occurred_at: Some(rp_platform::contracts::timestamp(chrono::Utc::now())),
                correlation_id: event_id,
                ..Default::default()
            }),
            event: Some(Event::NotificationRaised(NotificationRaised {
                notification_id: Uuid::now_v7().to_string(),
                provider: Provider::Linkedin as i32,
                incident_key: "forged".into(),
                title: "Your LinkedIn connection expired".into(),
                body: "Sign in again to keep syncing.".into(),
                action: "Sign in".into(),
                link: PHISHING.into(),
                kind: "connection_disconnected".into(),
                ..Default::default()
            })),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_notification_on_the_bus_never_reaches_a_bell() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let mut bell = svc
        .client()
        .await
        .subscribe(authed(
            &ws.key,
            SubscribeRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();

    // The attacker publishes on the workspace's NotificationRaised subject, core NATS and
    // JetStream alike, with a relay's headers; the server has them before the real event below.
    let subject = env.bus.subject(&ws.id.to_string(), "NotificationRaised");
    for position in [1_000_000, 1_000_001] {
        let (headers, body) = bus::message_for(&forged(&ws, position), false);
        if position % 2 == 0 {
            env.nats
                .publish_with_headers(subject.clone(), headers, body)
                .await
                .unwrap();
        } else {
            env.js
                .publish_with_headers(subject.clone(), headers, body)
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    env.nats.flush().await.unwrap();

    // Then a real disconnection raises a real notification.
    feed(
        &env,
        vec![
            connected(&ws, "li-1", Provider::Linkedin),
            disconnected(
                &ws,
                "li-1",
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
        ],
    )
    .await;
    let pushed = tokio::time::timeout(WAIT, bell.next())
        .await
        .expect("the bell rings")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(
        pushed.link, LINK,
        "the first notification pushed is the real one, not the forged ones published before it: {pushed:?}"
    );
    let mut client = svc.client().await;
    let listed = list_all(&mut client, &ws).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].notification_id, pushed.notification_id);
    assert!(listed.iter().all(|n| n.link != PHISHING));
    drop(bell);
    svc.stop().await;
    env.cleanup().await;
}

/// infra/nats/nats-server.conf for any prefix and stream (tests make their own), with passwords.
const CONFIG: &str = include_str!("../../../infra/nats/nats-server.conf");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_works_as_its_nats_user_with_the_shipped_permissions() {
    let config = CONFIG.replace("rp.v1.", "*.v1.").replace("RP_EVENTS", "*");
    let (admin, me) = ("pwadmin0", "pwnotification0");
    let other = "pwother0";
    let vars = [
        ("RP_NATS_ADMIN_PASSWORD", admin),
        ("RP_NATS_NOTIFICATION_PASSWORD", me),
        ("RP_NATS_CONNECTOR_PASSWORD", other),
        ("RP_NATS_MATCHER_PASSWORD", other),
        ("RP_NATS_ATTRIBUTION_PASSWORD", other),
        ("RP_NATS_RP_PASSWORD", other),
    ];
    let nats = PrivateNats::start_with_config(&config, &vars).await;
    let at = |user: &str, password: &str| {
        nats.url()
            .replace("nats://", &format!("nats://{user}:{password}@"))
    };
    // The test itself (stream setup and cleanup) acts as the admin.
    let env = TestEnv::with(EnvOptions {
        nats_url: at("admin", admin),
        ..EnvOptions::default()
    })
    .await;
    // The service as `notification`: it ensures the stream, its relay publishes, its durables
    // consume, the bell listens; all within its permissions.
    let mut platform = env.platform_config();
    platform.nats_url = at("notification", me);
    let svc = Running::start_with(platform).await;
    let ws = workspace(&env).await;
    let mut bell = svc
        .client()
        .await
        .subscribe(authed(
            &ws.key,
            SubscribeRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Appended only: the service's own relay publishes them.
    for (stream, event) in [
        connected(&ws, "li-1", Provider::Linkedin),
        disconnected(
            &ws,
            "li-1",
            Provider::Linkedin,
            DisconnectReason::AuthorizationRevoked,
        ),
    ] {
        env.store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    let pushed = tokio::time::timeout(WAIT, bell.next())
        .await
        .expect("the bell rings")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(pushed.link, LINK);
    drop(bell);
    svc.stop().await;
    env.cleanup().await;
}
