//! The dashboard numbers of a workspace against values worked out by hand, for two windows and
//! every model, and the drill-down behind them.
//!
//! The Acme workspace (tests/support), as of 2026-06-30 (the completion of its sync), on the
//! starter plan (windows of 30 and 90 days: 06-01..06-30 and 04-02..06-30), half-life 7 days.
//!
//! Engagement (organization, campaign, day); matches o1→c1, o2→c2, o4→c4, o5→c5, o6→c6 (o3 has
//! none):
//!
//! | row | org | campaign | day   |     | row | org | campaign | day   |
//! |-----|-----|----------|-------|-----|-----|-----|----------|-------|
//! | E1  | o1  | k1       | 04-14 |     | E6  | o2  | k1       | 06-09 |
//! | E2  | o1  | k1       | 06-02 |     | E7  | o3  | k1       | 06-28 |
//! | E3  | o1  | k2       | 06-16 |     | E8  | o4  | k2       | 06-05 |
//! | E4  | o1  | k3       | 06-23 |     | E9  | o5  | k3       | 05-01 |
//! | E5  | o2  | k2       | 04-21 |     | E0  | o6  | k1       | 03-01 |
//! |     |     |          |       |     | E10 | o6  | k2       | 06-12 |
//!
//! Deals (pipeline p1; end = close day for won/lost, 06-30 for open):
//!
//! | deal | account | stage | amount      | created | closed | 30-day touches    | 90-day touches             | sourced (days) |
//! |------|---------|-------|-------------|---------|--------|-------------------|----------------------------|----------------|
//! | D1   | c1      | open  | 10000.00 USD| 06-10   |        | E2 E3 E4          | E1 E2 E3 E4                | 90: 57         |
//! | D2   | c2      | won   | 5000.00 EUR | 05-01   | 06-05  | none (E6 after)   | E5                         | 90: 10         |
//! | D3   | c4      | lost  | 7000 USD    | 06-01   | 06-20  | E8                | E8                         | no (06-05 > 06-01) |
//! | D4   | c3      | open  | 3000 USD    | 06-10   |        | none (no match)   | none                       | no             |
//! | D5   | c1+c2   | open  | 1200.00 USD | 06-25   |        | E2 E6 E3 E4       | E1 E5 E2 E6 E3 E4          | 90: 72         |
//! | D6   | c2      | open  | 2500.50 EUR | 06-28   |        | E6                | E5 E6                      | 90: 68         |
//! | D7   | c1      | deleted in the CRM                                                                              |
//! | D8   | c5      | won   | 4000 USD    | 05-10   | 05-20  | none              | E9                         | 90: 9          |
//! | D9   | c6      | open  | 600 USD     | 06-10   |        | E10               | E10 (E0 before window)     | no (first 03-01) |
//! | D10  | c1      | won   | 2000.00 USD | 06-02   | 06-16  | E2 E3 (E4 after)  | E1 E2 E3                   | 90: 49         |
//!
//! Time decay weighs a touch 2^-(age/7) with age counted from the deal's end; the ages here
//! are whole half-lives, so the weights are exact powers of two, e.g. D1 in 90 days: E1 77 days
//! (2^-11), E2 28 (2^-4), E3 14 (2^-2), E4 7 (2^-1), i.e. 1 : 128 : 512 : 1024 of 1665.
//! $10,000.00 = 1,000,000 cents: 600.6 | 76876.9 | 307507.5 | 615015.0 → 600 + 76876 + 307507 +
//! 615015 = 999,998; the two cents left go to the largest remainders (E2 .88, E1 .60):
//! k1 = 601 + 76877 = 774.78, k2 = 3075.07, k3 = 6150.15.

mod support;

use rp_platform::contracts::api::v1::{AttributionModel as Model, DashboardMetric as Metric};
use rp_platform::contracts::events::v1::{MatchMethod, StageKind};
use rp_platform::contracts::timestamp;
use support::*;

/// Every campaign credit (metric, currency, campaign, amount, deals the campaign touched), in the
/// API's order (metric, currency, largest credit first, campaign), worked out deal by deal:
///
/// * 30 days, USD influenced pipeline = D1 + D5 + D9:
///   - linear: D1 3333.34/3333.33/3333.33 (the leftover cent to the first touch), D5 over E2 E6
///     E3 E4 = 300 each (k1 gets two), D9 600 → k1 3933.34, k2 4233.33, k3 3633.33.
///   - time decay: D1 ages 28/14/7 = 1:4:8 → 769.23/3076.92/6153.85; D5 ages 28/21/14/7 =
///     1:2:4:8 of 15 → 80/160/320/640 → k1 240, k2 320, k3 640; D9 k2 600 →
///     k1 1009.23, k2 3996.92, k3 6793.85.
///   - U-shaped: D1 40/20/40 → 4000/2000/4000; D5 4 touches 4:1:1:4 → k1 480+120, k2 120,
///     k3 480; D9 600 → k1 4600, k2 2720, k3 4480.
/// * 30 days, USD influenced revenue = D10 (ages from 06-16: E2 14, E3 0 → 1:4): time decay
///   400/1600; U-shaped with two touches 50/50.
/// * 90 days adds E1 and E5: D1 linear 2500 a touch (k1 two), D5 6 touches 200 each, D6 E5 E6
///   (ages 70 and 21 → 1:128 of 129 → 19.38 / 2481.12), D10 E1 E2 E3 (ages 63/14/0 → 1:128:512
///   of 641 → 312 | 39937.6 | 159750.4 → the cent to E2: 402.50 / 1597.50; linear 1333.34 /
///   666.66), D5 time decay 1:2:128:256:512:1024 of 1923 → k1 240.25, k2 320.75, k3 639.00.
///   Sourced pipeline is D1 + D5 (D9 is not sourced) and D6; sourced revenue = influenced.
const CREDITS: &[(u32, Model, &[&str])] = &[
    (
        30,
        Model::FirstTouch,
        &[
            "IP EUR k1 2500.50 1",
            "IP USD k1 11200.00 2",
            "IP USD k2 600.00 3",
            "IP USD k3 0.00 2",
            "IR USD k1 2000.00 1",
            "IR USD k2 0.00 1",
        ],
    ),
    (
        30,
        Model::LastTouch,
        &[
            "IP EUR k1 2500.50 1",
            "IP USD k3 11200.00 2",
            "IP USD k2 600.00 3",
            "IP USD k1 0.00 2",
            "IR USD k2 2000.00 1",
            "IR USD k1 0.00 1",
        ],
    ),
    (
        30,
        Model::Linear,
        &[
            "IP EUR k1 2500.50 1",
            "IP USD k2 4233.33 3",
            "IP USD k1 3933.34 2",
            "IP USD k3 3633.33 2",
            "IR USD k1 1000.00 1",
            "IR USD k2 1000.00 1",
        ],
    ),
    (
        30,
        Model::TimeDecay,
        &[
            "IP EUR k1 2500.50 1",
            "IP USD k3 6793.85 2",
            "IP USD k2 3996.92 3",
            "IP USD k1 1009.23 2",
            "IR USD k2 1600.00 1",
            "IR USD k1 400.00 1",
        ],
    ),
    (
        30,
        Model::UShaped,
        &[
            "IP EUR k1 2500.50 1",
            "IP USD k1 4600.00 2",
            "IP USD k3 4480.00 2",
            "IP USD k2 2720.00 3",
            "IR USD k1 1000.00 1",
            "IR USD k2 1000.00 1",
        ],
    ),
    (
        90,
        Model::FirstTouch,
        &[
            "IP EUR k2 2500.50 1",
            "IP EUR k1 0.00 1",
            "IP USD k1 11200.00 2",
            "IP USD k2 600.00 3",
            "IP USD k3 0.00 2",
            "IR EUR k2 5000.00 1",
            "IR USD k3 4000.00 1",
            "IR USD k1 2000.00 1",
            "IR USD k2 0.00 1",
            "SP EUR k2 2500.50 1",
            "SP EUR k1 0.00 1",
            "SP USD k1 11200.00 2",
            "SP USD k2 0.00 2",
            "SP USD k3 0.00 2",
            "SR EUR k2 5000.00 1",
            "SR USD k3 4000.00 1",
            "SR USD k1 2000.00 1",
            "SR USD k2 0.00 1",
        ],
    ),
    (
        90,
        Model::LastTouch,
        &[
            "IP EUR k1 2500.50 1",
            "IP EUR k2 0.00 1",
            "IP USD k3 11200.00 2",
            "IP USD k2 600.00 3",
            "IP USD k1 0.00 2",
            "IR EUR k2 5000.00 1",
            "IR USD k3 4000.00 1",
            "IR USD k2 2000.00 1",
            "IR USD k1 0.00 1",
            "SP EUR k1 2500.50 1",
            "SP EUR k2 0.00 1",
            "SP USD k3 11200.00 2",
            "SP USD k1 0.00 2",
            "SP USD k2 0.00 2",
            "SR EUR k2 5000.00 1",
            "SR USD k3 4000.00 1",
            "SR USD k2 2000.00 1",
            "SR USD k1 0.00 1",
        ],
    ),
    (
        90,
        Model::Linear,
        &[
            "IP EUR k1 1250.25 1",
            "IP EUR k2 1250.25 1",
            "IP USD k1 5600.00 2",
            "IP USD k2 3500.00 3",
            "IP USD k3 2700.00 2",
            "IR EUR k2 5000.00 1",
            "IR USD k3 4000.00 1",
            "IR USD k1 1333.34 1",
            "IR USD k2 666.66 1",
            "SP EUR k1 1250.25 1",
            "SP EUR k2 1250.25 1",
            "SP USD k1 5600.00 2",
            "SP USD k2 2900.00 2",
            "SP USD k3 2700.00 2",
            "SR EUR k2 5000.00 1",
            "SR USD k3 4000.00 1",
            "SR USD k1 1333.34 1",
            "SR USD k2 666.66 1",
        ],
    ),
    (
        90,
        Model::TimeDecay,
        &[
            "IP EUR k1 2481.12 1",
            "IP EUR k2 19.38 1",
            "IP USD k3 6789.15 2",
            "IP USD k2 3995.82 3",
            "IP USD k1 1015.03 2",
            "IR EUR k2 5000.00 1",
            "IR USD k3 4000.00 1",
            "IR USD k2 1597.50 1",
            "IR USD k1 402.50 1",
            "SP EUR k1 2481.12 1",
            "SP EUR k2 19.38 1",
            "SP USD k3 6789.15 2",
            "SP USD k2 3395.82 2",
            "SP USD k1 1015.03 2",
            "SR EUR k2 5000.00 1",
            "SR USD k3 4000.00 1",
            "SR USD k2 1597.50 1",
            "SR USD k1 402.50 1",
        ],
    ),
    (
        90,
        Model::UShaped,
        &[
            "IP EUR k1 1250.25 1",
            "IP EUR k2 1250.25 1",
            "IP USD k1 5600.00 2",
            "IP USD k3 4480.00 2",
            "IP USD k2 1720.00 3",
            "IR EUR k2 5000.00 1",
            "IR USD k3 4000.00 1",
            "IR USD k1 1200.00 1",
            "IR USD k2 800.00 1",
            "SP EUR k1 1250.25 1",
            "SP EUR k2 1250.25 1",
            "SP USD k1 5600.00 2",
            "SP USD k3 4480.00 2",
            "SP USD k2 1120.00 2",
            "SR EUR k2 5000.00 1",
            "SR USD k3 4000.00 1",
            "SR USD k1 1200.00 1",
            "SR USD k2 800.00 1",
        ],
    ),
];

#[tokio::test]
async fn the_numbers_of_two_windows_and_every_model_are_the_hand_computed_ones() {
    let w = World::new("starter").await;
    let run = "run-acme-1";
    let matches = acme_records(&w, run).await;
    // The matcher's result comes in two parts; the numbers switch with the last.
    w.matched_part(run, matches[..3].to_vec(), 1, at("2026-06-30T11:59:00Z"))
        .await;
    let updated = w.complete(run, matches[3..].to_vec(), at(ACME_AS_OF)).await;
    assert_eq!(updated.sync_run_id, run);
    assert_eq!(updated.as_of, Some(timestamp(at(ACME_AS_OF))));

    for (window, model, credits) in CREDITS {
        let d = w.dashboard(*window, *model).await;
        assert_eq!(
            credit_lines(&d),
            credits.to_vec(),
            "{window} days, {model:?}"
        );
        assert_eq!(d.as_of, Some(timestamp(at(ACME_AS_OF))));
        assert_eq!(d.sync_run_id, run);
        assert_eq!(d.version, 1);
        assert_eq!(d.half_life_days, 7);
        assert_eq!(d.windows, vec![30, 90]);
        assert_eq!(d.model, *model as i32);
    }

    // 30 days: engaged o1 o2 o3 o4 o6 (o5 only 05-01), matched all but o3.
    let d = w.dashboard(30, Model::Linear).await;
    let c = d.companies.unwrap();
    assert_eq!(
        (c.engaged_companies, c.matched_companies, c.matched_accounts),
        (5, 4, 4)
    );
    assert_eq!(c.match_rate, 0.8);
    let counts = d.deal_counts.unwrap();
    // D7 is deleted; D3 (lost) would be influenced.
    assert_eq!(
        (
            counts.total,
            counts.open,
            counts.won,
            counts.lost,
            counts.unclassified,
            counts.influenced_lost
        ),
        (9, 5, 3, 1, 0, 1)
    );
    assert_eq!(
        amounts(&d.influenced_pipeline),
        vec!["EUR 2500.50 1", "USD 11800.00 3"]
    );
    assert_eq!(d.influenced_pipeline.as_ref().unwrap().deals, 4);
    assert_eq!(amounts(&d.influenced_revenue), vec!["USD 2000.00 1"]);
    assert!(amounts(&d.sourced_pipeline).is_empty());
    assert!(amounts(&d.sourced_revenue).is_empty());
    let days = d.days_to_deal.unwrap();
    assert_eq!((days.deals, days.average, days.median), (0, None, None));

    // 90 days: o5 engaged too.
    let d = w.dashboard(90, Model::Linear).await;
    let c = d.companies.unwrap();
    assert_eq!(
        (c.engaged_companies, c.matched_companies, c.matched_accounts),
        (6, 5, 5)
    );
    assert_eq!(c.match_rate, 5.0 / 6.0);
    assert_eq!(
        amounts(&d.influenced_pipeline),
        vec!["EUR 2500.50 1", "USD 11800.00 3"]
    );
    assert_eq!(
        amounts(&d.influenced_revenue),
        vec!["EUR 5000.00 1", "USD 6000.00 2"]
    );
    assert_eq!(
        amounts(&d.sourced_pipeline),
        vec!["EUR 2500.50 1", "USD 11200.00 2"]
    );
    assert_eq!(
        amounts(&d.sourced_revenue),
        vec!["EUR 5000.00 1", "USD 6000.00 2"]
    );
    // Days to deal over the sourced deals: 9, 10, 49, 57, 68, 72: average 265/6, median 53.
    let days = d.days_to_deal.unwrap();
    assert_eq!(days.deals, 6);
    assert_eq!(days.average, Some(265.0 / 6.0));
    assert_eq!(days.median, Some(53.0));

    // The drill-down lists the deals behind each number, newest first.
    assert_eq!(
        w.all_deals(30, Metric::InfluencedPipeline).await,
        vec!["D6", "D5", "D9", "D1"]
    );
    assert_eq!(
        w.all_deals(30, Metric::InfluencedRevenue).await,
        vec!["D10"]
    );
    assert!(w.all_deals(30, Metric::SourcedPipeline).await.is_empty());
    assert_eq!(
        w.all_deals(90, Metric::InfluencedRevenue).await,
        vec!["D10", "D8", "D2"]
    );
    assert_eq!(
        w.all_deals(90, Metric::SourcedPipeline).await,
        vec!["D6", "D5", "D1"]
    );

    w.stop().await;
}

#[tokio::test]
async fn the_drill_down_shows_each_deals_amount_credit_touches_and_matches() {
    let w = World::new("starter").await;
    let run = "run-acme-1";
    let matches = acme_records(&w, run).await;
    w.complete(run, matches, at(ACME_AS_OF)).await;

    // The first page of sourced pipeline in 90 days, with every model's credit.
    let page = w
        .try_deals(90, Metric::SourcedPipeline, 2, "")
        .await
        .unwrap();
    assert_eq!(page.total_deals, 3);
    assert_eq!(page.sync_run_id, run);
    assert_eq!(page.as_of, Some(timestamp(at(ACME_AS_OF))));
    let d5 = &page.deals[1];
    assert_eq!(d5.deal_id, "D5");
    assert_eq!(
        (d5.amount.as_str(), d5.currency.as_str()),
        ("1200.00", "USD")
    );
    assert_eq!(d5.stage, StageKind::Open as i32);
    assert_eq!(d5.company_ids, vec!["c1", "c2"]);
    assert_eq!(
        d5.metrics,
        vec![
            Metric::InfluencedPipeline as i32,
            Metric::SourcedPipeline as i32
        ]
    );
    assert_eq!(d5.first_engaged_on, "2026-04-14");
    assert_eq!(d5.days_to_deal, Some(72));
    assert_eq!(d5.touches, 6);
    let time_decay: Vec<String> = d5
        .credits
        .iter()
        .filter(|c| c.model == Model::TimeDecay as i32)
        .map(|c| format!("{} {} {}", c.campaign_id, c.amount, c.currency))
        .collect();
    assert_eq!(
        time_decay,
        vec!["k1 240.25 USD", "k2 320.75 USD", "k3 639.00 USD"]
    );
    assert_eq!(d5.credits.len(), 15, "five models, three campaigns");

    // Why D5 counts in 30 days: four touches through both accounts, and the two matches.
    let why = w.try_deal(30, "D5").await.unwrap();
    assert!(why.influenced);
    assert_eq!(why.sync_run_id, run);
    let touches: Vec<String> = why
        .touches
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {} via {}",
                t.date, t.organization_id, t.organization_name, t.campaign_id, t.crm_company_id
            )
        })
        .collect();
    assert_eq!(
        touches,
        vec![
            "2026-06-02 o1 Acme Corp k1 via c1",
            "2026-06-09 o2 Globex k1 via c2",
            "2026-06-16 o1 Acme Corp k2 via c1",
            "2026-06-23 o1 Acme Corp k3 via c1",
        ]
    );
    let t = &why.touches[0];
    assert_eq!((t.impressions, t.clicks, t.engagements), (120, 4, 9));
    let matched: Vec<String> = why
        .matches
        .iter()
        .map(|m| {
            format!(
                "{} {} <-> {} {}: {}",
                m.linkedin_id, m.linkedin_name, m.crm_id, m.crm_name, m.reason
            )
        })
        .collect();
    assert_eq!(
        matched,
        vec![
            "o1 Acme Corp <-> c1 Acme Corporation: o1 and c1 share the domain c1.example",
            "o2 Globex <-> c2 Globex Inc: o2 and c2 share the domain c2.example",
        ]
    );
    assert!(
        why.matches
            .iter()
            .all(|m| m.method == MatchMethod::Domain as i32)
    );
    let deal = why.deal.unwrap();
    assert_eq!(deal.days_to_deal, None, "not sourced in 30 days");
    assert_eq!(deal.metrics, vec![Metric::InfluencedPipeline as i32]);

    // A lost deal is explained but counts in nothing.
    let d3 = w.try_deal(90, "D3").await.unwrap();
    assert!(d3.influenced);
    assert!(d3.deal.as_ref().unwrap().metrics.is_empty());
    assert!(d3.deal.as_ref().unwrap().credits.is_empty());
    assert_eq!(d3.deal.unwrap().stage, StageKind::Lost as i32);
    // A deal of an unmatched account: known, not influenced.
    let d4 = w.try_deal(90, "D4").await.unwrap();
    assert!(!d4.influenced);
    assert!(d4.touches.is_empty() && d4.matches.is_empty());
    assert_eq!(d4.deal.unwrap().amount, "3000.00");
    // Engagement after the close does not count: D2 in 30 days.
    assert!(!w.try_deal(30, "D2").await.unwrap().influenced);
    // The deleted deal is gone.
    let gone = w.try_deal(90, "D7").await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    assert!(gone.message().contains("D7"), "{}", gone.message());

    w.stop().await;
}

/// The matching step's event carries the producer's clock, to the nanosecond; the projection
/// keeps microseconds. The as-of time AttributionUpdated announces must be the one the API
/// serves, or a client waiting for the dashboard to reach an update never sees it.
#[tokio::test]
async fn the_as_of_time_announced_is_the_one_served() {
    let w = World::new("starter").await;
    let updated = w
        .complete("run-ns", vec![], at("2026-06-30T12:00:00.123456789Z"))
        .await;
    let served = w.dashboard(30, Model::Linear).await.as_of;
    assert_eq!(
        updated.as_of,
        Some(timestamp(at("2026-06-30T12:00:00.123456Z")))
    );
    assert_eq!(served, updated.as_of);
    let page = w
        .try_deals(30, Metric::InfluencedPipeline, 10, "")
        .await
        .unwrap();
    assert_eq!(page.as_of, updated.as_of);
    w.stop().await;
}
