//! One scenario per statement of the help page (`shared/product/sync-schedule-and-connection-
//! health.md`), across the real service processes (connector, matcher, attribution,
//! notification) with real PostgreSQL, NATS and the provider sandbox, started by [`System`]. The
//! daily schedule is driven by a scheduler on an injectable clock against the same database,
//! instead of waiting.

use chrono::{DateTime, Utc};
use connector::sync::schedule::{DailySchedule, ManualClock};
use connector::sync::scheduler::{Scheduler, SchedulerConfig};
use e2e::{APP, SandboxData, Sizes, System, WAIT};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::from_timestamp;
use rp_platform::testing::eventually;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// The workspace's plan.
const PLAN: &str = "growth";

/// The sandbox's tiny data set (`SandboxConfig::for_tests()`'s), with HubSpot's production limits.
const SANDBOX: SandboxData = SandboxData {
    seed: 42,
    sizes: Sizes::TINY,
    hubspot_rate_limit: true,
};

/// The dashboard (linear model), once it has numbers.
async fn dashboard(s: &System, window_days: u32) -> Option<api::Dashboard> {
    s.attribution
        .clone()
        .get_dashboard(s.req(api::GetDashboardRequest {
            workspace_id: s.workspace_id.clone(),
            window_days,
            model: api::AttributionModel::Linear as i32,
        }))
        .await
        .ok()
        .map(|r| r.into_inner())
        .filter(|d| d.as_of.is_some())
}

/// The requests a provider of the sandbox has received, oldest first.
async fn sandbox_requests(s: &System, provider: &str) -> Vec<Value> {
    let v = s
        .sandbox_admin(
            reqwest::Method::GET,
            &format!("/requests?provider={provider}"),
            json!({}),
        )
        .await;
    v["requests"].as_array().cloned().unwrap_or_default()
}

/// The daily schedule's scheduler, on `clock`, against the system's database.
fn scheduler(s: &System, clock: &ManualClock) -> Scheduler<ManualClock> {
    Scheduler {
        pool: s.env.pool.clone(),
        clock: Arc::new(clock.clone()),
        config: SchedulerConfig::default(),
    }
}

fn t(ts: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.as_ref().and_then(from_timestamp)
}

/// "Sync Now ... runs in the background and the dashboard updates once it completes";
/// "You can see the last sync time on the Connections page"; the fixed sequence of steps;
/// "syncs ... automatically on a daily schedule" at the integration's own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_and_the_daily_schedule_run_the_whole_cycle_and_update_the_numbers() {
    let s = System::start(PLAN, &SANDBOX).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    let linkedin = s.connect(api::Provider::Linkedin).await;
    assert!(
        dashboard(&s, 30).await.is_none(),
        "no numbers before the first completed sync"
    );

    // Sync Now answers at once with a run id; the run goes on in the background.
    let crm = s.sync_now(&hubspot).await;
    assert!(!crm.joined_running);
    let again = s.sync_now(&hubspot).await;
    if again.joined_running {
        assert_eq!(
            again.sync_run_id, crm.sync_run_id,
            "a second click joins the running sync"
        );
    }
    let run = s.finished_run(&crm.sync_run_id).await;
    assert_eq!(run.state, "completed", "{run:?}");
    let steps: Vec<i32> = run.steps.iter().map(|s| s.step).collect();
    use rp_platform::contracts::events::v1::SyncStep;
    assert_eq!(
        steps,
        vec![
            SyncStep::CrmPull as i32,
            SyncStep::Matching as i32,
            SyncStep::Attribution as i32
        ]
    );
    assert!(run.steps[0].records > 0);

    let li = s.sync_now(&linkedin).await;
    let run = s.finished_run(&li.sync_run_id).await;
    assert_eq!(run.state, "completed", "{run:?}");
    let steps: Vec<i32> = run.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        vec![
            SyncStep::LinkedinPull as i32,
            SyncStep::CompanyResolution as i32,
            SyncStep::Matching as i32,
            SyncStep::Attribution as i32
        ]
    );

    // The last sync time shows, and the numbers reflect the completed cycle.
    let h = s
        .health_of(&linkedin, |h| h.last_successful_sync_at.is_some())
        .await;
    assert_eq!(h.last_attempt_outcome, "completed");
    assert!(h.next_scheduled_sync_at.is_some());
    let d30 = eventually(WAIT, "the dashboard", || async {
        dashboard(&s, 30)
            .await
            .filter(|d| d.sync_run_id == li.sync_run_id)
    })
    .await;
    let companies = d30.companies.expect("company numbers");
    assert!(
        companies.engaged_companies > 0 && companies.matched_companies > 0,
        "{companies:?}"
    );
    // As of the cycle that produced them: the attribution step, the last step before completion.
    let (as_of, finished) = (
        t(&d30.as_of).expect("as_of"),
        t(&run.finished_at).expect("finished_at"),
    );
    assert!(
        as_of <= finished && finished - as_of < chrono::Duration::seconds(60),
        "{as_of} vs {finished}"
    );

    // One sync is one causal chain across services: every event of the run shares its correlation.
    let chain = s.events().await;
    let run_events: Vec<_> = chain
        .iter()
        .filter(|e| e.meta().correlation_id == li.sync_run_id)
        .collect();
    let types: HashSet<&str> = run_events.iter().map(|e| e.event_type()).collect();
    for ty in [
        "SyncRequested",
        "SyncStarted",
        "RecordsPulled",
        "CompaniesResolved",
        "AccountsMatched",
        "AttributionUpdated",
        "SyncCompleted",
    ] {
        assert!(types.contains(ty), "{ty} is in the run's chain: {types:?}");
    }
    let traces: HashSet<&str> = run_events
        .iter()
        .filter_map(|e| rp_platform::telemetry::trace_id_of_traceparent(&e.meta().traceparent))
        .collect();
    assert_eq!(traces.len(), 1, "one trace per sync across services");

    // The daily schedule fires at the integration's own time.
    let set = s
        .sync
        .clone()
        .set_sync_schedule(s.req(api::SetSyncScheduleRequest {
            integration_id: hubspot.clone(),
            local_time: "06:30".into(),
            time_zone: "America/New_York".into(),
        }))
        .await
        .expect("SetSyncSchedule")
        .into_inner();
    let slot = t(&set.next_scheduled_sync_at).expect("next slot");
    // That day's LinkedIn sync comes first, at its own time (the daily cycle's order).
    let li_health = s.health_of(&linkedin, |_| true).await;
    let li_slot = DailySchedule::parse(
        &li_health.schedule_local_time,
        &li_health.schedule_time_zone,
    )
    .expect("LinkedIn's schedule")
    .last_slot_at_or_before(slot);
    let clock = ManualClock::new(li_slot + chrono::Duration::seconds(5));
    let scheduler = scheduler(&s, &clock);
    for run in scheduler.tick().await.expect("tick").started {
        assert_eq!(s.finished_run(run.as_str()).await.state, "completed");
    }
    clock.set(slot - chrono::Duration::seconds(30));
    assert!(
        scheduler.tick().await.expect("tick").started.is_empty(),
        "not before its time"
    );
    clock.set(slot + chrono::Duration::seconds(5));
    let fired = scheduler.tick().await.expect("tick");
    assert_eq!(fired.started.len(), 1, "{fired:?}");
    let run = s.finished_run(fired.started[0].as_str()).await;
    assert_eq!(run.state, "completed");
    assert_eq!(
        run.trigger,
        rp_platform::contracts::events::v1::SyncTrigger::Scheduled as i32
    );
    assert!(
        s.notifications_list().await.is_empty(),
        "nothing went wrong: no notification"
    );
    s.stop().await;
}

/// "Disconnected: the authorization has expired or been revoked, and syncing has stopped";
/// "notifications ... when ... a connection is disconnected ... which integration was affected and
/// a link directly to the Connections page"; "Disconnecting stops future syncs but does not
/// delete historical data"; "Reconnect ... resumes incremental sync from the last successful
/// point, so previously synced records are not re-pulled".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_access_disconnects_and_notifies_disconnect_keeps_history_reconnect_resumes() {
    let s = System::start(PLAN, &SANDBOX).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.sync_to_completion(&hubspot).await;

    // Access revoked in HubSpot (and the current token expired): the next sync disconnects.
    s.sandbox_admin(
        reqwest::Method::POST,
        "/providers/hubspot/grants/revoke",
        json!({}),
    )
    .await;
    s.sandbox_admin(
        reqwest::Method::POST,
        "/providers/hubspot/tokens/expire",
        json!({}),
    )
    .await;
    let run = s
        .finished_run(&s.sync_now(&hubspot).await.sync_run_id)
        .await;
    assert_eq!(run.state, "interrupted", "{run:?}");
    let h = s
        .health_of(&hubspot, |h| {
            h.status == api::ConnectionStatus::Disconnected as i32
        })
        .await;
    assert!(
        h.disconnect_reason.contains("revoked"),
        "{}",
        h.disconnect_reason
    );
    assert!(h.next_scheduled_sync_at.is_none(), "syncing has stopped");
    let n = eventually(WAIT, "the disconnection notification", || async {
        s.notifications_list()
            .await
            .into_iter()
            .find(|n| n.kind == api::NotificationKind::ConnectionDisconnected as i32)
    })
    .await;
    assert_eq!(n.provider, "HubSpot");
    assert_eq!(n.integration_id, hubspot);
    assert_eq!(n.link, format!("{APP}/workspace/connections"));
    let err = s
        .sync
        .clone()
        .sync_now(s.req(api::SyncNowRequest {
            integration_id: hubspot.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "Sync Now says to reconnect: {}",
        err.message()
    );

    // While disconnected the schedule does not fire, and the history is still there.
    let clock = ManualClock::new(Utc::now() + chrono::Duration::days(2));
    assert!(
        scheduler(&s, &clock)
            .tick()
            .await
            .expect("tick")
            .started
            .is_empty()
    );
    let runs = s
        .sync
        .clone()
        .list_sync_runs(s.req(api::ListSyncRunsRequest {
            integration_id: hubspot.clone(),
            ..Default::default()
        }))
        .await
        .expect("history")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 2);
    assert!(
        dashboard(&s, 30).await.is_some(),
        "numbers stay after a disconnection"
    );

    // Reconnect: the OAuth flow again; the next sync resumes from the checkpoint.
    let re = s
        .connections
        .clone()
        .reconnect(s.req(api::ReconnectRequest {
            workspace_id: s.workspace_id.clone(),
            integration_id: hubspot.clone(),
        }))
        .await
        .expect("Reconnect")
        .into_inner();
    assert_eq!(re.integration_id, hubspot, "the same integration");
    s.complete_oauth(&re.authorize_url).await;
    s.health_of(&hubspot, |h| {
        h.status == api::ConnectionStatus::Connected as i32
    })
    .await;
    let resolved = eventually(WAIT, "the resolving notification", || async {
        s.notifications_list()
            .await
            .into_iter()
            .find(|n| n.kind == api::NotificationKind::Resolved as i32)
    })
    .await;
    assert_eq!(resolved.resolves_notification_id, n.notification_id);

    let before = sandbox_requests(&s, "hubspot").await.len();
    s.sync_to_completion(&hubspot).await;
    let after = sandbox_requests(&s, "hubspot").await;
    let listed_pages = after[before..]
        .iter()
        .filter(|r| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/crm/v3/objects/"))
                // Deletions: HubSpot's search never returns archived records, so each sync reads
                // the archived list (and keeps only what was archived since its checkpoint).
                && !r["query"]
                    .as_str()
                    .is_some_and(|q| q.contains("archived=true"))
        })
        .count();
    assert_eq!(
        listed_pages, 0,
        "no full listing after a reconnect: only changes since the checkpoint"
    );
    s.stop().await;
}

/// "If a sync is interrupted, Revenue Proven updates the connection status and sends you a
/// notification"; "For provider outages, Revenue Proven retries automatically on the next
/// scheduled sync".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_interrupts_notifies_is_retried_at_the_next_scheduled_sync_and_resolves() {
    let s = System::start(PLAN, &SANDBOX).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    s.sandbox_admin(
        reqwest::Method::PUT,
        "/providers/hubspot/outage",
        json!({"mode": "503"}),
    )
    .await;
    let run = s
        .finished_run(&s.sync_now(&hubspot).await.sync_run_id)
        .await;
    assert_eq!(run.state, "failed");
    assert_eq!(
        run.failure_kind,
        rp_platform::contracts::events::v1::FailureKind::ProviderOutage as i32
    );
    let retry_at = t(&run.next_attempt_at).expect("the next attempt is the next scheduled sync");
    let h = s
        .health_of(&hubspot, |h| {
            h.last_attempt_outcome == "failed: provider_outage"
        })
        .await;
    assert_eq!(
        h.status,
        api::ConnectionStatus::Connected as i32,
        "an outage does not disconnect"
    );
    assert_eq!(t(&h.next_scheduled_sync_at), Some(retry_at));
    let n = eventually(WAIT, "the interruption notification", || async {
        s.notifications_list()
            .await
            .into_iter()
            .find(|n| n.kind == api::NotificationKind::SyncInterrupted as i32)
    })
    .await;
    assert_eq!(n.provider, "HubSpot");
    assert_eq!(n.link, format!("{APP}/workspace/connections"));

    // The provider recovers; at the next scheduled sync the retry succeeds and the incident ends.
    s.sandbox_admin(
        reqwest::Method::DELETE,
        "/providers/hubspot/outage",
        json!({}),
    )
    .await;
    let clock = ManualClock::new(retry_at + chrono::Duration::seconds(5));
    let fired = scheduler(&s, &clock).tick().await.expect("tick");
    assert_eq!(fired.started.len(), 1, "{fired:?}");
    let run = s.finished_run(fired.started[0].as_str()).await;
    assert_eq!(run.state, "completed", "{run:?}");
    let resolved = eventually(WAIT, "the resolving notification", || async {
        s.notifications_list()
            .await
            .into_iter()
            .find(|r| r.kind == api::NotificationKind::Resolved as i32)
    })
    .await;
    assert_eq!(resolved.resolves_notification_id, n.notification_id);
    let interruptions = s
        .notifications_list()
        .await
        .into_iter()
        .filter(|n| n.kind == api::NotificationKind::SyncInterrupted as i32)
        .count();
    assert_eq!(interruptions, 1, "one notification per incident");
    s.stop().await;
}

/// "Each sync cycle processes your integrations in a fixed sequence so that each step has fresh
/// data to work with": LinkedIn engagement and company resolution, then the CRM pull, matching and
/// attribution. With the default times LinkedIn comes first; a CRM sync whose time comes while the
/// same day's LinkedIn sync is due or running waits for it, so matching and attribution run on both
/// fresh pulls (docs/sync.md, "The daily cycle's order").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cycle_pulls_linkedin_before_the_crm() {
    let s = System::start(PLAN, &SANDBOX).await;
    let hubspot = s.connect(api::Provider::Hubspot).await;
    let linkedin = s.connect(api::Provider::Linkedin).await;

    // The defaults keep LinkedIn first.
    let li = s.health_of(&linkedin, |_| true).await;
    let crm = s.health_of(&hubspot, |_| true).await;
    assert!(
        li.schedule_local_time < crm.schedule_local_time,
        "default times: LinkedIn {} before HubSpot {}",
        li.schedule_local_time,
        crm.schedule_local_time
    );

    // The user puts both at the same time: the CRM still waits for LinkedIn.
    let mut slot = None;
    for id in [&hubspot, &linkedin] {
        let set = s
            .sync
            .clone()
            .set_sync_schedule(s.req(api::SetSyncScheduleRequest {
                integration_id: id.clone(),
                local_time: "07:15".into(),
                time_zone: "Europe/Berlin".into(),
            }))
            .await
            .expect("SetSyncSchedule")
            .into_inner();
        slot = t(&set.next_scheduled_sync_at);
    }
    let slot = slot.expect("the next slot");
    let clock = ManualClock::new(slot + chrono::Duration::seconds(5));
    let scheduler = scheduler(&s, &clock);
    let first = scheduler.tick().await.expect("tick");
    assert_eq!(first.started.len(), 1, "LinkedIn alone starts: {first:?}");
    assert_eq!(first.held, 1, "HubSpot waits: {first:?}");
    let li_run = first.started[0].clone();

    // The scheduler keeps ticking; HubSpot starts only once LinkedIn's sync has finished.
    let crm_run = eventually(WAIT, "HubSpot's scheduled sync to start", || async {
        let tick = scheduler.tick().await.expect("tick");
        assert!(tick.started.len() <= 1, "{tick:?}");
        tick.started.into_iter().next()
    })
    .await;
    let log = s.events().await;
    let position = |pred: &dyn Fn(&rp_platform::eventlog::RecordedEvent) -> bool| {
        log.iter()
            .find(|e| pred(e))
            .map(|e| e.position)
            .expect("the event is in the log")
    };
    let li_done = position(&|e| {
        e.event_type() == "SyncCompleted" && e.meta().correlation_id == li_run.as_str()
    });
    let crm_requested = position(&|e| {
        e.event_type() == "SyncRequested" && e.meta().correlation_id == crm_run.as_str()
    });
    assert!(
        li_done < crm_requested,
        "LinkedIn's sync finished (at {li_done}) before HubSpot's was requested (at {crm_requested})"
    );
    let run = s.finished_run(crm_run.as_str()).await;
    assert_eq!(run.state, "completed", "{run:?}");
    assert_eq!(
        run.trigger,
        rp_platform::contracts::events::v1::SyncTrigger::Scheduled as i32
    );
    s.stop().await;
}
