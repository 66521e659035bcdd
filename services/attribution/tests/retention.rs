//! Superseded dashboard versions are pruned as part of every switch (docs/storage.md, "The
//! rule"): the current and the previous version stay, with every input they read (the
//! engagement and deal rows valid at either, the copies of stages and matches); older versions
//! and the rows only they read are deleted in the switch's transaction.
//!
//! The oracle is what a user reads: a drill-down paging through the previous version while a
//! switch prunes the one before it finishes with exactly the list it started on, and the
//! current numbers equal those of a projection rebuilt from the log.

mod support;

use attribution::rebuild::rebuild;
use rp_platform::contracts::api::v1::{
    AttributionModel as Model, DashboardDeal, DashboardMetric as Metric,
};
use rp_platform::contracts::events::v1::MatchChangeKind;
use support::*;

/// The tables that hold one set of rows per dashboard version.
const VERSIONED: [&str; 6] = [
    "attribution_versions",
    "attribution_window_numbers",
    "attribution_metric_totals",
    "attribution_metric_amounts",
    "attribution_campaign_credits",
    "attribution_version_stages",
];

async fn versions_in(w: &World, table: &str) -> Vec<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT version FROM {table} WHERE workspace_id = $1 ORDER BY version"
    )))
    .bind(&w.ws)
    .fetch_all(&w.env.pool)
    .await
    .unwrap()
}

async fn engagement_rows(w: &World) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE valid_to IS NOT NULL) \
         FROM attribution_engagement WHERE workspace_id = $1",
    )
    .bind(&w.ws)
    .fetch_one(&w.env.pool)
    .await
    .unwrap()
}

/// Every deal behind the influenced pipeline of 90 days, page by page, with its explanation.
async fn pages(w: &World, first_token: &str) -> Vec<DashboardDeal> {
    let mut out = Vec::new();
    let mut token = first_token.to_string();
    loop {
        let page = w
            .try_deals(90, Metric::InfluencedPipeline, 1, &token)
            .await
            .unwrap_or_else(|s| panic!("ListDashboardDeals: {s:?}"));
        out.extend(page.deals);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn dashboards(w: &World) -> Vec<rp_platform::contracts::api::v1::Dashboard> {
    let mut out = Vec::new();
    for window in [30, 90] {
        for model in [
            Model::FirstTouch,
            Model::LastTouch,
            Model::Linear,
            Model::TimeDecay,
            Model::UShaped,
        ] {
            out.push(w.dashboard(window, model).await);
        }
    }
    out
}

#[tokio::test]
async fn superseded_versions_go_and_what_readers_need_stays() {
    let mut w = World::new("starter").await;
    let matches = acme_records(&w, "run-1").await;
    w.complete("run-1", matches, at(ACME_AS_OF)).await;

    for (k, day) in [(2, "07-01"), (3, "07-02"), (4, "07-03"), (5, "07-04")] {
        let run = format!("run-{k}");
        // Every sync re-pulls o1's and o3's last days with new counts (their rows close at
        // this version and new ones open), adds a day of engagement and moves a deal.
        let mut changed = row("o1", "k3", "2026-06-23");
        changed.impressions = 100 + k;
        let mut again = row("o3", "k1", "2026-06-28");
        again.clicks = 1 + k;
        w.engagement(
            &run,
            vec![changed, again, row("o2", "k2", &format!("2026-{day}"))],
        )
        .await;
        w.deals(
            &run,
            vec![deal(
                "D4",
                &["c3"],
                "open",
                &format!("{}", 3000 + k),
                "USD",
                "2026-06-10",
                None,
            )],
        )
        .await;

        // A reader starts paging the current version (k - 1) before the switch to k ...
        let before = pages(&w, "").await;
        let first = w
            .try_deals(90, Metric::InfluencedPipeline, 1, "")
            .await
            .unwrap();
        assert!(!first.next_page_token.is_empty(), "more than one deal");
        let (rows_before, closed_before) = engagement_rows(&w).await;

        // At the third sync the matcher removes o6 <-> c6 (D9's company): the previous version
        // still explains D9 with it until the switch after.
        let changes = if k == 3 {
            vec![change(MatchChangeKind::Removed, "o6", "c6")]
        } else {
            vec![]
        };
        w.complete(&run, changes, at(&format!("2026-{day}T12:00:00Z")))
            .await;
        let current = k;

        // ... and finishes on the same version after the switch pruned k - 2.
        let mut finished = first.deals.clone();
        finished.extend(pages(&w, &first.next_page_token).await);
        assert_eq!(finished, before, "paging across the switch to version {k}");

        // Only the current and the previous version remain, in every versioned table.
        for t in VERSIONED {
            let kept = versions_in(&w, t).await;
            assert!(
                kept.iter().all(|v| *v == current || *v == current - 1),
                "{t} keeps {kept:?} at version {current}"
            );
        }
        assert_eq!(
            versions_in(&w, "attribution_versions").await,
            vec![current - 1, current]
        );
        // No engagement row only older versions read: a row closed at or before the previous
        // version is gone; rows still valid at the previous version stay.
        let stale: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM attribution_engagement WHERE workspace_id = $1 AND valid_to <= $2",
        )
        .bind(&w.ws)
        .bind(current - 1)
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
        assert_eq!(stale, 0, "engagement rows of pruned versions at {current}");
        let stale_lists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM attribution_deal_windows WHERE workspace_id = $1 AND valid_to <= $2",
        )
        .bind(&w.ws)
        .bind(current - 1)
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
        assert_eq!(
            stale_lists, 0,
            "deal-window rows of pruned versions at {current}"
        );
        // Deals are versioned in place too: D4 changed at every sync, so it has its current row
        // and the previous version's, no more.
        let d4: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT valid_from, valid_to FROM attribution_deals \
             WHERE workspace_id = $1 AND deal_id = 'D4' ORDER BY valid_from",
        )
        .bind(&w.ws)
        .fetch_all(&w.env.pool)
        .await
        .unwrap();
        assert_eq!(
            d4,
            vec![(current - 1, Some(current)), (current, None)],
            "D4's rows at version {current}"
        );
        let (rows_after, closed_after) = engagement_rows(&w).await;
        if k >= 3 {
            // Two rows closed at this switch, two closed at the last one pruned: flat.
            assert_eq!(closed_after, 2, "closed rows kept at version {current}");
            assert_eq!(closed_before, 2);
            assert_eq!(
                rows_after,
                rows_before + 2 + 1 - 2,
                "rows at version {current}"
            );
        }
    }

    // The removed match's row went when the last version that read it was pruned.
    let o6: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_matches WHERE workspace_id = $1 AND linkedin_id = 'o6'",
    )
    .bind(&w.ws)
    .fetch_one(&w.env.pool)
    .await
    .unwrap();
    assert_eq!(o6, 0, "o6's removed match is pruned");

    // The current numbers are exactly what a projection rebuilt from the log computes: the
    // pruning took nothing the current version reads.
    let live = dashboards(&w).await;
    let live_deals = pages(&w, "").await;
    let live_d4 = w.try_deal(90, "D4").await.unwrap();
    w.stop_consumer().await;
    let report = rebuild(&w.env.pool, &w.settings).await.unwrap();
    assert_eq!(report.switches, 5);
    assert_eq!(dashboards(&w).await, live);
    assert_eq!(pages(&w, "").await, live_deals);
    assert_eq!(w.try_deal(90, "D4").await.unwrap(), live_d4);
    w.stop().await;
}
