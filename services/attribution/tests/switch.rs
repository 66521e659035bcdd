//! Numbers change only when a sync completes, and all at once: a reader during a cycle sees the
//! previous set until AttributionUpdated, never a mix; manual match decisions wait for the next
//! completed sync; re-pulled and replayed records never double count.

mod support;

use attribution::handlers;
use rp_platform::contracts::api::v1::{AttributionModel as Model, DashboardMetric as Metric};
use rp_platform::contracts::events::v1::{MatchChangeKind, envelope::Event};
use rp_platform::contracts::timestamp;
use rp_platform::eventlog::ReadFilter;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::*;

/// What a reader saw: (sync run, influenced pipeline per currency, deals) from GetDashboard, or
/// (sync run, deal ids) from ListDashboardDeals.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Dashboard(String, Vec<String>, u32),
    Deals(String, Vec<String>),
}

#[tokio::test]
async fn a_reader_during_a_cycle_sees_the_previous_numbers_until_attribution_updated() {
    let w = World::new("starter").await;
    w.pipelines("run-1", vec![pipeline()]).await;
    w.engagement("run-1", vec![row("o1", "k1", "2026-06-20")])
        .await;
    w.deals(
        "run-1",
        vec![deal("A", &["c1"], "open", "100", "USD", "2026-06-10", None)],
    )
    .await;
    w.complete(
        "run-1",
        vec![new_match("o1", "c1")],
        at("2026-06-30T12:00:00Z"),
    )
    .await;
    let old = Seen::Dashboard("run-1".into(), vec!["USD 100.00 1".into()], 1);
    let old_deals = Seen::Deals("run-1".into(), vec!["A".into()]);
    let new = Seen::Dashboard("run-2".into(), vec!["USD 350.00 2".into()], 2);
    let new_deals = Seen::Deals("run-2".into(), vec!["B".into(), "A".into()]);

    // A reader hammering both calls for the whole cycle, until it has read the new set.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (client, key, ws, stop) = (w.client.clone(), w.key.clone(), w.ws.clone(), stop.clone());
        let done = [new.clone(), new_deals.clone()];
        tokio::spawn(async move {
            let mut seen: Vec<Seen> = Vec::new();
            while !stop.load(Ordering::SeqCst) && !done.iter().all(|d| seen.contains(d)) {
                let d = client
                    .clone()
                    .get_dashboard(with_key(
                        rp_platform::contracts::api::v1::GetDashboardRequest {
                            workspace_id: ws.clone(),
                            window_days: 30,
                            model: Model::Linear as i32,
                        },
                        &key,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                let ip = d.influenced_pipeline.clone().unwrap();
                seen.push(Seen::Dashboard(
                    d.sync_run_id,
                    amounts(&Some(ip.clone())),
                    ip.deals,
                ));
                let l = client
                    .clone()
                    .list_dashboard_deals(with_key(
                        rp_platform::contracts::api::v1::ListDashboardDealsRequest {
                            workspace_id: ws.clone(),
                            window_days: 30,
                            metric: Metric::InfluencedPipeline as i32,
                            ..Default::default()
                        },
                        &key,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                seen.push(Seen::Deals(
                    l.sync_run_id,
                    l.deals.into_iter().map(|d| d.deal_id).collect(),
                ));
            }
            seen
        })
    };

    // Sync 2 pulls new engagement, a new deal and a changed amount ...
    for id in [
        w.engagement("run-2", vec![row("o2", "k2", "2026-06-25")])
            .await,
        w.deals(
            "run-2",
            vec![
                deal("A", &["c1"], "open", "300", "USD", "2026-06-10", None),
                deal("B", &["c2"], "open", "50", "USD", "2026-06-22", None),
            ],
        )
        .await,
    ] {
        w.processed(id).await;
        // ... which are in the projection, but the dashboard still shows sync 1.
        let d = w.dashboard(30, Model::Linear).await;
        assert_eq!(d.sync_run_id, "run-1");
        assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 100.00 1"]);
    }
    // The drill-down too reads sync 1's inputs: A's old amount, and no B yet.
    let a = w.try_deal(30, "A").await.unwrap();
    assert_eq!(a.sync_run_id, "run-1");
    assert_eq!(a.deal.unwrap().amount, "100.00");
    assert_eq!(a.touches.len(), 1);
    assert_eq!(
        w.try_deal(30, "B").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    // The first part of its matching result: still sync 1.
    let part = w
        .matched_part(
            "run-2",
            vec![new_match("o2", "c2")],
            1,
            at("2026-07-01T11:59:00Z"),
        )
        .await;
    w.processed(part).await;
    assert_eq!(w.dashboard(30, Model::Linear).await.sync_run_id, "run-1");
    assert_eq!(w.all_deals(30, Metric::InfluencedPipeline).await, vec!["A"]);

    // The last part completes the matching step: the numbers switch with AttributionUpdated.
    let updated = w
        .complete("run-2", vec![], at("2026-07-01T12:00:00Z"))
        .await;
    assert_eq!(updated.as_of, Some(timestamp(at("2026-07-01T12:00:00Z"))));
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(d.sync_run_id, "run-2");
    assert_eq!(d.version, 2);
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 350.00 2"]);
    assert_eq!(
        w.all_deals(30, Metric::InfluencedPipeline).await,
        vec!["B", "A"]
    );
    assert_eq!(
        w.try_deal(30, "A").await.unwrap().deal.unwrap().amount,
        "300.00"
    );
    assert!(w.try_deal(30, "B").await.unwrap().influenced);

    // The reader stops once it has read the new set; check everything it saw.
    let seen = match tokio::time::timeout(WAIT, reader).await {
        Ok(seen) => seen.unwrap(),
        Err(_) => {
            stop.store(true, Ordering::SeqCst);
            panic!("the reader never saw all of sync 2's numbers");
        }
    };
    assert!(seen.contains(&old), "the reader never saw sync 1: {seen:?}");
    assert!(seen.contains(&new), "the reader never saw sync 2: {seen:?}");
    let mut switched = false;
    for s in &seen {
        assert!(
            [&old, &old_deals, &new, &new_deals].contains(&s),
            "a reader saw half a cycle: {s:?}"
        );
        if *s == new || *s == new_deals {
            switched = true;
        } else {
            assert!(
                !switched,
                "a reader went back to sync 1 after seeing sync 2"
            );
        }
    }
    w.stop().await;
}

#[tokio::test]
async fn a_manual_decision_changes_the_numbers_only_at_the_next_completed_sync() {
    let w = World::new("starter").await;
    w.pipelines("run-1", vec![pipeline()]).await;
    w.engagement("run-1", vec![row("o3", "k1", "2026-06-20")])
        .await;
    w.deals(
        "run-1",
        vec![deal("C", &["c3"], "open", "700", "USD", "2026-06-15", None)],
    )
    .await;
    w.complete("run-1", vec![], at("2026-06-30T12:00:00Z"))
        .await;
    let d = w.dashboard(30, Model::FirstTouch).await;
    assert!(amounts(&d.influenced_pipeline).is_empty());
    assert_eq!(d.companies.unwrap().matched_companies, 0);

    // A person links o3 to c3: the matcher appends AccountsMatched without a run.
    let decided = w.manual_match(vec![new_match("o3", "c3")]).await;
    w.processed(decided).await;
    let d = w.dashboard(30, Model::FirstTouch).await;
    assert_eq!((d.sync_run_id.as_str(), d.version), ("run-1", 1));
    assert!(amounts(&d.influenced_pipeline).is_empty());
    assert_eq!(d.companies.unwrap().matched_companies, 0);
    // No sync completed, so no AttributionUpdated was emitted.
    let updates = w
        .env
        .store
        .read_all(
            0,
            100,
            &ReadFilter {
                event_types: vec!["AttributionUpdated".into()],
                workspace_id: Some(w.ws.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(updates.len(), 1);

    // The next completed sync (nothing new pulled) brings the decision into the numbers.
    w.complete("run-2", vec![], at("2026-07-01T12:00:00Z"))
        .await;
    let d = w.dashboard(30, Model::FirstTouch).await;
    assert_eq!((d.sync_run_id.as_str(), d.version), ("run-2", 2));
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 700.00 1"]);
    assert_eq!(d.companies.unwrap().matched_companies, 1);

    // Unlinking works the same way.
    let undone = w
        .manual_match(vec![change(MatchChangeKind::Removed, "o3", "c3")])
        .await;
    w.processed(undone).await;
    assert_eq!(
        amounts(&w.dashboard(30, Model::FirstTouch).await.influenced_pipeline),
        vec!["USD 700.00 1"]
    );
    w.complete("run-3", vec![], at("2026-07-02T12:00:00Z"))
        .await;
    assert!(amounts(&w.dashboard(30, Model::FirstTouch).await.influenced_pipeline).is_empty());
    w.stop().await;
}

#[tokio::test]
async fn re_pulled_and_replayed_records_replace_and_never_double_count() {
    let w = World::new("starter").await;
    w.pipelines("run-1", vec![pipeline()]).await;
    w.engagement("run-1", vec![row("o1", "k1", "2026-06-20")])
        .await;
    w.deals(
        "run-1",
        vec![deal("A", &["c1"], "open", "100", "USD", "2026-06-10", None)],
    )
    .await;
    w.complete(
        "run-1",
        vec![new_match("o1", "c1")],
        at("2026-06-30T12:00:00Z"),
    )
    .await;

    // Sync 2 pulls the same day again (LinkedIn revised its counts) and the same deal again.
    let mut revised = row("o1", "k1", "2026-06-20");
    revised.impressions = 500;
    let pulled = w.engagement("run-2", vec![revised]).await;
    w.processed(pulled).await;
    // Until sync 2 completes, the drill-down shows sync 1's counts.
    assert_eq!(
        w.try_deal(30, "A").await.unwrap().touches[0].impressions,
        120
    );
    w.deals(
        "run-2",
        vec![deal("A", &["c1"], "open", "100", "USD", "2026-06-10", None)],
    )
    .await;
    w.complete(
        "run-2",
        vec![new_match("o1", "c1")],
        at("2026-06-30T13:00:00Z"),
    )
    .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 100.00 1"]);
    assert_eq!(credit_lines(&d), vec!["IP USD k1 100.00 1"]);
    let why = w.try_deal(30, "A").await.unwrap();
    assert_eq!(why.touches.len(), 1);
    assert_eq!(why.touches[0].impressions, 500);

    // Applying every record again (a replay that bypassed the processed marks) changes no row:
    // the next sync's numbers are the same.
    let events = w
        .env
        .store
        .read_all(
            0,
            1000,
            &ReadFilter {
                event_types: vec!["RecordsPulled".into()],
                workspace_id: Some(w.ws.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    let mut tx = w.env.pool.begin().await.unwrap();
    for e in events.iter().chain(events.iter()) {
        assert!(matches!(e.event(), Some(Event::RecordsPulled(_))));
        handlers::apply(&mut tx, e, &w.settings).await.unwrap();
    }
    tx.commit().await.unwrap();
    w.complete("run-3", vec![], at("2026-06-30T14:00:00Z"))
        .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(d.sync_run_id, "run-3");
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 100.00 1"]);
    assert_eq!(credit_lines(&d), vec!["IP USD k1 100.00 1"]);
    // Applying them in log order again left the latest pull in place.
    assert_eq!(
        w.try_deal(30, "A").await.unwrap().touches[0].impressions,
        500
    );
    w.stop().await;
}

#[tokio::test]
async fn an_overlapping_sync_of_another_integration_never_shows_half_its_records() {
    let w = World::new("starter").await;
    // The CRM sync pulls its records ...
    w.pipelines("crm-1", vec![pipeline()]).await;
    let pulled = w
        .deals(
            "crm-1",
            vec![deal("A", &["c1"], "open", "100", "USD", "2026-06-10", None)],
        )
        .await;
    w.processed(pulled).await;
    // ... while the LinkedIn sync completes: its numbers do not include the CRM's records yet.
    w.engagement("li-1", vec![row("o1", "k1", "2026-06-20")])
        .await;
    w.complete(
        "li-1",
        vec![new_match("o1", "c1")],
        at("2026-06-30T12:00:00Z"),
    )
    .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(d.sync_run_id, "li-1");
    assert_eq!(d.companies.unwrap().matched_companies, 1);
    assert_eq!(d.deal_counts.unwrap().total, 0);
    assert!(amounts(&d.influenced_pipeline).is_empty());
    assert_eq!(
        w.try_deal(30, "A").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    // The CRM sync completes: now its deal counts.
    w.complete("crm-1", vec![], at("2026-06-30T12:05:00Z"))
        .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(d.sync_run_id, "crm-1");
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 100.00 1"]);
    w.stop().await;
}

#[tokio::test]
async fn a_failed_syncs_records_count_from_the_next_completed_sync() {
    use rp_platform::contracts::events::v1::{FailureKind, SyncFailed, SyncStep};
    let w = World::new("starter").await;
    w.pipelines("crm-1", vec![pipeline()]).await;
    w.deals(
        "crm-1",
        vec![deal("A", &["c1"], "open", "100", "USD", "2026-06-10", None)],
    )
    .await;
    // The CRM sync fails after its pull moved the checkpoints: these deals will not be pulled
    // again, so they must count from the next completed sync.
    let failed = w
        .append(
            "syncrun-crm-1",
            "crm-1",
            at("2026-06-30T11:00:00Z"),
            Event::SyncFailed(SyncFailed {
                sync_run_id: "crm-1".into(),
                kind: FailureKind::ProviderOutage as i32,
                step: SyncStep::Matching as i32,
                message: "HubSpot is down".into(),
                ..Default::default()
            }),
        )
        .await;
    w.processed(failed).await;
    w.engagement("li-1", vec![row("o1", "k1", "2026-06-20")])
        .await;
    w.complete(
        "li-1",
        vec![new_match("o1", "c1")],
        at("2026-06-30T12:00:00Z"),
    )
    .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 100.00 1"]);
    assert_eq!(w.try_deal(30, "A").await.unwrap().touches.len(), 1);
    w.stop().await;
}
