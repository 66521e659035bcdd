//! Faults of our own side during a first HubSpot sync, across the real service processes
//! (issue 11, items 3 and 4):
//!
//! * the database goes away for a few seconds mid-pull (a PostgreSQL restart): the pull retries
//!   within the run, resumes from the last appended page, and the user sees nothing; only an
//!   outage longer than the retry bound fails the run (as internal, once);
//! * the connector process is killed (`kill -9`) mid-pull: a new process takes the job over
//!   within seconds and continues from the last appended page.
//!
//! The database outage is a TCP proxy between the connector and PostgreSQL
//! ([`e2e::faults::DbProxy`]); the machine's PostgreSQL, which other tests use, is never
//! touched.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use e2e::faults::DbProxy;
use e2e::{SandboxData, Sizes, System, WAIT};
use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1::{FailureKind, ObjectType, envelope::Event};
use rp_platform::eventlog::RecordedEvent;
use rp_platform::testing::eventually;
use serde_json::{Value, json};

/// HubSpot list pages hold this many records: a resumed pull may read one page again.
const PAGE: usize = 100;

/// Enough HubSpot data for a first sync that lasts a few seconds at the latency below.
fn data(companies: usize) -> SandboxData {
    SandboxData {
        seed: 11,
        sizes: Sizes {
            companies,
            contacts: 1_500,
            deals: 300,
            engaged_orgs: 20,
            days: 30,
        },
        hubspot_rate_limit: false,
    }
}

/// Every HubSpot API response waits this long: a pull of a few thousand records takes seconds.
const LATENCY_MS: u64 = 25;

/// The run's RecordsPulled events.
fn batches<'a>(events: &'a [RecordedEvent], run: &str) -> Vec<&'a RecordedEvent> {
    events
        .iter()
        .filter(|e| matches!(e.event(), Some(Event::RecordsPulled(r)) if r.sync_run_id == run))
        .collect()
}

/// Record ids the run appended, per object type (with repeats).
fn pulled(events: &[RecordedEvent], run: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for e in batches(events, run) {
        let Some(Event::RecordsPulled(r)) = e.event() else {
            continue;
        };
        let companies = r.companies.iter().map(|c| c.id.clone());
        let contacts = r.contacts.iter().map(|c| c.id.clone());
        let deals = r.deals.iter().map(|d| d.id.clone());
        out.entry("companies").or_default().extend(companies);
        out.entry("contacts").or_default().extend(contacts);
        out.entry("deals").or_default().extend(deals);
    }
    out
}

fn sync_failed<'a>(events: &'a [RecordedEvent], run: &str) -> Vec<&'a RecordedEvent> {
    events
        .iter()
        .filter(|e| matches!(e.event(), Some(Event::SyncFailed(f)) if f.sync_run_id == run))
        .collect()
}

/// How many records of each CRM object the sandbox holds.
async fn truth(s: &System) -> BTreeMap<&'static str, usize> {
    let t = s
        .sandbox_admin(
            reqwest::Method::GET,
            "/truth?include=pipelines",
            Value::Null,
        )
        .await;
    ["companies", "contacts", "deals"]
        .into_iter()
        .map(|k| {
            let n = t["counts"][k]
                .as_u64()
                .unwrap_or_else(|| panic!("/admin/truth has no counts.{k}: {}", t["counts"]));
            (k, usize::try_from(n).unwrap_or(usize::MAX))
        })
        .collect()
}

/// Every record of the sandbox is in the run's batches, and none more than one page twice.
fn assert_pulled_once(
    events: &[RecordedEvent],
    run: &str,
    truth: &BTreeMap<&'static str, usize>,
) -> BTreeMap<&'static str, usize> {
    let pulled = pulled(events, run);
    let mut counts = BTreeMap::new();
    for (object, want) in truth {
        let ids = pulled.get(object).cloned().unwrap_or_default();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), *want, "every one of the {want} {object}");
        assert!(
            ids.len() <= want + PAGE,
            "{object}: {} records appended for {want} (at most one page again)",
            ids.len()
        );
        counts.insert(*object, ids.len());
    }
    counts
}

/// Waits until the run has appended at least `n` RecordsPulled of `object`; returns them all.
async fn wait_batches(s: &System, run: &str, object: ObjectType, n: usize) -> usize {
    eventually(WAIT, &format!("{n} batches of {object:?}"), || async {
        let events = s.events().await;
        let all = batches(&events, run);
        let of_object = all
            .iter()
            .filter(
                |e| matches!(e.event(), Some(Event::RecordsPulled(r)) if r.object_type == object as i32),
            )
            .count();
        (of_object >= n).then_some(all.len())
    })
    .await
}

/// A HubSpot integration, connected, with its API answering slowly enough to interrupt a pull.
async fn slow_hubspot(s: &System) -> String {
    let integration = s.connect(api::Provider::Hubspot).await;
    s.sandbox_admin(
        reqwest::Method::PUT,
        "/providers/hubspot/latency",
        json!({"ms": LATENCY_MS}),
    )
    .await;
    integration
}

/// A PostgreSQL restart as the pull met it in production: the moment the pull's next append
/// transaction renews its lease (its first statement), every connection is terminated, that
/// transaction's included, and new connections are refused. Waits for the cut to happen.
async fn restart_database(proxy: &DbProxy) {
    proxy.cut_when_sent("UPDATE pull_jobs SET lease_until");
    eventually(
        WAIT,
        "the database restart to hit a pull transaction",
        || async { proxy.is_cut().then_some(()) },
    )
    .await;
}

/// How long the database stays away in the outage that heals: a PostgreSQL restart's seconds.
/// (The length of the fault, not a wait for something to happen.)
const SHORT_OUTAGE: Duration = Duration::from_secs(4);

/// An outage that does not heal within the (shortened) retry bound.
const LONG_OUTAGE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_database_outage_mid_pull_is_retried_within_the_run_and_the_user_sees_nothing() {
    let (s, proxy) = start_behind(&[]).await;
    let integration = slow_hubspot(&s).await;
    let truth = truth(&s).await;

    let run = s.sync_now(&integration).await.sync_run_id;
    let before = wait_batches(&s, &run, ObjectType::CrmCompany, 2).await;
    restart_database(&proxy).await;
    let cut_at = Instant::now();
    tokio::time::sleep(SHORT_OUTAGE).await;
    proxy.restore().await;
    println!(
        "database away for {:.1} s after {before} batches; {} live connections dropped",
        cut_at.elapsed().as_secs_f64(),
        proxy.dropped()
    );
    assert!(proxy.dropped() > 0, "the connector's connections were cut");

    let finished = s.finished_run(&run).await;
    assert_eq!(finished.state, "completed", "{finished:?}");
    let events = s.events().await;
    assert!(
        sync_failed(&events, &run).is_empty(),
        "no SyncFailed: {:?}",
        sync_failed(&events, &run)
    );
    assert!(
        batches(&events, &run).len() > before,
        "the pull went on after the outage"
    );
    let counts = assert_pulled_once(&events, &run, &truth);
    println!("records appended {counts:?} for {truth:?}");
    assert!(
        s.notifications_list().await.is_empty(),
        "no notification: {:?}",
        s.notifications_list().await
    );
    s.stop().await;
}

#[tokio::test]
async fn a_database_outage_longer_than_the_retry_bound_fails_the_run_as_internal_once() {
    let bound = Duration::from_secs(2);
    let (s, proxy) = start_behind(&[(
        "CONNECTOR_PULL_RETRY_FOR".into(),
        format!("{}ms", bound.as_millis()),
    )])
    .await;
    let integration = slow_hubspot(&s).await;

    let run = s.sync_now(&integration).await.sync_run_id;
    wait_batches(&s, &run, ObjectType::CrmCompany, 1).await;
    restart_database(&proxy).await;
    // Well past the bound, and past the 10 s a connection attempt waits for a refusing server
    // to come back (the length of the fault, not a wait for something to happen).
    tokio::time::sleep(LONG_OUTAGE).await;
    proxy.restore().await;

    let finished = s.finished_run(&run).await;
    assert_eq!(finished.state, "failed", "{finished:?}");
    assert_eq!(
        finished.failure_kind,
        FailureKind::Internal as i32,
        "{finished:?}"
    );
    let n = eventually(WAIT, "the user to be told", || async {
        let n = s.notifications_list().await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    let events = s.events().await;
    assert_eq!(sync_failed(&events, &run).len(), 1, "one SyncFailed");
    assert_eq!(n.len(), 1, "one notification: {n:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_killed_connector_is_taken_over_within_seconds_and_resumes_from_the_last_page() {
    let mut s = System::start_with("growth", &data(8_000), &[]).await;
    let integration = slow_hubspot(&s).await;
    let truth = truth(&s).await;

    let run = s.sync_now(&integration).await.sync_run_id;
    let before = wait_batches(&s, &run, ObjectType::CrmCompany, 2).await;
    let owner = connector::store::lease_owner(&s.env.pool, &run)
        .await
        .unwrap_or_else(|e| panic!("the pull job: {e}"));
    assert!(owner.is_some(), "the pull is running");
    let head = s.env.store.head_position().await.unwrap_or_default();

    s.kill_connector().await;
    let killed = Instant::now();
    s.start_connector(&[]).await;

    let taken_over = eventually(WAIT, "another connector to take the pull over", || async {
        let now = connector::store::lease_owner(&s.env.pool, &run)
            .await
            .ok()?;
        (now.is_some() && now != owner).then(|| killed.elapsed())
    })
    .await;
    let appending = eventually(WAIT, "the new connector's first batch", || async {
        let events = s.events().await;
        batches(&events, &run)
            .iter()
            .any(|e| e.position > head)
            .then(|| killed.elapsed())
    })
    .await;
    println!(
        "kill -9 after {before} batches: taken over after {:.1} s, appending again after {:.1} s",
        taken_over.as_secs_f64(),
        appending.as_secs_f64()
    );
    assert!(
        taken_over < Duration::from_secs(15),
        "taken over within seconds, not after a minute: {taken_over:?}"
    );

    let finished = s.finished_run(&run).await;
    assert_eq!(finished.state, "completed", "{finished:?}");
    let events = s.events().await;
    assert!(sync_failed(&events, &run).is_empty());
    let counts = assert_pulled_once(&events, &run, &truth);
    println!("records appended {counts:?} for {truth:?}");
    s.stop().await;
}

/// The system, with the connector's database connections through a proxy that can be cut.
async fn start_behind(vars: &[(String, String)]) -> (System, DbProxy) {
    // The test's database only exists once the system has made it: start the system, then swap
    // its connector for one behind the proxy (nothing is running on it yet).
    let mut s = System::start_with("growth", &data(3_000), vars).await;
    let proxy = DbProxy::start(&s.env.database_url).await;
    let url = proxy.url(&s.env.database_url);
    s.kill_connector().await;
    s.start_connector(&[("DATABASE_URL".into(), url)]).await;
    (s, proxy)
}
