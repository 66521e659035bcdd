//! The gRPC API's refusals: API keys, other workspaces, windows outside the plan, unknown
//! models and metrics, bad page sizes and tokens, unknown deals, and no numbers before the first
//! completed sync; and paging that carries on in the numbers it started with.

mod support;

use rp_platform::apikeys;
use rp_platform::contracts::api::v1::{
    AttributionModel as Model, DashboardMetric as Metric, GetDashboardRequest,
    GetDealAttributionRequest, ListDashboardDealsRequest,
};
use rp_platform::ids::WorkspaceId;
use support::*;
use tonic::Code;

fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, starts: &str) {
    let s = r.expect_err("the call should be refused");
    assert_eq!(s.code(), code, "{}", s.message());
    assert!(
        s.message().starts_with(starts),
        "{:?} does not start with {starts:?}",
        s.message()
    );
}

#[tokio::test]
async fn calls_need_a_key_for_the_workspace() {
    let w = World::new("growth").await;
    let mut client = w.client.clone();
    let req = || GetDashboardRequest {
        workspace_id: w.ws.clone(),
        window_days: 30,
        model: Model::Linear as i32,
    };
    assert_status(
        client.get_dashboard(tonic::Request::new(req())).await,
        Code::Unauthenticated,
        "missing API key",
    );
    assert_status(
        client.get_dashboard(with_key(req(), "rpk_nope")).await,
        Code::Unauthenticated,
        "malformed API key",
    );
    // A key of another workspace.
    let other = uuid::Uuid::new_v4();
    w.env
        .store
        .append(
            &format!("workspace-{other}"),
            rp_platform::eventlog::ExpectedVersion::NoStream,
            vec![rp_platform::eventlog::NewEvent::new(
                other.to_string(),
                rp_platform::contracts::events::v1::envelope::Event::WorkspaceCreated(
                    Default::default(),
                ),
            )],
        )
        .await
        .unwrap();
    let other_key = apikeys::issue(&w.env.pool, WorkspaceId::new(other), "other")
        .await
        .unwrap()
        .plaintext;
    assert_status(
        client.get_dashboard(with_key(req(), &other_key)).await,
        Code::PermissionDenied,
        "this API key belongs to workspace",
    );
    assert_status(
        client
            .list_dashboard_deals(with_key(
                ListDashboardDealsRequest {
                    workspace_id: w.ws.clone(),
                    window_days: 30,
                    metric: 1,
                    ..Default::default()
                },
                &other_key,
            ))
            .await,
        Code::PermissionDenied,
        "this API key belongs to workspace",
    );
    assert_status(
        client
            .get_deal_attribution(with_key(
                GetDealAttributionRequest {
                    workspace_id: w.ws.clone(),
                    window_days: 30,
                    deal_id: "D1".into(),
                },
                &other_key,
            ))
            .await,
        Code::PermissionDenied,
        "this API key belongs to workspace",
    );
    assert_status(
        client
            .get_dashboard(w.req(GetDashboardRequest {
                workspace_id: "not-a-uuid".into(),
                ..req()
            }))
            .await,
        Code::InvalidArgument,
        "workspace_id: ",
    );
    w.stop().await;
}

#[tokio::test]
async fn before_the_first_completed_sync_there_are_no_numbers_yet() {
    let w = World::new("growth").await;
    // Records are in, but no sync has completed.
    let id = w
        .deals(
            "run-1",
            vec![deal("D1", &["c1"], "open", "1", "USD", "2026-06-01", None)],
        )
        .await;
    w.processed(id).await;
    let why = "no sync has completed for workspace";
    assert_status(
        w.try_dashboard(30, Model::Linear).await,
        Code::FailedPrecondition,
        why,
    );
    assert_status(
        w.try_deals(30, Metric::InfluencedPipeline, 0, "").await,
        Code::FailedPrecondition,
        why,
    );
    assert_status(w.try_deal(30, "D1").await, Code::FailedPrecondition, why);
    // A bad argument is still reported as such.
    assert_status(
        w.try_dashboard(45, Model::Linear).await,
        Code::InvalidArgument,
        "window_days: ",
    );
    w.stop().await;
}

#[tokio::test]
async fn bad_arguments_name_the_field_and_unknown_deals_are_not_found() {
    let w = World::new("growth").await;
    let matches = acme_records(&w, "run-1").await;
    w.complete("run-1", matches, at(ACME_AS_OF)).await;
    // The growth plan has 30, 90 and 180 days.
    assert_eq!(
        w.dashboard(180, Model::Linear).await.windows,
        vec![30, 90, 180]
    );

    let s = w.try_dashboard(365, Model::Linear).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(
        s.message(),
        "window_days: must be one of the lookback windows of the workspace's plan: 30, 90, 180 (got 365)"
    );
    assert_status(
        w.try_dashboard(0, Model::Linear).await,
        Code::InvalidArgument,
        "window_days: ",
    );
    assert_status(
        w.try_dashboard(30, Model::Unspecified).await,
        Code::InvalidArgument,
        "model: must be FIRST_TOUCH",
    );
    let mut client = w.client.clone();
    assert_status(
        client
            .get_dashboard(w.req(GetDashboardRequest {
                workspace_id: w.ws.clone(),
                window_days: 30,
                model: 42,
            }))
            .await,
        Code::InvalidArgument,
        "model: ",
    );
    assert_status(
        w.try_deals(30, Metric::Unspecified, 0, "").await,
        Code::InvalidArgument,
        "metric: ",
    );
    assert_status(
        w.try_deals(30, Metric::InfluencedPipeline, 501, "").await,
        Code::InvalidArgument,
        "page_size: ",
    );
    assert_status(
        w.try_deals(30, Metric::InfluencedPipeline, 0, "not-a-token")
            .await,
        Code::InvalidArgument,
        "page_token: ",
    );
    assert_status(
        w.try_deals(45, Metric::InfluencedPipeline, 0, "").await,
        Code::InvalidArgument,
        "window_days: ",
    );
    // A token is for the window and metric it was issued for.
    let first = w
        .try_deals(90, Metric::InfluencedPipeline, 1, "")
        .await
        .unwrap();
    assert!(!first.next_page_token.is_empty());
    assert_status(
        w.try_deals(90, Metric::SourcedPipeline, 1, &first.next_page_token)
            .await,
        Code::InvalidArgument,
        "page_token: was issued for another window or metric",
    );
    assert_status(
        w.try_deals(30, Metric::InfluencedPipeline, 1, &first.next_page_token)
            .await,
        Code::InvalidArgument,
        "page_token: ",
    );
    assert_status(
        w.try_deal(30, "  ").await,
        Code::InvalidArgument,
        "deal_id: ",
    );
    assert_status(
        w.try_deal(30, "no-such-deal").await,
        Code::NotFound,
        "no deal no-such-deal",
    );
    assert_status(
        w.try_deal(31, "D1").await,
        Code::InvalidArgument,
        "window_days: ",
    );
    w.stop().await;
}

#[tokio::test]
async fn paging_carries_on_in_the_numbers_it_started_with() {
    let w = World::new("starter").await;
    let matches = acme_records(&w, "run-1").await;
    w.complete("run-1", matches, at(ACME_AS_OF)).await;

    // One deal a page, newest first.
    let p1 = w
        .try_deals(30, Metric::InfluencedPipeline, 1, "")
        .await
        .unwrap();
    assert_eq!(p1.total_deals, 4);
    assert_eq!(p1.deals[0].deal_id, "D6");
    // A sync completes in between: the next pages still come from the numbers of run-1.
    w.deals(
        "run-2",
        vec![deal("D12", &["c1"], "open", "5", "USD", "2026-06-29", None)],
    )
    .await;
    w.complete("run-2", vec![], at("2026-06-30T18:00:00Z"))
        .await;
    let mut ids = vec![p1.deals[0].deal_id.clone()];
    let mut token = p1.next_page_token;
    while !token.is_empty() {
        let p = w
            .try_deals(30, Metric::InfluencedPipeline, 1, &token)
            .await
            .unwrap();
        assert_eq!(p.sync_run_id, "run-1");
        ids.extend(p.deals.into_iter().map(|d| d.deal_id));
        token = p.next_page_token;
    }
    assert_eq!(ids, vec!["D6", "D5", "D9", "D1"]);
    // A fresh listing shows run-2's numbers.
    assert_eq!(
        w.all_deals(30, Metric::InfluencedPipeline).await,
        vec!["D12", "D6", "D5", "D9", "D1"]
    );
    // After two more syncs a token from run-1 has expired.
    let old = w
        .try_deals(30, Metric::InfluencedPipeline, 1, "")
        .await
        .unwrap()
        .next_page_token;
    w.complete("run-3", vec![], at("2026-06-30T19:00:00Z"))
        .await;
    assert!(
        w.try_deals(30, Metric::InfluencedPipeline, 1, &old)
            .await
            .is_ok()
    );
    w.complete("run-4", vec![], at("2026-06-30T20:00:00Z"))
        .await;
    assert_status(
        w.try_deals(30, Metric::InfluencedPipeline, 1, &old).await,
        Code::InvalidArgument,
        "page_token: has expired",
    );
    w.stop().await;
}

/// Issue 15.3: a read-only key reads the dashboard and its deals exactly as a full key does
/// (Attribution has no method that changes anything).
#[tokio::test]
async fn a_read_only_key_reads_the_dashboard_as_a_full_key_does() {
    let w = World::new("growth").await;
    let ro = apikeys::issue_with_scope(
        &w.env.pool,
        WorkspaceId::parse(&w.ws).unwrap(),
        "wall screen",
        apikeys::Scope::ReadOnly,
    )
    .await
    .unwrap()
    .plaintext;
    let mut client = w.client.clone();
    let mut answers = Vec::new();
    for key in [&w.key, &ro] {
        let dashboard = client
            .get_dashboard(with_key(
                GetDashboardRequest {
                    workspace_id: w.ws.clone(),
                    window_days: 30,
                    model: Model::Linear as i32,
                },
                key,
            ))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.code());
        let deals = client
            .list_dashboard_deals(with_key(
                ListDashboardDealsRequest {
                    workspace_id: w.ws.clone(),
                    window_days: 30,
                    metric: Metric::InfluencedPipeline as i32,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.code());
        assert_ne!(dashboard.as_ref().err(), Some(&Code::PermissionDenied));
        assert_ne!(deals.as_ref().err(), Some(&Code::PermissionDenied));
        answers.push((dashboard, deals));
    }
    assert_eq!(
        answers[0], answers[1],
        "the read-only key is answered as the full key"
    );
    w.stop().await;
}
