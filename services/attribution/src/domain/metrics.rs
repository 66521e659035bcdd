//! The dashboard numbers of one workspace: from its engagement, matches and deals, as of a date,
//! for each lookback window. Pure: the caller passes everything in, including the as-of date
//! (the completion of the sync, never the wall clock), so the same inputs always give the same
//! numbers.
//!
//! The rules (docs/attribution.md has them with examples):
//! * Days are UTC calendar days. The window of W days is the W days ending on the as-of date:
//!   `as_of - (W-1) ..= as_of`.
//! * A touch is an engagement row (organization, campaign, day) with any impressions, clicks or
//!   engagements, on or before the as-of date. A deal's touches are those of every LinkedIn
//!   organization matched to any of the deal's CRM companies (each row once).
//! * A touch counts for a deal in a window when it is in the window and not after the deal's end:
//!   its close date for won and lost deals (the as-of date when the CRM gives none), the as-of
//!   date for open deals. That is "engaged within the window before the deal was created, or
//!   while it was open"; engagement after the close never counts.
//! * Influenced pipeline: open deals with a counting touch. Influenced revenue: won deals with a
//!   counting touch. Lost deals never count as either (they are counted as `influenced_lost`).
//! * Sourced: the account's first engagement (its earliest touch we know of) is in the window and
//!   on or before the day the deal was created. Sourced pipeline: open; sourced revenue: won.
//!   Days to deal: creation day minus first-engagement day, over sourced deals of every stage.
//! * Credit: each model splits the deal's amount over its counting touches (oldest first; same
//!   day by campaign id, then organization id); time decay measures a touch's age from the deal's
//!   end. Credits per campaign add up to the amount exactly, per deal and model.

use super::credit::{HalfLife, Model, split};
use super::ids::{CampaignId, CompanyId, DealId, OrgId};
use super::money::{Amount, Currency};
use chrono::{Days, NaiveDate};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The numbers a user can drill into, with the numbers of `rp.api.v1.DashboardMetric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    InfluencedPipeline = 1,
    InfluencedRevenue = 2,
    SourcedPipeline = 3,
    SourcedRevenue = 4,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::InfluencedPipeline,
        Metric::InfluencedRevenue,
        Metric::SourcedPipeline,
        Metric::SourcedRevenue,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// What a stage means in the CRM's pipeline definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageKind {
    Open,
    Won,
    Lost,
}

/// One LinkedIn engagement row: an organization's members and one campaign on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementRow {
    pub org: OrgId,
    pub campaign: CampaignId,
    pub day: NaiveDate,
    pub impressions: i64,
    pub clicks: i64,
    pub engagements: i64,
}

impl EngagementRow {
    /// A row with no activity at all is not a touch.
    pub fn is_touch(&self) -> bool {
        self.impressions > 0 || self.clicks > 0 || self.engagements > 0
    }
}

/// A deal as the numbers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deal {
    pub id: DealId,
    /// `None` when the CRM gives no (valid) amount.
    pub amount: Option<Amount>,
    pub currency: Currency,
    /// `None` when the deal's stage is in no pipeline definition we have.
    pub stage: Option<StageKind>,
    /// UTC day of creation; `None` when the CRM gives none.
    pub created_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub companies: Vec<CompanyId>,
}

/// A current match between a LinkedIn organization and a CRM company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub org: OrgId,
    pub company: CompanyId,
}

#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// At least every row of the longest window (older rows may be left out: see `first_touch`).
    pub engagement: Vec<EngagementRow>,
    /// Each organization's earliest touch on or before the as-of date, when `engagement` may
    /// leave older rows out; the earliest of `engagement` counts too.
    pub first_touch: HashMap<OrgId, NaiveDate>,
    pub matches: Vec<Match>,
    pub deals: Vec<Deal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompanyNumbers {
    pub engaged: u32,
    pub matched: u32,
    pub accounts: u32,
}

impl CompanyNumbers {
    pub fn match_rate(&self) -> f64 {
        if self.engaged == 0 {
            0.0
        } else {
            f64::from(self.matched) / f64::from(self.engaged)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DealCounts {
    pub total: u32,
    pub open: u32,
    pub won: u32,
    pub lost: u32,
    pub unclassified: u32,
    pub influenced_lost: u32,
}

/// A sum in one currency and how many deals make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyTotal {
    pub amount: Amount,
    pub deals: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricNumbers {
    pub deals: u32,
    pub without_amount: u32,
    pub amounts: BTreeMap<Currency, CurrencyTotal>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DaysToDeal {
    pub deals: u32,
    pub average: Option<f64>,
    pub median: Option<f64>,
}

impl DaysToDeal {
    fn of(mut days: Vec<u32>) -> Self {
        if days.is_empty() {
            return Self::default();
        }
        days.sort_unstable();
        let n = days.len();
        let sum: u64 = days.iter().map(|d| u64::from(*d)).sum();
        let median = if !n.is_multiple_of(2) {
            f64::from(days[n / 2])
        } else {
            (f64::from(days[n / 2 - 1]) + f64::from(days[n / 2])) / 2.0
        };
        Self {
            deals: n as u32,
            average: Some(sum as f64 / n as f64),
            median: Some(median),
        }
    }
}

/// A touch that counts for a deal: the engagement row (an index into [`Inputs::engagement`])
/// and the deal's company it reaches the deal through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedTouch {
    pub row: usize,
    pub company: CompanyId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub model: Model,
    pub campaign: CampaignId,
    pub amount: Amount,
}

/// Why one deal counts in a window. Only deals with at least one counting touch have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealOutcome {
    /// Index into [`Inputs::deals`].
    pub deal: usize,
    pub metrics: Vec<Metric>,
    pub touches: Vec<CountedTouch>,
    pub first_engaged_on: Option<NaiveDate>,
    pub days_to_deal: Option<u32>,
    /// Per model, per campaign (campaign order); empty for deals without an amount or that
    /// count in no metric (lost).
    pub credits: Vec<Credit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignTotal {
    pub amount: Amount,
    pub deals: u32,
}

/// Key of a campaign's credit: model, metric, currency, campaign.
pub type CreditKey = (Model, Metric, Currency, CampaignId);

/// Every number of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowNumbers {
    pub window_days: u32,
    pub companies: CompanyNumbers,
    pub deal_counts: DealCounts,
    /// Every metric, present even when zero.
    pub metrics: BTreeMap<Metric, MetricNumbers>,
    pub days_to_deal: DaysToDeal,
    pub campaign_credit: BTreeMap<CreditKey, CampaignTotal>,
    /// Deals with at least one counting touch, in input order.
    pub deals: Vec<DealOutcome>,
}

/// The numbers of every window (in the order given) as of `as_of`.
pub fn compute(
    inputs: &Inputs,
    as_of: NaiveDate,
    windows: &[u32],
    half_life: HalfLife,
) -> Vec<WindowNumbers> {
    let prepared = Prepared::new(inputs, as_of);
    windows
        .iter()
        .map(|w| prepared.window(inputs, as_of, (*w).max(1), half_life))
        .collect()
}

/// A deal whose stage and creation are known, with its account's touches.
struct Classified {
    deal: usize,
    stage: StageKind,
    created_on: NaiveDate,
    /// (row, company) sorted by (day, campaign, organization), each row once.
    touches: Vec<(usize, CompanyId)>,
    first_engaged_on: Option<NaiveDate>,
}

struct Prepared<'a> {
    /// Rows that are touches on or before the as-of date.
    touch_rows: Vec<usize>,
    matched_companies: HashMap<&'a OrgId, BTreeSet<&'a CompanyId>>,
    classified: Vec<Classified>,
    counts: DealCounts,
}

impl<'a> Prepared<'a> {
    fn new(inputs: &'a Inputs, as_of: NaiveDate) -> Self {
        let rows = &inputs.engagement;
        let touch_rows: Vec<usize> = (0..rows.len())
            .filter(|i| rows[*i].is_touch() && rows[*i].day <= as_of)
            .collect();
        let mut by_org: HashMap<&OrgId, Vec<usize>> = HashMap::new();
        for i in &touch_rows {
            by_org.entry(&rows[*i].org).or_default().push(*i);
        }
        let mut matched_companies: HashMap<&OrgId, BTreeSet<&CompanyId>> = HashMap::new();
        let mut orgs_of: HashMap<&CompanyId, BTreeSet<&OrgId>> = HashMap::new();
        for m in &inputs.matches {
            matched_companies
                .entry(&m.org)
                .or_default()
                .insert(&m.company);
            orgs_of.entry(&m.company).or_default().insert(&m.org);
        }

        let mut counts = DealCounts::default();
        let mut classified = Vec::new();
        for (i, deal) in inputs.deals.iter().enumerate() {
            if deal.created_on.is_some_and(|c| c > as_of) {
                // Not created yet at the as-of time.
                continue;
            }
            counts.total += 1;
            let (Some(stage), Some(created_on)) = (deal.stage, deal.created_on) else {
                counts.unclassified += 1;
                continue;
            };
            match stage {
                StageKind::Open => counts.open += 1,
                StageKind::Won => counts.won += 1,
                StageKind::Lost => counts.lost += 1,
            }
            let companies: BTreeSet<&CompanyId> = deal.companies.iter().collect();
            let mut seen = BTreeSet::new();
            let mut touches = Vec::new();
            let mut first_engaged_on: Option<NaiveDate> = None;
            for company in companies {
                for org in orgs_of.get(company).into_iter().flatten() {
                    if let Some(d) = inputs.first_touch.get(*org).filter(|d| **d <= as_of) {
                        first_engaged_on = Some(first_engaged_on.map_or(*d, |f| f.min(*d)));
                    }
                    for row in by_org.get(org).into_iter().flatten() {
                        if seen.insert(*row) {
                            touches.push((*row, company.clone()));
                        }
                    }
                }
            }
            touches.sort_by(|a, b| {
                let (x, y) = (&rows[a.0], &rows[b.0]);
                (x.day, &x.campaign, &x.org).cmp(&(y.day, &y.campaign, &y.org))
            });
            if let Some(d) = touches.first().map(|t| rows[t.0].day) {
                first_engaged_on = Some(first_engaged_on.map_or(d, |f| f.min(d)));
            }
            classified.push(Classified {
                deal: i,
                stage,
                created_on,
                touches,
                first_engaged_on,
            });
        }
        Self {
            touch_rows,
            matched_companies,
            classified,
            counts,
        }
    }

    fn window(
        &self,
        inputs: &Inputs,
        as_of: NaiveDate,
        window_days: u32,
        half_life: HalfLife,
    ) -> WindowNumbers {
        let rows = &inputs.engagement;
        let start = as_of
            .checked_sub_days(Days::new(u64::from(window_days - 1)))
            .unwrap_or(NaiveDate::MIN);
        let in_window = |d: NaiveDate| start <= d && d <= as_of;

        // Companies.
        let engaged: BTreeSet<&OrgId> = self
            .touch_rows
            .iter()
            .map(|i| &rows[*i])
            .filter(|r| in_window(r.day))
            .map(|r| &r.org)
            .collect();
        let mut accounts: BTreeSet<&CompanyId> = BTreeSet::new();
        let mut matched = 0u32;
        for org in &engaged {
            if let Some(cs) = self.matched_companies.get(org) {
                matched += 1;
                accounts.extend(cs.iter().copied());
            }
        }
        let companies = CompanyNumbers {
            engaged: engaged.len() as u32,
            matched,
            accounts: accounts.len() as u32,
        };

        // Deals.
        let mut counts = self.counts;
        let mut metrics: BTreeMap<Metric, MetricNumbers> = Metric::ALL
            .into_iter()
            .map(|m| (m, MetricNumbers::default()))
            .collect();
        let mut days = Vec::new();
        let mut campaign_credit: BTreeMap<CreditKey, CampaignTotal> = BTreeMap::new();
        let mut outcomes = Vec::new();
        for c in &self.classified {
            let deal = &inputs.deals[c.deal];
            let end = match c.stage {
                StageKind::Open => as_of,
                StageKind::Won | StageKind::Lost => deal.closed_on.unwrap_or(as_of).min(as_of),
            };
            let counted: Vec<&(usize, CompanyId)> = c
                .touches
                .iter()
                .filter(|(row, _)| in_window(rows[*row].day) && rows[*row].day <= end)
                .collect();
            let sourced = c
                .first_engaged_on
                .is_some_and(|f| in_window(f) && f <= c.created_on);
            let days_to_deal = sourced
                .then(|| c.first_engaged_on.map(|f| (c.created_on - f).num_days()))
                .flatten()
                .and_then(|d| u32::try_from(d).ok());
            if let Some(d) = days_to_deal {
                days.push(d);
            }
            if counted.is_empty() {
                continue;
            }
            let deal_metrics: Vec<Metric> = match c.stage {
                StageKind::Open if sourced => {
                    vec![Metric::InfluencedPipeline, Metric::SourcedPipeline]
                }
                StageKind::Open => vec![Metric::InfluencedPipeline],
                StageKind::Won if sourced => {
                    vec![Metric::InfluencedRevenue, Metric::SourcedRevenue]
                }
                StageKind::Won => vec![Metric::InfluencedRevenue],
                StageKind::Lost => {
                    counts.influenced_lost += 1;
                    Vec::new()
                }
            };
            let credits = match deal.amount {
                Some(amount) if !deal_metrics.is_empty() => {
                    let ages: Vec<u32> = counted
                        .iter()
                        .map(|(row, _)| {
                            u32::try_from((end - rows[*row].day).num_days()).unwrap_or(0)
                        })
                        .collect();
                    let campaigns: Vec<&CampaignId> = counted
                        .iter()
                        .map(|(row, _)| &rows[*row].campaign)
                        .collect();
                    credits_of(amount, &ages, &campaigns, half_life)
                }
                _ => Vec::new(),
            };
            for m in &deal_metrics {
                let Some(totals) = metrics.get_mut(m) else {
                    continue;
                };
                totals.deals += 1;
                let Some(amount) = deal.amount else {
                    totals.without_amount += 1;
                    continue;
                };
                add_to(
                    totals
                        .amounts
                        .entry(deal.currency.clone())
                        .or_insert(CurrencyTotal {
                            amount: Amount::zero(amount.scale()),
                            deals: 0,
                        }),
                    amount,
                );
                for credit in &credits {
                    let key = (
                        credit.model,
                        *m,
                        deal.currency.clone(),
                        credit.campaign.clone(),
                    );
                    let slot = campaign_credit.entry(key).or_insert(CampaignTotal {
                        amount: Amount::zero(credit.amount.scale()),
                        deals: 0,
                    });
                    slot.amount = slot
                        .amount
                        .checked_add(credit.amount)
                        .unwrap_or(slot.amount);
                    slot.deals += 1;
                }
            }
            outcomes.push(DealOutcome {
                deal: c.deal,
                metrics: deal_metrics,
                touches: counted
                    .iter()
                    .map(|(row, company)| CountedTouch {
                        row: *row,
                        company: company.clone(),
                    })
                    .collect(),
                first_engaged_on: c.first_engaged_on,
                days_to_deal,
                credits,
            });
        }
        WindowNumbers {
            window_days,
            companies,
            deal_counts: counts,
            metrics,
            days_to_deal: DaysToDeal::of(days),
            campaign_credit,
            deals: outcomes,
        }
    }
}

fn add_to(total: &mut CurrencyTotal, amount: Amount) {
    // Within the amount limits a sum of up to 2^64 deals cannot overflow 128 bits.
    total.amount = total.amount.checked_add(amount).unwrap_or(total.amount);
    total.deals += 1;
}

/// Each model's credit per campaign for one deal (campaigns in id order).
fn credits_of(
    amount: Amount,
    ages: &[u32],
    campaigns: &[&CampaignId],
    half_life: HalfLife,
) -> Vec<Credit> {
    let mut out = Vec::new();
    for model in Model::ALL {
        let parts = split(amount.units(), model, ages, half_life);
        let mut per_campaign: BTreeMap<&CampaignId, u128> = BTreeMap::new();
        for (campaign, part) in campaigns.iter().zip(parts) {
            *per_campaign.entry(*campaign).or_default() += part;
        }
        for (campaign, units) in per_campaign {
            let Some(amount) = Amount::from_units(units, amount.scale()) else {
                continue;
            };
            out.push(Credit {
                model,
                campaign: campaign.clone(),
                amount,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Given/when/then: each test builds a small workspace, computes as of 2026-06-30, and checks
    //! numbers worked out by hand in the comments.
    use super::*;

    const AS_OF: &str = "2026-06-30";

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[derive(Default)]
    struct Given(Inputs);

    impl Given {
        fn touch(mut self, org: &str, campaign: &str, on: &str) -> Self {
            self.0.engagement.push(EngagementRow {
                org: OrgId::parse(org).unwrap(),
                campaign: CampaignId::parse(campaign).unwrap(),
                day: day(on),
                impressions: 10,
                clicks: 1,
                engagements: 2,
            });
            self
        }

        fn row(mut self, r: EngagementRow) -> Self {
            self.0.engagement.push(r);
            self
        }

        fn matched(mut self, org: &str, company: &str) -> Self {
            self.0.matches.push(Match {
                org: OrgId::parse(org).unwrap(),
                company: CompanyId::parse(company).unwrap(),
            });
            self
        }

        #[allow(clippy::too_many_arguments)]
        fn deal(
            mut self,
            id: &str,
            companies: &[&str],
            stage: Option<StageKind>,
            amount: &str,
            currency: &str,
            created: &str,
            closed: Option<&str>,
        ) -> Self {
            let currency = Currency::new(currency);
            self.0.deals.push(Deal {
                id: DealId::parse(id).unwrap(),
                amount: Amount::parse(amount, &currency).unwrap(),
                currency,
                stage,
                created_on: (!created.is_empty()).then(|| day(created)),
                closed_on: closed.map(day),
                companies: companies
                    .iter()
                    .map(|c| CompanyId::parse(c).unwrap())
                    .collect(),
            });
            self
        }

        fn open(self, id: &str, company: &str, amount: &str, created: &str) -> Self {
            self.deal(
                id,
                &[company],
                Some(StageKind::Open),
                amount,
                "USD",
                created,
                None,
            )
        }

        fn won(self, id: &str, company: &str, amount: &str, created: &str, closed: &str) -> Self {
            self.deal(
                id,
                &[company],
                Some(StageKind::Won),
                amount,
                "USD",
                created,
                Some(closed),
            )
        }

        fn when(self, windows: &[u32]) -> Then {
            let numbers = compute(&self.0, day(AS_OF), windows, HalfLife::default());
            Then(self.0, numbers)
        }
    }

    struct Then(Inputs, Vec<WindowNumbers>);

    impl Then {
        fn w(&self, days: u32) -> &WindowNumbers {
            self.1.iter().find(|w| w.window_days == days).unwrap()
        }

        fn total(&self, days: u32, m: Metric, currency: &str) -> String {
            self.w(days)
                .metrics
                .get(&m)
                .and_then(|t| t.amounts.get(&Currency::new(currency)))
                .map(|t| t.amount.to_string())
                .unwrap_or_default()
        }

        fn deals(&self, days: u32, m: Metric) -> u32 {
            self.w(days).metrics[&m].deals
        }

        fn outcome(&self, days: u32, deal: &str) -> Option<&DealOutcome> {
            self.w(days)
                .deals
                .iter()
                .find(|o| self.0.deals[o.deal].id.as_str() == deal)
        }

        /// "campaign=amount" for one model of one deal, campaigns in id order.
        fn credit(&self, days: u32, deal: &str, model: Model) -> Vec<String> {
            self.outcome(days, deal)
                .map(|o| {
                    o.credits
                        .iter()
                        .filter(|c| c.model == model)
                        .map(|c| format!("{}={}", c.campaign, c.amount))
                        .collect()
                })
                .unwrap_or_default()
        }

        fn touch_days(&self, days: u32, deal: &str) -> Vec<String> {
            self.outcome(days, deal)
                .map(|o| {
                    o.touches
                        .iter()
                        .map(|t| self.0.engagement[t.row].day.to_string())
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    use Metric::*;

    #[test]
    fn given_a_deal_with_no_engagement_then_it_counts_nowhere_but_in_the_totals() {
        let then = Given::default()
            .matched("o1", "c1")
            .open("d1", "c1", "1000", "2026-06-10")
            .when(&[30]);
        assert_eq!(then.deals(30, InfluencedPipeline), 0);
        assert!(then.outcome(30, "d1").is_none());
        assert_eq!(then.w(30).deal_counts.total, 1);
        assert_eq!(then.w(30).deal_counts.open, 1);
    }

    #[test]
    fn given_engagement_before_creation_in_the_window_then_the_open_deal_is_influenced_pipeline() {
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .matched("o1", "c1")
            .open("d1", "c1", "1000", "2026-06-10")
            .when(&[30]);
        assert_eq!(then.deals(30, InfluencedPipeline), 1);
        assert_eq!(then.total(30, InfluencedPipeline, "USD"), "1000.00");
        // Its first engagement (06-05) is in the window and before creation (06-10): sourced,
        // 5 days to deal.
        assert_eq!(then.total(30, SourcedPipeline, "USD"), "1000.00");
        assert_eq!(then.outcome(30, "d1").unwrap().days_to_deal, Some(5));
    }

    #[test]
    fn given_engagement_while_open_then_influenced_but_not_sourced() {
        // Created long before the window, touched in it while still open.
        let then = Given::default()
            .touch("o1", "k1", "2026-06-20")
            .matched("o1", "c1")
            .open("d1", "c1", "500", "2025-01-15")
            .when(&[30]);
        assert_eq!(then.total(30, InfluencedPipeline, "USD"), "500.00");
        assert_eq!(then.deals(30, SourcedPipeline), 0);
        assert_eq!(then.w(30).days_to_deal, DaysToDeal::default());
    }

    #[test]
    fn given_engagement_after_the_close_then_it_does_not_count() {
        // Won 06-10; touched 06-15 and 06-20 only: nothing before the close.
        let then = Given::default()
            .touch("o1", "k1", "2026-06-15")
            .touch("o1", "k2", "2026-06-20")
            .matched("o1", "c1")
            .won("d1", "c1", "900", "2026-06-01", "2026-06-10")
            .when(&[30]);
        assert_eq!(then.deals(30, InfluencedRevenue), 0);
        assert!(then.outcome(30, "d1").is_none());
        // Touches before the close count; those after it do not.
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .touch("o1", "k2", "2026-06-20")
            .matched("o1", "c1")
            .won("d1", "c1", "900", "2026-06-01", "2026-06-10")
            .when(&[30]);
        assert_eq!(then.total(30, InfluencedRevenue, "USD"), "900.00");
        assert_eq!(then.touch_days(30, "d1"), vec!["2026-06-05"]);
        assert_eq!(
            then.credit(30, "d1", Model::LastTouch),
            vec!["k1=900.00".to_string()]
        );
        // First engagement 06-05 is after creation 06-01: influenced, not sourced.
        assert_eq!(then.deals(30, SourcedRevenue), 0);
    }

    #[test]
    fn given_window_edges_then_the_first_day_counts_and_the_day_before_does_not() {
        // Window of 30 days ending 06-30 starts 06-01.
        let then = Given::default()
            .touch("o1", "k1", "2026-06-01")
            .touch("o2", "k1", "2026-05-31")
            .matched("o1", "c1")
            .matched("o2", "c2")
            .open("d1", "c1", "100", "2026-06-02")
            .open("d2", "c2", "200", "2026-06-02")
            .when(&[30, 31]);
        assert_eq!(then.deals(30, InfluencedPipeline), 1);
        assert_eq!(then.total(30, InfluencedPipeline, "USD"), "100.00");
        assert_eq!(then.w(30).companies.engaged, 1);
        // The 31-day window reaches 05-31.
        assert_eq!(then.total(31, InfluencedPipeline, "USD"), "300.00");
        assert_eq!(then.w(31).companies.engaged, 2);
    }

    #[test]
    fn given_first_engagement_before_the_window_then_not_sourced_in_it_but_sourced_in_a_longer_one()
    {
        let then = Given::default()
            .touch("o1", "k1", "2026-04-14")
            .touch("o1", "k2", "2026-06-16")
            .matched("o1", "c1")
            .open("d1", "c1", "10000", "2026-06-10")
            .when(&[30, 90]);
        assert_eq!(then.deals(30, InfluencedPipeline), 1);
        assert_eq!(then.deals(30, SourcedPipeline), 0);
        assert_eq!(then.deals(90, SourcedPipeline), 1);
        // 04-14 to 06-10: 16 + 31 + 10 = 57 days.
        assert_eq!(then.outcome(90, "d1").unwrap().days_to_deal, Some(57));
        assert_eq!(then.touch_days(30, "d1"), vec!["2026-06-16"]);
        assert_eq!(then.touch_days(90, "d1"), vec!["2026-04-14", "2026-06-16"]);
    }

    #[test]
    fn given_an_earlier_first_touch_not_loaded_then_it_is_still_the_first_engagement() {
        // Only the 30-day window's rows are loaded; o1's first touch (04-05, in the 90-day
        // window that starts 04-02) is given apart.
        let mut given = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .matched("o1", "c1")
            .open("d1", "c1", "100", "2026-06-10");
        given
            .0
            .first_touch
            .insert(OrgId::parse("o1").unwrap(), day("2026-04-05"));
        let then = given.when(&[30, 90]);
        assert_eq!(then.deals(30, SourcedPipeline), 0);
        assert_eq!(then.deals(90, SourcedPipeline), 1);
        // 04-05 to 06-10: 25 + 31 + 10 = 66 days.
        assert_eq!(then.outcome(90, "d1").unwrap().days_to_deal, Some(66));
        assert_eq!(then.touch_days(90, "d1"), vec!["2026-06-05"]);
    }

    #[test]
    fn given_engagement_on_the_day_the_deal_was_created_then_it_came_before_and_sources_it() {
        let then = Given::default()
            .touch("o1", "k1", "2026-06-10")
            .matched("o1", "c1")
            .open("d1", "c1", "100", "2026-06-10")
            .when(&[30]);
        assert_eq!(then.deals(30, SourcedPipeline), 1);
        assert_eq!(then.w(30).days_to_deal.median, Some(0.0));
    }

    #[test]
    fn given_a_lost_deal_then_it_is_never_revenue_nor_pipeline() {
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .matched("o1", "c1")
            .deal(
                "d1",
                &["c1"],
                Some(StageKind::Lost),
                "7000",
                "USD",
                "2026-06-01",
                Some("2026-06-20"),
            )
            .when(&[30]);
        for m in Metric::ALL {
            assert_eq!(then.deals(30, m), 0, "{m:?}");
        }
        assert_eq!(then.w(30).deal_counts.influenced_lost, 1);
        assert_eq!(then.w(30).deal_counts.lost, 1);
        // The drill-down still explains it, without credit.
        let o = then.outcome(30, "d1").unwrap();
        assert!(o.metrics.is_empty());
        assert!(o.credits.is_empty());
    }

    #[test]
    fn given_deals_in_several_currencies_then_each_currency_has_its_own_sum_and_credit() {
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .touch("o1", "k2", "2026-06-06")
            .matched("o1", "c1")
            .deal(
                "usd1",
                &["c1"],
                Some(StageKind::Open),
                "100.10",
                "USD",
                "2026-06-01",
                None,
            )
            .deal(
                "usd2",
                &["c1"],
                Some(StageKind::Open),
                "0.20",
                "usd",
                "2026-06-01",
                None,
            )
            .deal(
                "eur",
                &["c1"],
                Some(StageKind::Open),
                "50",
                "EUR",
                "2026-06-01",
                None,
            )
            .deal(
                "jpy",
                &["c1"],
                Some(StageKind::Open),
                "1001",
                "JPY",
                "2026-06-01",
                None,
            )
            .deal(
                "none",
                &["c1"],
                Some(StageKind::Open),
                "3",
                "",
                "2026-06-01",
                None,
            )
            .when(&[30]);
        let ip = &then.w(30).metrics[&InfluencedPipeline];
        assert_eq!(ip.deals, 5);
        let sums: Vec<(String, String, u32)> = ip
            .amounts
            .iter()
            .map(|(c, t)| (c.to_string(), t.amount.to_string(), t.deals))
            .collect();
        assert_eq!(
            sums,
            vec![
                ("".into(), "3.00".into(), 1),
                ("EUR".into(), "50.00".into(), 1),
                ("JPY".into(), "1001".into(), 1),
                ("USD".into(), "100.30".into(), 2),
            ]
        );
        // Linear over two touches: JPY 1001 splits into whole yen 501 + 500.
        assert_eq!(
            then.credit(30, "jpy", Model::Linear),
            vec!["k1=501".to_string(), "k2=500".to_string()]
        );
        let credit = |model: Model, currency: &str, campaign: &str| {
            then.w(30).campaign_credit[&(
                model,
                InfluencedPipeline,
                Currency::new(currency),
                CampaignId::parse(campaign).unwrap(),
            )]
                .amount
                .to_string()
        };
        // USD linear: 100.10 -> 50.05 + 50.05; 0.20 -> 0.10 + 0.10.
        assert_eq!(credit(Model::Linear, "USD", "k1"), "50.15");
        assert_eq!(credit(Model::Linear, "USD", "k2"), "50.15");
        assert_eq!(credit(Model::FirstTouch, "EUR", "k1"), "50.00");
        assert_eq!(credit(Model::FirstTouch, "EUR", "k2"), "0.00");
    }

    #[test]
    fn given_a_deal_with_several_companies_then_it_counts_once_with_all_their_touches() {
        // d1 belongs to c1 and c2; o1 -> c1, o2 -> c2, and o3 -> both (its row once).
        let then = Given::default()
            .touch("o1", "k1", "2026-06-03")
            .touch("o2", "k2", "2026-06-04")
            .touch("o3", "k3", "2026-06-05")
            .matched("o1", "c1")
            .matched("o2", "c2")
            .matched("o3", "c1")
            .matched("o3", "c2")
            .deal(
                "d1",
                &["c2", "c1"],
                Some(StageKind::Open),
                "300",
                "USD",
                "2026-06-10",
                None,
            )
            .when(&[30]);
        assert_eq!(then.deals(30, InfluencedPipeline), 1);
        assert_eq!(then.total(30, InfluencedPipeline, "USD"), "300.00");
        assert_eq!(
            then.credit(30, "d1", Model::Linear),
            vec!["k1=100.00", "k2=100.00", "k3=100.00"]
        );
        let o = then.outcome(30, "d1").unwrap();
        let through: Vec<&str> = o.touches.iter().map(|t| t.company.as_str()).collect();
        // o3's row reaches the deal through the first of its companies (c1).
        assert_eq!(through, vec!["c1", "c2", "c1"]);
        assert_eq!(then.w(30).companies.accounts, 2);
    }

    #[test]
    fn given_unknown_stages_missing_creation_or_future_deals_then_they_are_unclassified_or_ignored()
    {
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .matched("o1", "c1")
            .deal("nostage", &["c1"], None, "10", "USD", "2026-06-01", None)
            .deal(
                "nocreated",
                &["c1"],
                Some(StageKind::Open),
                "10",
                "USD",
                "",
                None,
            )
            .deal(
                "future",
                &["c1"],
                Some(StageKind::Open),
                "10",
                "USD",
                "2026-07-01",
                None,
            )
            .when(&[30]);
        let c = then.w(30).deal_counts;
        assert_eq!((c.total, c.unclassified, c.open), (2, 2, 0));
        assert!(then.w(30).deals.is_empty());
    }

    #[test]
    fn given_a_deal_without_amount_then_it_counts_as_a_deal_without_credit() {
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .matched("o1", "c1")
            .open("d1", "c1", "", "2026-06-10")
            .when(&[30]);
        let ip = &then.w(30).metrics[&InfluencedPipeline];
        assert_eq!((ip.deals, ip.without_amount), (1, 1));
        assert!(ip.amounts.is_empty());
        assert!(then.w(30).campaign_credit.is_empty());
    }

    #[test]
    fn given_engaged_organizations_then_companies_matched_accounts_and_rate() {
        // In the window: o1 (-> c1), o2 (-> c1 and c2), o3 (unmatched), o4 only has an
        // all-zero row (no touch), o5 engaged before the window.
        let then = Given::default()
            .touch("o1", "k1", "2026-06-05")
            .touch("o2", "k1", "2026-06-06")
            .touch("o3", "k1", "2026-06-07")
            .row(EngagementRow {
                org: OrgId::parse("o4").unwrap(),
                campaign: CampaignId::parse("k1").unwrap(),
                day: day("2026-06-08"),
                impressions: 0,
                clicks: 0,
                engagements: 0,
            })
            .touch("o5", "k1", "2026-04-01")
            .matched("o1", "c1")
            .matched("o2", "c1")
            .matched("o2", "c2")
            .matched("o4", "c4")
            .matched("o5", "c5")
            .when(&[30]);
        let c = then.w(30).companies;
        assert_eq!((c.engaged, c.matched, c.accounts), (3, 2, 2));
        assert!((c.match_rate() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(CompanyNumbers::default().match_rate(), 0.0);
    }

    #[test]
    fn given_sourced_deals_of_every_stage_then_average_and_median_days_to_deal() {
        // Sourced: d1 (open, 4 days), d2 (won, 10 days), d3 (lost, 1 day), d4 (open, 9 days).
        let then = Given::default()
            .touch("o1", "k1", "2026-06-01")
            .touch("o2", "k1", "2026-06-02")
            .touch("o3", "k1", "2026-06-03")
            .matched("o1", "c1")
            .matched("o2", "c2")
            .matched("o3", "c3")
            .open("d1", "c1", "1", "2026-06-05")
            .won("d2", "c2", "1", "2026-06-12", "2026-06-20")
            .deal(
                "d3",
                &["c3"],
                Some(StageKind::Lost),
                "1",
                "USD",
                "2026-06-04",
                Some("2026-06-06"),
            )
            .open("d4", "c1", "1", "2026-06-10")
            .when(&[30]);
        let d = &then.w(30).days_to_deal;
        // 1, 4, 9, 10: average 24/4 = 6, median (4 + 9) / 2 = 6.5.
        assert_eq!(d.deals, 4);
        assert_eq!(d.average, Some(6.0));
        assert_eq!(d.median, Some(6.5));
    }

    #[test]
    fn given_a_won_deal_with_touches_then_time_decay_ages_them_from_the_close() {
        // Closed 06-16; touches 06-02 (14 days before), 06-09 (7), 06-16 (0): weights 1:2:4.
        // $7,000.00 = 700,000 cents -> 100,000 / 200,000 / 400,000.
        let then = Given::default()
            .touch("o1", "k1", "2026-06-02")
            .touch("o1", "k2", "2026-06-09")
            .touch("o1", "k3", "2026-06-16")
            .touch("o1", "k4", "2026-06-23")
            .matched("o1", "c1")
            .won("d1", "c1", "7000", "2026-06-01", "2026-06-16")
            .when(&[30]);
        assert_eq!(
            then.credit(30, "d1", Model::TimeDecay),
            vec!["k1=1000.00", "k2=2000.00", "k3=4000.00"]
        );
        // U-shaped over three: 40/20/40.
        assert_eq!(
            then.credit(30, "d1", Model::UShaped),
            vec!["k1=2800.00", "k2=1400.00", "k3=2800.00"]
        );
    }

    #[test]
    fn given_any_workspace_then_each_models_campaign_credit_adds_up_to_the_metric_total() {
        let then = Given::default()
            .touch("o1", "k1", "2026-05-20")
            .touch("o1", "k2", "2026-06-03")
            .touch("o2", "k3", "2026-06-04")
            .touch("o2", "k1", "2026-06-29")
            .matched("o1", "c1")
            .matched("o2", "c2")
            .open("a", "c1", "333.33", "2026-06-01")
            .open("b", "c2", "0.01", "2026-06-01")
            .won("c", "c2", "1000.01", "2026-05-01", "2026-06-15")
            .when(&[30, 90]);
        for w in &then.1 {
            for (metric, totals) in &w.metrics {
                for (currency, total) in &totals.amounts {
                    for model in Model::ALL {
                        let sum = w
                            .campaign_credit
                            .iter()
                            .filter(|(k, _)| k.0 == model && k.1 == *metric && &k.2 == currency)
                            .fold(Amount::zero(2), |a, (_, c)| {
                                a.checked_add(c.amount).unwrap()
                            });
                        assert_eq!(sum, total.amount, "{model:?} {metric:?} {}", w.window_days);
                    }
                }
            }
        }
    }

    #[test]
    fn given_the_same_inputs_then_the_same_numbers() {
        let given = || {
            Given::default()
                .touch("o1", "k1", "2026-06-05")
                .touch("o1", "k2", "2026-06-05")
                .matched("o1", "c1")
                .open("d1", "c1", "10", "2026-06-10")
        };
        assert_eq!(given().when(&[30, 90]).1, given().when(&[30, 90]).1);
        // Same-day touches are ordered by campaign: k1 is the first touch.
        assert_eq!(
            given().when(&[30]).credit(30, "d1", Model::FirstTouch),
            vec!["k1=10.00", "k2=0.00"]
        );
    }
}
