//! Test support: the notification service started in-process (consumer + gRPC on port 0)
//! against a TestEnv's PostgreSQL and NATS, helpers to feed connection and sync events into
//! the log, and a gRPC client that sends an API key.
#![allow(dead_code)]

use notification::domain::ConnectionsLink;
use rp_platform::apikeys;
use rp_platform::contracts::api::v1::notifications_client::NotificationsClient;
use rp_platform::contracts::api::v1::{ListNotificationsRequest, Notification};
use rp_platform::contracts::events::v1::{
    ConnectionConnected, ConnectionDisconnected, ConnectionReconnected, DisconnectReason,
    FailureKind, Provider, SyncCompleted, SyncFailed, SyncScheduleSet, SyncStep, WorkspaceCreated,
    envelope::Event,
};
use rp_platform::eventlog::{ExpectedVersion, NewEvent, RecordedEvent};
use rp_platform::ids::WorkspaceId;
use rp_platform::relay::Relay;
use rp_platform::runtime::Service;
use rp_platform::testing::{TestEnv, eventually};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(30);
pub const LINK: &str = "https://app.test/workspace/connections";

/// A running service instance.
pub struct Running {
    pub addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(env: &TestEnv) -> Self {
        Self::start_with(env.platform_config()).await
    }

    /// [`Running::start`] with another platform configuration (another NATS URL or user).
    pub async fn start_with(platform: rp_platform::config::PlatformConfig) -> Self {
        let mut svc = Service::connect("notification", platform).await.unwrap();
        let config = notification::Config {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            connections_link: ConnectionsLink::new("https://app.test/", "/workspace/connections")
                .unwrap(),
        };
        let addr = notification::start(&mut svc, &config).await.unwrap();
        let cancel = svc.cancel.clone();
        let task = tokio::spawn(svc.wait());
        Self { addr, cancel, task }
    }

    /// Shuts down like SIGTERM does, and waits for every task to finish.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the service stops within the timeout")
            .unwrap()
            .unwrap();
    }

    pub async fn client(&self) -> NotificationsClient<Channel> {
        NotificationsClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }
}

/// A workspace with an API key.
pub struct Workspace {
    pub id: WorkspaceId,
    pub key: String,
    pub key_id: apikeys::KeyId,
}

pub async fn workspace(env: &TestEnv) -> Workspace {
    let id = WorkspaceId::new(Uuid::new_v4());
    env.store
        .append(
            &id.stream(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                id.to_string(),
                Event::WorkspaceCreated(WorkspaceCreated {
                    name: "Acme".into(),
                    plan: "standard".into(),
                }),
            )],
        )
        .await
        .unwrap();
    let key = apikeys::issue(&env.pool, id, "tests").await.unwrap();
    Workspace {
        id,
        key: key.plaintext,
        key_id: key.key_id,
    }
}

/// A request with the workspace's API key.
pub fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

/// Appends events (each to its stream), publishes them, and returns their ids.
pub async fn feed(env: &TestEnv, events: Vec<(String, NewEvent)>) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for (stream, e) in events {
        ids.push(e.event_id);
        env.store
            .append(&stream, ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    Relay::new(env.store.clone(), env.js.clone(), env.bus.clone())
        .publish_pending()
        .await
        .unwrap();
    ids
}

/// Waits until the service's consumer has handled (committed) every one of `ids`.
pub async fn handled(env: &TestEnv, ids: &[Uuid]) {
    let want = i64::try_from(ids.len()).unwrap();
    eventually(WAIT, "the notification consumer to handle the events", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = 'notification' AND event_id = ANY($1)",
        )
        .bind(ids)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        (n == want).then_some(())
    })
    .await;
}

/// Feeds the events and waits until they are handled.
pub async fn feed_and_wait(env: &TestEnv, events: Vec<(String, NewEvent)>) -> Vec<Uuid> {
    let ids = feed(env, events).await;
    handled(env, &ids).await;
    ids
}

fn on_connection(ws: &Workspace, integration: &str, event: Event) -> (String, NewEvent) {
    (
        format!("connection-{integration}"),
        NewEvent::new(ws.id.to_string(), event).integration(integration),
    )
}

pub fn connected(ws: &Workspace, integration: &str, provider: Provider) -> (String, NewEvent) {
    on_connection(
        ws,
        integration,
        Event::ConnectionConnected(ConnectionConnected {
            provider: provider as i32,
            external_account_id: "acct-1".into(),
            scopes: vec![],
        }),
    )
}

pub fn disconnected(
    ws: &Workspace,
    integration: &str,
    provider: Provider,
    reason: DisconnectReason,
) -> (String, NewEvent) {
    on_connection(
        ws,
        integration,
        Event::ConnectionDisconnected(ConnectionDisconnected {
            provider: provider as i32,
            reason: reason as i32,
            provider_message: String::new(),
        }),
    )
}

pub fn reconnected(ws: &Workspace, integration: &str, provider: Provider) -> (String, NewEvent) {
    on_connection(
        ws,
        integration,
        Event::ConnectionReconnected(ConnectionReconnected {
            provider: provider as i32,
            external_account_id: "acct-1".into(),
            previous_external_account_id: String::new(),
        }),
    )
}

/// A failed sync run of the integration (a new run id each time, as retries are new runs).
pub fn sync_failed(
    ws: &Workspace,
    integration: &str,
    kind: FailureKind,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
) -> (String, NewEvent) {
    let run = Uuid::now_v7().to_string();
    (
        format!("syncrun-{run}"),
        NewEvent::new(
            ws.id.to_string(),
            Event::SyncFailed(SyncFailed {
                sync_run_id: run.clone(),
                kind: kind as i32,
                step: SyncStep::CrmPull as i32,
                message: "HubSpot answered 503".into(),
                location: "GET /crm/v3/objects/companies".into(),
                next_attempt_at: Some(rp_platform::contracts::timestamp(next_attempt_at)),
            }),
        )
        .integration(integration)
        .correlation(run),
    )
}

/// The integration's schedule set to `local_time` UTC, whose next sync is `next`.
pub fn schedule_set(
    ws: &Workspace,
    integration: &str,
    local_time: &str,
    next: Option<chrono::DateTime<chrono::Utc>>,
) -> (String, NewEvent) {
    on_connection(
        ws,
        integration,
        Event::SyncScheduleSet(SyncScheduleSet {
            local_time: local_time.into(),
            time_zone: "UTC".into(),
            next_scheduled_sync_at: next.map(rp_platform::contracts::timestamp),
        }),
    )
}

pub fn sync_completed(ws: &Workspace, integration: &str) -> (String, NewEvent) {
    let run = Uuid::now_v7().to_string();
    (
        format!("syncrun-{run}"),
        NewEvent::new(
            ws.id.to_string(),
            Event::SyncCompleted(SyncCompleted {
                sync_run_id: run.clone(),
                counts: vec![],
            }),
        )
        .integration(integration)
        .correlation(run),
    )
}

/// Every notification of the workspace, newest first (following page tokens).
pub async fn list_all(
    client: &mut NotificationsClient<Channel>,
    ws: &Workspace,
) -> Vec<Notification> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list(authed(
                &ws.key,
                ListNotificationsRequest {
                    workspace_id: ws.id.to_string(),
                    page_size: 100,
                    page_token: token.clone(),
                    unread_only: false,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.notifications);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// The workspace's notification events in the log, in order.
pub async fn notification_events(env: &TestEnv, ws: &Workspace) -> Vec<RecordedEvent> {
    env.store
        .read_stream(&format!("notifications-{}", ws.id), 1, 1000)
        .await
        .unwrap()
}

pub fn tomorrow_at_six() -> chrono::DateTime<chrono::Utc> {
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    tomorrow.and_hms_opt(6, 0, 0).unwrap().and_utc()
}
