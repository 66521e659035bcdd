//! The bell's gRPC API as a client sees it: paging newest first, unread counts, marking read,
//! the live Subscribe stream, and every refusal (UNAUTHENTICATED, PERMISSION_DENIED,
//! INVALID_ARGUMENT, NOT_FOUND).

mod support;

use futures::StreamExt;
use rp_platform::apikeys;
use rp_platform::contracts::api::v1::{
    ListNotificationsRequest, MarkAllReadRequest, MarkReadRequest, NotificationKind,
    SubscribeRequest, UnreadCountRequest,
};
use rp_platform::contracts::events::v1::{DisconnectReason, FailureKind, Provider};
use rp_platform::testing::TestEnv;
use support::*;
use tonic::Code;

/// `n` integrations, each with one interrupted sync: `n` notifications.
async fn interruptions(env: &TestEnv, ws: &Workspace, n: usize) {
    let mut events = Vec::new();
    for i in 0..n {
        let integration = format!("hs-{i}");
        events.push(connected(ws, &integration, Provider::Hubspot));
        events.push(sync_failed(
            ws,
            &integration,
            FailureKind::ProviderOutage,
            tomorrow_at_six(),
        ));
    }
    feed_and_wait(env, events).await;
}

async fn unread(
    client: &mut rp_platform::contracts::api::v1::notifications_client::NotificationsClient<
        tonic::transport::Channel,
    >,
    ws: &Workspace,
) -> i64 {
    client
        .unread_count(authed(
            &ws.key,
            UnreadCountRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .unread
}

#[tokio::test]
async fn list_pages_newest_first_and_read_state_moves_the_unread_count() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    interruptions(&env, &ws, 5).await;
    let mut client = svc.client().await;

    // Pages of 2: 2, 2, 1, newest first, no repeats.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list(authed(
                &ws.key,
                ListNotificationsRequest {
                    workspace_id: ws.id.to_string(),
                    page_size: 2,
                    page_token: token,
                    unread_only: false,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages.push(page.notifications);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let listed: Vec<_> = pages.into_iter().flatten().collect();
    let integrations: Vec<&str> = listed.iter().map(|n| n.integration_id.as_str()).collect();
    assert_eq!(
        integrations,
        ["hs-4", "hs-3", "hs-2", "hs-1", "hs-0"],
        "newest first"
    );
    assert_eq!(unread(&mut client, &ws).await, 5);

    // Mark one read: the count drops, the notification shows when it was read.
    let first = listed[0].notification_id.clone();
    let marked = client
        .mark_read(authed(
            &ws.key,
            MarkReadRequest {
                workspace_id: ws.id.to_string(),
                notification_id: first.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marked.unread, 4);
    // Again: nothing changes, and nothing more is appended.
    let again = client
        .mark_read(authed(
            &ws.key,
            MarkReadRequest {
                workspace_id: ws.id.to_string(),
                notification_id: first.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.unread, 4);
    let all = list_all(&mut client, &ws).await;
    assert!(all[0].read_at.is_some());
    assert!(all[1..].iter().all(|n| n.read_at.is_none()));

    let unread_only = client
        .list(authed(
            &ws.key,
            ListNotificationsRequest {
                workspace_id: ws.id.to_string(),
                unread_only: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert_eq!(unread_only.len(), 4);
    assert!(unread_only.iter().all(|n| n.notification_id != first));

    // Mark all read.
    let all_read = client
        .mark_all_read(authed(
            &ws.key,
            MarkAllReadRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all_read.marked, all_read.unread), (4, 0));
    let noop = client
        .mark_all_read(authed(
            &ws.key,
            MarkAllReadRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((noop.marked, noop.unread), (0, 0));

    // Both kinds of read are events: exactly two NotificationsRead, the second meaning "all".
    let reads: Vec<_> = notification_events(&env, &ws)
        .await
        .into_iter()
        .filter(|e| e.event_type() == "NotificationsRead")
        .collect();
    assert_eq!(reads.len(), 2);
    let Some(rp_platform::contracts::events::v1::envelope::Event::NotificationsRead(one)) =
        reads[0].event()
    else {
        panic!()
    };
    assert_eq!(one.notification_ids, [first]);
    let Some(rp_platform::contracts::events::v1::envelope::Event::NotificationsRead(everything)) =
        reads[1].event()
    else {
        panic!()
    };
    assert!(everything.notification_ids.is_empty());
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn subscribe_pushes_each_new_notification_of_its_workspace_only() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let (ws, other) = (workspace(&env).await, workspace(&env).await);
    let mut client = svc.client().await;
    let mut bell = client
        .subscribe(authed(
            &ws.key,
            SubscribeRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();

    // Another workspace's notification first, then ours.
    feed(
        &env,
        vec![
            connected(&other, "li-o", Provider::Linkedin),
            disconnected(
                &other,
                "li-o",
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
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
    assert_eq!(pushed.workspace_id, ws.id.to_string());
    assert_eq!(pushed.integration_id, "li-1");
    assert_eq!(pushed.kind(), NotificationKind::ConnectionDisconnected);
    assert_eq!(pushed.provider, "LinkedIn");
    assert_eq!(pushed.link, LINK);
    assert!(pushed.raised_at.is_some());
    // The same notification the list shows.
    let listed = list_all(&mut client, &ws).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].notification_id, pushed.notification_id);

    // And the resolving one follows on the same stream.
    feed(&env, vec![reconnected(&ws, "li-1", Provider::Linkedin)]).await;
    let next = tokio::time::timeout(WAIT, bell.next())
        .await
        .expect("the bell rings again")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(next.kind(), NotificationKind::Resolved);
    assert_eq!(next.resolves_notification_id, pushed.notification_id);

    // Shutting down ends the stream instead of holding the server open.
    svc.stop().await;
    let end = tokio::time::timeout(WAIT, bell.next()).await.unwrap();
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn calls_without_a_valid_key_are_unauthenticated() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let mut client = svc.client().await;
    let req = || UnreadCountRequest {
        workspace_id: ws.id.to_string(),
    };

    let missing = client.unread_count(req()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(
        missing.message().contains("missing API key"),
        "{}",
        missing.message()
    );

    let malformed = client
        .unread_count(authed("not-a-key", req()))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::Unauthenticated);
    assert!(malformed.message().contains("malformed API key"));

    let forged = format!("{}{}_{}", apikeys::KEY_PREFIX, ws.key_id, "00".repeat(32));
    let wrong = client
        .unread_count(authed(&forged, req()))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(wrong.message().contains("unknown API key"));

    // Works, then is revoked, then does not.
    client.unread_count(authed(&ws.key, req())).await.unwrap();
    apikeys::revoke(&env.pool, &ws.key_id).await.unwrap();
    let revoked = client
        .unread_count(authed(&ws.key, req()))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);
    assert!(revoked.message().contains("revoked"));
    let revoked_bell = client
        .subscribe(authed(
            &ws.key,
            SubscribeRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(revoked_bell.code(), Code::Unauthenticated);
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_key_cannot_read_or_change_another_workspaces_notifications() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let (mine, theirs) = (workspace(&env).await, workspace(&env).await);
    interruptions(&env, &theirs, 1).await;
    let mut client = svc.client().await;
    let their_notification = list_all(&mut client, &theirs).await[0]
        .notification_id
        .clone();
    let other = theirs.id.to_string();

    let codes = [
        client
            .list(authed(
                &mine.key,
                ListNotificationsRequest {
                    workspace_id: other.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
        client
            .unread_count(authed(
                &mine.key,
                UnreadCountRequest {
                    workspace_id: other.clone(),
                },
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
        client
            .mark_read(authed(
                &mine.key,
                MarkReadRequest {
                    workspace_id: other.clone(),
                    notification_id: their_notification.clone(),
                },
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
        client
            .mark_all_read(authed(
                &mine.key,
                MarkAllReadRequest {
                    workspace_id: other.clone(),
                },
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
        client
            .subscribe(authed(
                &mine.key,
                SubscribeRequest {
                    workspace_id: other.clone(),
                },
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for status in codes {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        // Never naming the workspace asked for (issue 15.4).
        assert!(!status.message().contains(&other), "{status:?}");
    }
    // Naming my workspace but their notification id: it is not found in mine.
    let not_mine = client
        .mark_read(authed(
            &mine.key,
            MarkReadRequest {
                workspace_id: mine.id.to_string(),
                notification_id: their_notification,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(not_mine.code(), Code::NotFound);
    // Nothing of theirs changed.
    assert!(list_all(&mut client, &theirs).await[0].read_at.is_none());
    svc.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn bad_arguments_are_invalid_argument_naming_the_field() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    interruptions(&env, &ws, 3).await;
    let mut client = svc.client().await;
    let list = |page_size: i32, page_token: &str, unread_only: bool| {
        authed(
            &ws.key,
            ListNotificationsRequest {
                workspace_id: ws.id.to_string(),
                page_size,
                page_token: page_token.into(),
                unread_only,
            },
        )
    };
    for (request, field) in [
        (list(101, "", false), "page_size"),
        (list(-1, "", false), "page_size"),
        (list(10, "garbage", false), "page_token"),
    ] {
        let e = client.list(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().starts_with(&format!("{field}: ")),
            "{}",
            e.message()
        );
    }
    // A real token, but from a different listing (unread_only changed).
    let first = client.list(list(1, "", false)).await.unwrap().into_inner();
    let e = client
        .list(list(1, &first.next_page_token, true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("page_token: "));

    let e = client
        .mark_read(authed(
            &ws.key,
            MarkReadRequest {
                workspace_id: ws.id.to_string(),
                notification_id: "42".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("notification_id: "));

    for workspace_id in ["", "acme"] {
        let e = client
            .unread_count(authed(
                &ws.key,
                UnreadCountRequest {
                    workspace_id: workspace_id.into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("workspace_id: "), "{}", e.message());
    }

    let e = client
        .mark_read(authed(
            &ws.key,
            MarkReadRequest {
                workspace_id: ws.id.to_string(),
                notification_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    svc.stop().await;
    env.cleanup().await;
}

/// Issue 15.3: a read-only key lists notifications and counts the unread, but cannot mark them
/// read (the read state is the workspace's: every member's bell): PERMISSION_DENIED saying the
/// key is read-only, nothing appended, the count unchanged. The full key can.
#[tokio::test]
async fn a_read_only_key_lists_notifications_but_cannot_mark_them_read() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    interruptions(&env, &ws, 2).await;
    let mut client = svc.client().await;
    let k = apikeys::issue_with_scope(&env.pool, ws.id, "screen", apikeys::Scope::ReadOnly)
        .await
        .unwrap();
    let ro = Workspace {
        id: ws.id,
        key: k.plaintext,
        key_id: k.key_id,
    };
    let listed = client
        .list(authed(
            &ro.key,
            ListNotificationsRequest {
                workspace_id: ws.id.to_string(),
                ..Default::default()
            },
        ))
        .await
        .expect("List with a read-only key")
        .into_inner()
        .notifications;
    assert_eq!(listed.len(), 2);
    assert_eq!(unread(&mut client, &ro).await, 2);

    let events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&env.pool)
            .await
            .unwrap()
    };
    let before = events().await;
    let one = client
        .mark_read(authed(
            &ro.key,
            MarkReadRequest {
                workspace_id: ws.id.to_string(),
                notification_id: listed[0].notification_id.clone(),
            },
        ))
        .await
        .expect_err("MarkRead with a read-only key");
    let all = client
        .mark_all_read(authed(
            &ro.key,
            MarkAllReadRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .expect_err("MarkAllRead with a read-only key");
    for e in [one, all] {
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("read-only"), "{}", e.message());
    }
    assert_eq!(events().await, before, "a refused call appended to the log");
    assert_eq!(unread(&mut client, &ws).await, 2);

    let done = client
        .mark_all_read(authed(
            &ws.key,
            MarkAllReadRequest {
                workspace_id: ws.id.to_string(),
            },
        ))
        .await
        .expect("MarkAllRead with the full key")
        .into_inner();
    assert_eq!(done.unread, 0);
    svc.stop().await;
    env.cleanup().await;
}
