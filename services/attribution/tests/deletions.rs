//! CRM deletions: a deal deleted in the CRM, and a company deleted with its matches, leave the
//! numbers at the next completed sync, all at once like every other change; a rebuild from the
//! log gives the same numbers.

mod support;

use attribution::rebuild::rebuild;
use rp_platform::contracts::api::v1::{AttributionModel as Model, DashboardMetric as Metric};
use rp_platform::contracts::events::v1::{CrmCompany, MatchChangeKind};
use support::*;

#[tokio::test]
async fn a_deleted_deal_and_a_deleted_company_leave_the_numbers_at_the_next_completed_sync() {
    let mut w = World::new("starter").await;
    w.pipelines("run-1", vec![pipeline()]).await;
    w.engagement(
        "run-1",
        vec![row("o1", "k1", "2026-06-20"), row("o2", "k1", "2026-06-21")],
    )
    .await;
    w.companies(
        "run-1",
        vec![company("c1", "Acme"), company("c2", "Globex")],
    )
    .await;
    w.deals(
        "run-1",
        vec![
            deal("A", &["c1"], "open", "100", "USD", "2026-06-10", None),
            deal("B", &["c2"], "open", "250", "USD", "2026-06-12", None),
            deal("C", &["c1"], "open", "700", "USD", "2026-06-15", None),
        ],
    )
    .await;
    w.complete(
        "run-1",
        vec![new_match("o1", "c1"), new_match("o2", "c2")],
        at("2026-06-30T12:00:00Z"),
    )
    .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 1050.00 3"]);
    assert_eq!(d.companies.unwrap().matched_companies, 2);

    // The next CRM sync: deal A deleted, company c2 deleted (the matcher removes o2 <-> c2).
    let pulled = w.deals("run-2", vec![deleted("A")]).await;
    w.companies(
        "run-2",
        vec![CrmCompany {
            id: "c2".into(),
            deleted: true,
            ..Default::default()
        }],
    )
    .await;
    w.processed(pulled).await;
    // Until the sync completes, readers see sync 1's numbers, deal A included.
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!((d.sync_run_id.as_str(), d.version), ("run-1", 1));
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 1050.00 3"]);
    assert!(w.try_deal(30, "A").await.is_ok());

    w.complete(
        "run-2",
        vec![change(MatchChangeKind::Removed, "o2", "c2")],
        at("2026-07-01T12:00:00Z"),
    )
    .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!((d.sync_run_id.as_str(), d.version), ("run-2", 2));
    assert_eq!(amounts(&d.influenced_pipeline), vec!["USD 700.00 1"]);
    assert_eq!(d.companies.unwrap().matched_companies, 1);
    assert_eq!(w.all_deals(30, Metric::InfluencedPipeline).await, vec!["C"]);
    let gone = w.try_deal(30, "A").await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");

    // Rebuilt from the log: the same numbers.
    let live = (
        w.dashboard(30, Model::Linear).await,
        w.all_deals(30, Metric::InfluencedPipeline).await,
        w.try_deal(30, "C").await.unwrap(),
    );
    w.stop_consumer().await;
    rebuild(&w.env.pool, &w.settings).await.unwrap();
    let rebuilt = (
        w.dashboard(30, Model::Linear).await,
        w.all_deals(30, Metric::InfluencedPipeline).await,
        w.try_deal(30, "C").await.unwrap(),
    );
    assert_eq!(rebuilt, live);
    assert_eq!(
        w.try_deal(30, "A").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    w.stop().await;
}
