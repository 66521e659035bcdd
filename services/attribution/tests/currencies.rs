//! Amounts stay in the currency the CRM gave them: summed per currency, never across, exactly
//! (decimal arithmetic, the currency's minor units), and each model's credits add up to each
//! deal's amount in its own currency.

mod support;

use rp_platform::contracts::api::v1::{AttributionModel as Model, DashboardMetric as Metric};
use support::*;

#[tokio::test]
async fn each_currency_has_its_own_exact_sum_and_credit() {
    let w = World::new("starter").await;
    let run = "run-fx";
    w.pipelines(run, vec![pipeline()]).await;
    // Three touches of c1's organization, one per campaign.
    w.engagement(
        run,
        vec![
            row("o1", "k1", "2026-06-05"),
            row("o1", "k2", "2026-06-06"),
            row("o1", "k3", "2026-06-07"),
        ],
    )
    .await;
    let open = |id: &str, amount: &str, currency: &str| {
        deal(id, &["c1"], "open", amount, currency, "2026-06-01", None)
    };
    w.deals(
        run,
        vec![
            open("usd-1", "1000.10", "USD"),
            open("usd-2", "0.20", "usd"),
            open("eur", "50", "EUR"),
            open("jpy", "1000001", "JPY"),
            open("kwd", "2.5", "KWD"),
            // No currency from the CRM (e.g. a single-currency Salesforce org).
            open("none", "3", ""),
            // Not a usable amount: counted as a deal without an amount.
            open("bad", "12,000", "GBP"),
            open("negative", "-5", "USD"),
        ],
    )
    .await;
    w.complete(run, vec![new_match("o1", "c1")], at("2026-06-30T12:00:00Z"))
        .await;

    let d = w.dashboard(30, Model::Linear).await;
    let ip = d.influenced_pipeline.clone().unwrap();
    assert_eq!((ip.deals, ip.deals_without_amount), (8, 2));
    // 1000.10 + 0.20 = 1000.30 exactly; yen without decimals; dinar with three.
    assert_eq!(
        amounts(&d.influenced_pipeline),
        vec![
            " 3.00 1",
            "EUR 50.00 1",
            "JPY 1000001 1",
            "KWD 2.500 1",
            "USD 1000.30 2",
        ]
    );
    // Linear over three touches, per currency, leftover minor units to the earliest touches:
    // USD 1000.10 = 100,010 cents → 33,337 + 33,337 + 33,336; 0.20 → 7 + 7 + 6 cents.
    // JPY 1,000,001 → 333,334 + 333,334 + 333,333. KWD 2.500 = 2,500 fils → 834 + 833 + 833.
    // EUR 50.00 → 16.67 + 16.67 + 16.66. No currency: 3.00 → 1.00 each.
    assert_eq!(
        credit_lines(&d),
        vec![
            "IP  k1 1.00 1",
            "IP  k2 1.00 1",
            "IP  k3 1.00 1",
            "IP EUR k1 16.67 1",
            "IP EUR k2 16.67 1",
            "IP EUR k3 16.66 1",
            "IP JPY k1 333334 1",
            "IP JPY k2 333334 1",
            "IP JPY k3 333333 1",
            "IP KWD k1 0.834 1",
            "IP KWD k2 0.833 1",
            "IP KWD k3 0.833 1",
            "IP USD k1 333.44 2",
            "IP USD k2 333.44 2",
            "IP USD k3 333.42 2",
        ]
    );
    // Not sourced: the first engagement (06-05) came after the deals were created (06-01).
    assert!(amounts(&d.sourced_pipeline).is_empty());

    // Every model's credits add up to each currency's total.
    for model in [
        Model::FirstTouch,
        Model::LastTouch,
        Model::Linear,
        Model::TimeDecay,
        Model::UShaped,
    ] {
        let d = w.dashboard(30, model).await;
        for total in &d.influenced_pipeline.as_ref().unwrap().amounts {
            let minor = |s: &str| -> i128 { s.replace('.', "").parse().unwrap() };
            let sum: i128 = d
                .campaign_credits
                .iter()
                .filter(|c| c.currency == total.currency)
                .map(|c| minor(&c.amount))
                .sum();
            assert_eq!(sum, minor(&total.amount), "{model:?} {}", total.currency);
        }
    }

    // The drill-down shows amounts as the CRM's currency gives them.
    let deals = w
        .try_deals(30, Metric::InfluencedPipeline, 0, "")
        .await
        .unwrap()
        .deals;
    let shown: Vec<String> = deals
        .iter()
        .map(|d| format!("{} {} {}", d.deal_id, d.amount, d.currency))
        .collect();
    assert_eq!(
        shown,
        vec![
            "usd-2 0.20 USD",
            "usd-1 1000.10 USD",
            "none 3.00 ",
            "negative  USD",
            "kwd 2.500 KWD",
            "jpy 1000001 JPY",
            "eur 50.00 EUR",
            "bad  GBP",
        ]
    );
    let bad = deals.iter().find(|d| d.deal_id == "bad").unwrap();
    assert!(bad.credits.is_empty());
    w.stop().await;
}
