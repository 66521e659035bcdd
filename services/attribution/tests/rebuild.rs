//! Rebuilding the projection from the event log gives exactly the numbers the live service
//! computed: every dashboard, every drill-down, every deal's explanation, for every window and
//! model, through the library function and through `attribution rebuild`.

mod support;

use attribution::rebuild::rebuild;
use rp_platform::contracts::api::v1::{
    AttributionModel as Model, Dashboard, DashboardMetric as Metric, DealAttribution,
    ListDashboardDealsRequest, ListDashboardDealsResponse,
};
use rp_platform::contracts::events::v1::MatchChangeKind;
use support::*;

const MODELS: [Model; 5] = [
    Model::FirstTouch,
    Model::LastTouch,
    Model::Linear,
    Model::TimeDecay,
    Model::UShaped,
];
const METRICS: [Metric; 4] = [
    Metric::InfluencedPipeline,
    Metric::InfluencedRevenue,
    Metric::SourcedPipeline,
    Metric::SourcedRevenue,
];
const DEALS: [&str; 11] = [
    "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9", "D10", "D11",
];

type Outcome<T> = Result<T, (tonic::Code, String)>;

/// Everything a user can read.
#[derive(Debug, PartialEq)]
struct Everything {
    dashboards: Vec<Outcome<Dashboard>>,
    deals: Vec<Outcome<ListDashboardDealsResponse>>,
    explanations: Vec<Outcome<DealAttribution>>,
}

fn outcome<T>(r: Result<T, tonic::Status>) -> Outcome<T> {
    r.map_err(|s| (s.code(), s.message().to_string()))
}

async fn everything(w: &World) -> Everything {
    let mut e = Everything {
        dashboards: Vec::new(),
        deals: Vec::new(),
        explanations: Vec::new(),
    };
    for window in [30, 90] {
        for model in MODELS {
            e.dashboards
                .push(outcome(w.try_dashboard(window, model).await));
        }
        for metric in METRICS {
            let r = w
                .client
                .clone()
                .list_dashboard_deals(w.req(ListDashboardDealsRequest {
                    workspace_id: w.ws.clone(),
                    window_days: window,
                    metric: metric as i32,
                    page_size: 500,
                    ..Default::default()
                }))
                .await
                .map(tonic::Response::into_inner);
            e.deals.push(outcome(r));
        }
        for deal in DEALS {
            e.explanations.push(outcome(w.try_deal(window, deal).await));
        }
    }
    e
}

#[tokio::test]
async fn rebuilding_from_the_log_gives_exactly_the_same_numbers() {
    let mut w = World::new("starter").await;
    // Sync 1: the Acme workspace.
    let matches = acme_records(&w, "run-1").await;
    w.complete("run-1", matches, at(ACME_AS_OF)).await;
    // Sync 2 the next day: D1 is won, D11 appears, o3 engages again, o6's match is removed.
    w.deals(
        "run-2",
        vec![
            deal(
                "D1",
                &["c1"],
                "won",
                "10000.00",
                "USD",
                "2026-06-10",
                Some("2026-06-29"),
            ),
            deal("D11", &["c3"], "open", "450.75", "EUR", "2026-06-30", None),
        ],
    )
    .await;
    w.engagement("run-2", vec![row("o3", "k3", "2026-06-30")])
        .await;
    w.complete(
        "run-2",
        vec![change(MatchChangeKind::Removed, "o6", "c6")],
        at("2026-07-01T12:00:00Z"),
    )
    .await;
    // A manual decision, then sync 3.
    w.manual_match(vec![new_match("o3", "c3")]).await;
    w.complete("run-3", vec![], at("2026-07-02T12:00:00Z"))
        .await;

    let live = everything(&w).await;
    let d = live.dashboards[2].as_ref().unwrap();
    assert_eq!((d.sync_run_id.as_str(), d.version), ("run-3", 3));
    // D11 (o3 -> c3 by hand) counts now.
    assert!(
        live.deals[0]
            .as_ref()
            .unwrap()
            .deals
            .iter()
            .any(|d| d.deal_id == "D11")
    );

    // The library function, with the consumer stopped (as an operator would run it).
    w.stop_consumer().await;
    let report = rebuild(&w.env.pool, &w.settings).await.unwrap();
    assert_eq!(report.switches, 3);
    // WorkspaceCreated, 7 + 2 RecordsPulled, 4 AccountsMatched (3 syncs, 1 manual).
    assert_eq!(report.events, 14, "{report:?}");
    assert_eq!(everything(&w).await, live);

    // The command line does the same.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_attribution"));
    for (k, v) in w.env.env_vars() {
        cmd.env(k, v);
    }
    let out = cmd.arg("rebuild").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("3 completed syncs recomputed"), "{said}");
    assert_eq!(everything(&w).await, live);

    // And the service carries on from the rebuilt projection.
    w.start_consumer();
    w.complete("run-4", vec![], at("2026-07-03T12:00:00Z"))
        .await;
    let d = w.dashboard(30, Model::Linear).await;
    assert_eq!((d.sync_run_id.as_str(), d.version), ("run-4", 4));
    w.stop().await;
}
