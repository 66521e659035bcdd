//! Issue 15.4, every `Notifications` method, table-driven: an error never echoes unbounded
//! input, PERMISSION_DENIED never names the other workspace, a notification id that is not a
//! UUID is INVALID_ARGUMENT, and another workspace's notification answers like an unknown one.

mod support;

use futures::future::BoxFuture;
use rp_platform::contracts::api::v1::notifications_client::NotificationsClient;
use rp_platform::contracts::api::v1::*;
use rp_platform::testing::TestEnv;
use support::{Running, authed, workspace};
use tonic::transport::Channel;
use tonic::{Code, Status};

const MAX_MESSAGE: usize = 1024;

type Call = fn(
    NotificationsClient<Channel>,
    String,
    String,
    String,
) -> BoxFuture<'static, Result<(), Status>>;

/// (method, call(client, key, workspace_id, other field)).
fn methods() -> Vec<(&'static str, Call)> {
    vec![
        ("List", |mut c, k, ws, tok| {
            Box::pin(async move {
                c.list(authed(
                    &k,
                    ListNotificationsRequest {
                        workspace_id: ws,
                        page_size: 0,
                        page_token: tok,
                        unread_only: false,
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("UnreadCount", |mut c, k, ws, _| {
            Box::pin(async move {
                c.unread_count(authed(&k, UnreadCountRequest { workspace_id: ws }))
                    .await
                    .map(|_| ())
            })
        }),
        ("MarkRead", |mut c, k, ws, id| {
            Box::pin(async move {
                c.mark_read(authed(
                    &k,
                    MarkReadRequest {
                        workspace_id: ws,
                        notification_id: id,
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("MarkAllRead", |mut c, k, ws, _| {
            Box::pin(async move {
                c.mark_all_read(authed(&k, MarkAllReadRequest { workspace_id: ws }))
                    .await
                    .map(|_| ())
            })
        }),
        ("Subscribe", |mut c, k, ws, _| {
            Box::pin(async move {
                c.subscribe(authed(&k, SubscribeRequest { workspace_id: ws }))
                    .await
                    .map(|_| ())
            })
        }),
    ]
}

fn bounded(what: &str, e: &Status) {
    assert!(
        e.message().len() <= MAX_MESSAGE,
        "{what}: a {}-byte message",
        e.message().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notifications_method_answers_bounded_and_never_names_another_workspace() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let (a, b) = (workspace(&env).await, workspace(&env).await);
    let client = svc.client().await;
    let (ws_a, ws_b) = (a.id.to_string(), b.id.to_string());
    let huge = "7".repeat(1 << 20);
    let unknown = uuid::Uuid::new_v4().to_string();
    for (name, call) in methods() {
        let c = || client.clone();
        let e = call(c(), a.key.clone(), ws_b.clone(), String::new())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::PermissionDenied, "{name}");
        assert!(!e.message().contains(&ws_b), "{name}: {}", e.message());
        let e = call(c(), a.key.clone(), huge.clone(), String::new())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        bounded(name, &e);
        // The other string field (page token, notification id) at a megabyte.
        if let Err(e) = call(c(), a.key.clone(), ws_a.clone(), huge.clone()).await {
            assert_eq!(e.code(), Code::InvalidArgument, "{name}");
            bounded(name, &e);
        }
    }
    let mark = |id: String| {
        let (c, k, ws) = (client.clone(), a.key.clone(), ws_a.clone());
        async move {
            c.clone()
                .mark_read(authed(
                    &k,
                    MarkReadRequest {
                        workspace_id: ws,
                        notification_id: id,
                    },
                ))
                .await
                .unwrap_err()
        }
    };
    let e = mark("not-a-uuid".into()).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = mark(unknown.clone()).await;
    assert_eq!(e.code(), Code::NotFound);
    assert!(!e.message().contains(&ws_b));
    drop(client);
    svc.stop().await;
    env.cleanup().await;
}
