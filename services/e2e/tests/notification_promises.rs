//! What the bell promises happens, across the real processes (connector, matcher, attribution,
//! notification, the provider sandbox) with real PostgreSQL and NATS: an interrupted sync's
//! notification names the real next attempt, for an outage and for unreadable data alike, and
//! follows a change of the schedule (the open notification gets the new time, in List and on
//! Subscribe, as one NotificationUpdated in the log). Also: a manual match decision on ids that are
//! not companies of the workspace is refused.

use chrono::{DateTime, Duration, Utc};
use e2e::{SandboxData, Sizes, System, WAIT};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{FailureKind, envelope::Event};
use rp_platform::contracts::from_timestamp;
use rp_platform::testing::eventually;
use serde_json::json;

const PLAN: &str = "growth";

const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: false,
};

fn t(ts: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.as_ref().and_then(from_timestamp)
}

/// The open interruption notification, once `pred` holds for it.
async fn interruption<F: Fn(&api::Notification) -> bool>(s: &System, pred: F) -> api::Notification {
    eventually(WAIT, "the interruption notification", || async {
        s.notifications_list().await.into_iter().find(|n| {
            n.kind == api::NotificationKind::SyncInterrupted as i32
                && n.resolved_at.is_none()
                && pred(n)
        })
    })
    .await
}

/// "at 06:00 UTC" (or "on Tue 8 Dec at 06:00 UTC"): how a notification names `at`.
fn names(body: &str, at: DateTime<Utc>) -> bool {
    body.contains("We'll retry automatically at the next scheduled sync ")
        && body.contains(&at.format("at %H:%M UTC.").to_string())
}

/// Sync Now on `integration`; the failed run.
async fn failing_sync(s: &System, integration: &str, kind: FailureKind) -> api::SyncRun {
    let run = s
        .finished_run(&s.sync_now(integration).await.sync_run_id)
        .await;
    assert_eq!(run.state, "failed", "{run:?}");
    assert_eq!(run.failure_kind, kind as i32, "{run:?}");
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_notice_names_the_next_attempt_and_follows_a_change_of_the_schedule() {
    let s = System::start(PLAN, &SANDBOX).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.sandbox_admin(
        reqwest::Method::PUT,
        "/providers/hubspot/outage",
        json!({"mode": "503"}),
    )
    .await;
    let run = failing_sync(&s, &hubspot, FailureKind::ProviderOutage).await;
    let retry_at =
        t(&run.next_attempt_at).expect("an outage is retried at the next scheduled sync");
    let n = interruption(&s, |_| true).await;
    assert!(names(&n.body, retry_at), "{} / {retry_at}", n.body);
    assert!(n.updated_at.is_none());

    // The bell is open while the schedule changes.
    let mut bell = s
        .notifications
        .clone()
        .subscribe(s.req(api::SubscribeRequest {
            workspace_id: s.workspace_id.clone(),
        }))
        .await
        .unwrap_or_else(|e| panic!("Subscribe: {e}"))
        .into_inner();

    // Seven hours later in the day: certainly another time than the one promised.
    let new_time = (retry_at + Duration::hours(7)).format("%H:%M").to_string();
    let health = s
        .sync
        .clone()
        .set_sync_schedule(s.req(api::SetSyncScheduleRequest {
            integration_id: hubspot.clone(),
            local_time: new_time.clone(),
            time_zone: "UTC".into(),
        }))
        .await
        .unwrap_or_else(|e| panic!("SetSyncSchedule: {e}"))
        .into_inner();
    let new_at = t(&health.next_scheduled_sync_at).expect("the next scheduled sync");
    assert_eq!(new_at.format("%H:%M").to_string(), new_time);

    // The open notification now names the new time: in List...
    let updated = interruption(&s, |u| names(&u.body, new_at)).await;
    assert_eq!(
        updated.notification_id, n.notification_id,
        "the same notification"
    );
    assert!(
        !updated
            .body
            .contains(&retry_at.format("%H:%M UTC").to_string()),
        "{}",
        updated.body
    );
    assert_eq!(updated.title, n.title);
    assert_eq!(updated.raised_at, n.raised_at);
    assert!(updated.updated_at.is_some());
    assert_eq!(
        s.notifications_list().await.len(),
        1,
        "an update is no new notification"
    );
    // ...on the open bell (the same id, the new words)...
    let pushed = tokio::time::timeout(WAIT, bell.message())
        .await
        .expect("Subscribe sends the updated notification")
        .unwrap_or_else(|e| panic!("Subscribe: {e}"))
        .expect("the stream stays open");
    assert_eq!(pushed.notification_id, n.notification_id);
    assert_eq!(pushed.body, updated.body);
    // ...and in the log, as one event of the notification's stream.
    let updates: Vec<_> = s
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e.event() {
            Some(Event::NotificationUpdated(u)) => Some(u.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].notification_id, n.notification_id);
    assert_eq!(updates[0].body, updated.body);

    // Setting the same schedule again, and a retry that fails the same way at the time now
    // promised, change nothing; a later change does (and, the consumer keeping the workspace's
    // order, shows that both were handled before it).
    let set = |local_time: String| {
        let mut sync = s.sync.clone();
        let req = s.req(api::SetSyncScheduleRequest {
            integration_id: hubspot.clone(),
            local_time,
            time_zone: "UTC".into(),
        });
        async move {
            sync.set_sync_schedule(req)
                .await
                .unwrap_or_else(|e| panic!("SetSyncSchedule: {e}"))
                .into_inner()
        }
    };
    set(new_time).await;
    let again = failing_sync(&s, &hubspot, FailureKind::ProviderOutage).await;
    assert_eq!(t(&again.next_attempt_at), Some(new_at));
    let later = (new_at + Duration::hours(2)).format("%H:%M").to_string();
    let later_at = t(&set(later).await.next_scheduled_sync_at).expect("the next scheduled sync");
    let last = interruption(&s, |u| names(&u.body, later_at)).await;
    assert_eq!(last.notification_id, n.notification_id);
    let updates = s
        .events()
        .await
        .iter()
        .filter(|e| e.event_type() == "NotificationUpdated")
        .count();
    assert_eq!(updates, 2, "one per change of the promised time");
    assert_eq!(s.notifications_list().await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_payload_notice_names_the_next_attempt_too_and_decisions_need_real_companies() {
    let s = System::start(PLAN, &SANDBOX).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.sandbox_admin(
        reqwest::Method::POST,
        "/providers/hubspot/malformed",
        json!({"count": 1}),
    )
    .await;
    let run = failing_sync(&s, &hubspot, FailureKind::BadPayload).await;
    let retry_at = t(&run.next_attempt_at)
        .expect("unreadable data is retried at the next scheduled sync, which the failure names");
    let n = interruption(&s, |_| true).await;
    assert!(names(&n.body, retry_at), "{} / {retry_at}", n.body);
    assert!(
        n.body.contains("HubSpot sent data we could not read"),
        "{}",
        n.body
    );

    // A manual decision must name companies of the workspace.
    let decide = |linkedin_id: &str, crm_id: &str| {
        let mut matches = s.matches.clone();
        let req = s.req(api::RecordDecisionRequest {
            workspace_id: s.workspace_id.clone(),
            linkedin_id: linkedin_id.into(),
            crm_id: crm_id.into(),
            decision: rp_platform::contracts::events::v1::MatchDecision::Link as i32,
        });
        async move { matches.record_decision(req).await }
    };
    let e = decide("not-a-uuid", "1").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let e = decide("1' OR '1'='1", "1").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("linkedin_id: "), "{}", e.message());
    assert!(
        !s.events()
            .await
            .iter()
            .any(|e| e.event_type() == "MatchDecisionRecorded"),
        "nothing recorded"
    );
    s.stop().await;
}
