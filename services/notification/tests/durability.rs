//! Notifications survive restarts (the projection is in PostgreSQL, open incidents included) and
//! can be rebuilt from the log alone.

mod support;

use notification::store;
use rp_platform::contracts::api::v1::{MarkReadRequest, NotificationKind};
use rp_platform::contracts::events::v1::{DisconnectReason, FailureKind, Provider};
use rp_platform::testing::TestEnv;
use support::*;

/// Some history: a resolved interruption, an open disconnection, one notification read.
/// Returns the LinkedIn integration's id (the disconnected one).
async fn history(env: &TestEnv, svc: &Running, ws: &Workspace) -> String {
    let (hs, li) = (format!("hs-{}", ws.id), format!("li-{}", ws.id));
    feed_and_wait(
        env,
        vec![
            connected(ws, &hs, Provider::Hubspot),
            connected(ws, &li, Provider::Linkedin),
            sync_failed(ws, &hs, FailureKind::ProviderOutage, tomorrow_at_six()),
            sync_completed(ws, &hs),
            sync_failed(ws, &li, FailureKind::Authorization, tomorrow_at_six()),
            disconnected(
                ws,
                &li,
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let all = list_all(&mut client, ws).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    client
        .mark_read(authed(
            &ws.key,
            MarkReadRequest {
                workspace_id: ws.id.to_string(),
                notification_id: all[2].notification_id.clone(),
            },
        ))
        .await
        .unwrap();
    li
}

#[tokio::test]
async fn a_new_instance_on_the_same_database_lists_the_same_notifications_and_remembers_open_incidents()
 {
    let env = TestEnv::new().await;
    let ws = workspace(&env).await;
    let first = Running::start(&env).await;
    let li = history(&env, &first, &ws).await;
    let before = list_all(&mut first.client().await, &ws).await;
    first.stop().await;

    let second = Running::start(&env).await;
    let mut client = second.client().await;
    let after = list_all(&mut client, &ws).await;
    assert_eq!(after, before);

    // The disconnection raised before the restart is still open: a retry adds nothing, and
    // reconnecting resolves exactly it.
    feed_and_wait(
        &env,
        vec![
            disconnected(
                &ws,
                &li,
                Provider::Linkedin,
                DisconnectReason::AuthorizationRevoked,
            ),
            reconnected(&ws, &li, Provider::Linkedin),
        ],
    )
    .await;
    let now = list_all(&mut client, &ws).await;
    assert_eq!(now.len(), 5);
    assert_eq!(now[0].kind(), NotificationKind::Resolved);
    assert_eq!(now[0].resolves_notification_id, before[0].notification_id);
    second.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn rebuilding_from_the_log_gives_the_same_list() {
    let env = TestEnv::new().await;
    let (ws, other) = (workspace(&env).await, workspace(&env).await);
    let svc = Running::start(&env).await;
    let li = history(&env, &svc, &ws).await;
    history(&env, &svc, &other).await;
    let mut client = svc.client().await;
    let before = (
        list_all(&mut client, &ws).await,
        list_all(&mut client, &other).await,
    );

    // Lose the projection entirely (as a restore from an old backup would), then rebuild.
    sqlx::query("DELETE FROM notifications")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM notification_integrations")
        .execute(&env.pool)
        .await
        .unwrap();
    assert!(list_all(&mut client, &ws).await.is_empty());
    let report = store::rebuild(&env.pool).await.unwrap();
    assert_eq!(report.notifications, 8);
    assert_eq!(report.integrations, 4);

    let after = (
        list_all(&mut client, &ws).await,
        list_all(&mut client, &other).await,
    );
    assert_eq!(after, before);

    // Rebuilding twice changes nothing, and the live service carries on from the rebuilt state:
    // the open disconnection is still the open incident.
    store::rebuild(&env.pool).await.unwrap();
    assert_eq!(list_all(&mut client, &ws).await, before.0);
    feed_and_wait(
        &env,
        vec![sync_failed(
            &ws,
            &li,
            FailureKind::ProviderOutage,
            tomorrow_at_six(),
        )],
    )
    .await;
    assert_eq!(
        list_all(&mut client, &ws).await.len(),
        4,
        "still one incident"
    );
    svc.stop().await;
    env.cleanup().await;
}

/// Race: "mark all read" while the consumer is raising notifications. The live projection must
/// equal what a replay of the log gives, so a notification is read exactly when its
/// NotificationsRead comes after it in the log, whichever transaction committed first.
#[tokio::test]
async fn mark_all_read_racing_new_notifications_agrees_with_a_replay_of_the_log() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let n = 40;
    let mut events = Vec::new();
    for i in 0..n {
        let integration = format!("hs-{i}");
        events.push(connected(&ws, &integration, Provider::Hubspot));
        events.push(sync_failed(
            &ws,
            &integration,
            FailureKind::ProviderOutage,
            tomorrow_at_six(),
        ));
    }
    let ids = feed(&env, events).await;
    let mut client = svc.client().await;
    let mut calls = 0;
    loop {
        client
            .mark_all_read(authed(
                &ws.key,
                rp_platform::contracts::api::v1::MarkAllReadRequest {
                    workspace_id: ws.id.to_string(),
                },
            ))
            .await
            .unwrap();
        calls += 1;
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = 'notification' AND event_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        if done == i64::try_from(ids.len()).unwrap() {
            break;
        }
    }
    let live = list_all(&mut client, &ws).await;
    assert_eq!(live.len(), n);
    store::rebuild(&env.pool).await.unwrap();
    let replayed = list_all(&mut client, &ws).await;
    assert_eq!(replayed, live, "after {calls} racing MarkAllRead calls");
    svc.stop().await;
    env.cleanup().await;
}

/// An open interruption follows the time it promises (a change of the schedule, a retry with
/// another next attempt) with NotificationUpdated: the same notification in List, one event per
/// change in the log, the same words after a rebuild, and the live service carries on from the
/// rebuilt promise.
#[tokio::test]
async fn the_promised_time_follows_the_schedule_and_a_rebuild_shows_the_same_words() {
    let env = TestEnv::new().await;
    let svc = Running::start(&env).await;
    let ws = workspace(&env).await;
    let hs = "hs-promise";
    let first = tomorrow_at_six();
    let moved = first + chrono::Duration::hours(17) + chrono::Duration::minutes(3);
    feed_and_wait(
        &env,
        vec![
            connected(&ws, hs, Provider::Hubspot),
            sync_failed(&ws, hs, FailureKind::ProviderOutage, first),
            schedule_set(&ws, hs, "23:03", Some(moved)),
            // The same again: nothing to change.
            schedule_set(&ws, hs, "23:03", Some(moved)),
        ],
    )
    .await;
    let mut client = svc.client().await;
    let all = list_all(&mut client, &ws).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(
        all[0].body.ends_with(&format!(
            "We'll retry automatically at the next scheduled sync on {} at 23:03 UTC.",
            moved.format("%a %-d %b")
        )),
        "{}",
        all[0].body
    );
    assert!(all[0].updated_at.is_some());
    assert_eq!(all[0].read_at, None);
    let types: Vec<&str> = notification_events(&env, &ws)
        .await
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert_eq!(types, ["NotificationRaised", "NotificationUpdated"]);

    store::rebuild(&env.pool).await.unwrap();
    assert_eq!(list_all(&mut client, &ws).await, all, "a rebuild agrees");

    // The retry at 23:03 fails again: the promise moves to its own next attempt.
    let next_day = moved + chrono::Duration::days(1);
    feed_and_wait(
        &env,
        vec![sync_failed(&ws, hs, FailureKind::ProviderOutage, next_day)],
    )
    .await;
    let after = list_all(&mut client, &ws).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].notification_id, all[0].notification_id);
    assert!(
        after[0].body.ends_with(&format!(
            "on {} at 23:03 UTC.",
            next_day.format("%a %-d %b")
        )),
        "{}",
        after[0].body
    );
    svc.stop().await;
    env.cleanup().await;
}
