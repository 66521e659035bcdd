//! Issue 15.4, every `Attribution` method, table-driven: an error never echoes unbounded input,
//! PERMISSION_DENIED never names the other workspace, a megabyte id is INVALID_ARGUMENT.

mod support;

use futures::future::BoxFuture;
use rp_platform::contracts::api::v1::attribution_client::AttributionClient;
use rp_platform::contracts::api::v1::*;
use rp_platform::testing::{authed, workspace_with_key};
use support::World;
use tonic::transport::Channel;
use tonic::{Code, Status};

const MAX_MESSAGE: usize = 1024;

type Call = fn(
    AttributionClient<Channel>,
    String,
    String,
    String,
) -> BoxFuture<'static, Result<(), Status>>;

/// (method, call(client, key, workspace_id, other string field)).
fn methods() -> Vec<(&'static str, Call)> {
    vec![
        ("GetDashboard", |mut c, k, ws, _| {
            Box::pin(async move {
                c.get_dashboard(authed(
                    &k,
                    GetDashboardRequest {
                        workspace_id: ws,
                        window_days: 30,
                        model: AttributionModel::Linear as i32,
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("ListDashboardDeals", |mut c, k, ws, tok| {
            Box::pin(async move {
                c.list_dashboard_deals(authed(
                    &k,
                    ListDashboardDealsRequest {
                        workspace_id: ws,
                        window_days: 30,
                        page_token: tok,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ())
            })
        }),
        ("GetDealAttribution", |mut c, k, ws, deal| {
            Box::pin(async move {
                c.get_deal_attribution(authed(
                    &k,
                    GetDealAttributionRequest {
                        workspace_id: ws,
                        deal_id: deal,
                        ..Default::default()
                    },
                ))
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
async fn every_attribution_method_answers_bounded_and_never_names_another_workspace() {
    let w = World::new("growth").await;
    let (ws_b, _) = workspace_with_key(&w.env, "growth").await;
    let huge = "5".repeat(1 << 20);
    for (name, call) in methods() {
        let c = || w.client.clone();
        let e = call(c(), w.key.clone(), ws_b.clone(), "d-1".into())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::PermissionDenied, "{name}");
        assert!(!e.message().contains(&ws_b), "{name}: {}", e.message());
        let e = call(c(), w.key.clone(), huge.clone(), "d-1".into())
            .await
            .expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
        bounded(name, &e);
        if let Err(e) = call(c(), w.key.clone(), w.ws.clone(), huge.clone()).await {
            bounded(name, &e);
            if name != "GetDashboard" {
                assert_eq!(e.code(), Code::InvalidArgument, "{name}: {e:?}");
            }
        }
    }
    w.stop().await;
}
