//! A day's worth of change (`POST /admin/churn`, docs/storage.md): a fraction of the CRM's
//! companies, contacts and deals edited (their last-modified time moved to now, so incremental
//! pulls see them), and a new day of LinkedIn engagement (the last complete day before the
//! clock's date), all drawn deterministically from a seed.

use crate::data::{Engagement, Kind, World};
use crate::util::Rng;
use chrono::{DateTime, NaiveDate};
use std::collections::BTreeSet;

/// What one churn changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Churned {
    pub companies: usize,
    pub contacts: usize,
    pub deals: usize,
    pub engagement_rows: usize,
    /// The day the new engagement is dated.
    pub day: NaiveDate,
}

/// Why a churn request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChurnError {
    #[error("fraction must be a number above 0 and at most 1, got {0}")]
    Fraction(String),
    #[error("the clock is outside the calendar")]
    Clock,
}

/// Edits `ceil(fraction × live records)` of each CRM kind and adds `engagement_rows` rows of
/// engagement (default: the history's average day) dated the day before `now_ms`'s date.
/// The same world, seed and clock give the same changes.
pub fn churn(
    w: &mut World,
    fraction: f64,
    seed: u64,
    engagement_rows: Option<usize>,
    now_ms: i64,
) -> Result<Churned, ChurnError> {
    if !(fraction.is_finite() && fraction > 0.0 && fraction <= 1.0) {
        return Err(ChurnError::Fraction(fraction.to_string()));
    }
    let day = DateTime::from_timestamp_millis(now_ms)
        .and_then(|t| t.date_naive().pred_opt())
        .ok_or(ChurnError::Clock)?;
    let mut counts = [0usize; 3];
    for (i, kind) in [Kind::Company, Kind::Contact, Kind::Deal]
        .into_iter()
        .enumerate()
    {
        let name = ["churn-companies", "churn-contacts", "churn-deals"][i];
        let mut rng = Rng::stream(seed, name);
        let picked = pick_live(w, kind, fraction, &mut rng);
        for &idx in &picked {
            edit(w, kind, idx, &mut rng);
            w.set_modified(kind, idx, now_ms);
        }
        counts[i] = picked.len();
    }
    let rows = new_engagement(w, seed, engagement_rows, day);
    let engagement_rows = rows.len();
    w.add_engagement(rows);
    Ok(Churned {
        companies: counts[0],
        contacts: counts[1],
        deals: counts[2],
        engagement_rows,
        day,
    })
}

/// Distinct live (not archived) records, `ceil(fraction × live)` of them.
fn pick_live(w: &World, kind: Kind, fraction: f64, rng: &mut Rng) -> BTreeSet<u32> {
    let len = w.len(kind);
    let live: Vec<u32> = (0..len as u32).filter(|&i| !w.archived(kind, i)).collect();
    let want = ((live.len() as f64) * fraction).ceil() as usize;
    let want = want.min(live.len());
    let mut picked = BTreeSet::new();
    // Uniform draws until enough are distinct; at most a few times `want` draws for any
    // fraction, and the whole list when asked for all of it.
    if want == live.len() {
        return live.into_iter().collect();
    }
    while picked.len() < want {
        picked.insert(*rng.pick(&live));
    }
    picked
}

/// A plausible edit of one record.
fn edit(w: &mut World, kind: Kind, idx: u32, rng: &mut Rng) {
    let i = idx as usize;
    match kind {
        Kind::Company => {
            if let Some(c) = w.companies.get_mut(i) {
                c.country = Some(["US", "GB", "DE", "FR", "CA"][rng.below(5) as usize].into());
            }
        }
        Kind::Contact => {
            if let Some(c) = w.contacts.get_mut(i) {
                let titles = ["VP Marketing", "Head of Growth", "CMO", "Demand Gen Lead"];
                c.title = Some(titles[rng.below(titles.len() as u64) as usize].into());
            }
        }
        Kind::Deal => {
            let stages = w
                .deals
                .get(i)
                .and_then(|d| w.pipelines.get(d.pipeline))
                .map_or(0, |p| p.stages.len());
            if let Some(d) = w.deals.get_mut(i) {
                if let Some(a) = d.amount_cents {
                    d.amount_cents = Some(a + a / 100 + 100);
                }
                if stages > 0 && rng.chance(0.3) {
                    d.stage = (d.stage + 1) % stages;
                }
            }
        }
    }
}

/// Rows for `day` for (organization, campaign) pairs drawn from the history, none already
/// there.
fn new_engagement(w: &World, seed: u64, rows: Option<usize>, day: NaiveDate) -> Vec<Engagement> {
    let (Some(first), Some(last)) = (w.engagement.first(), w.engagement.last()) else {
        return Vec::new();
    };
    let span = (last.date - first.date).num_days().max(0) as usize + 1;
    let want = rows.unwrap_or_else(|| w.engagement.len().div_ceil(span));
    let existing: BTreeSet<(u64, u64)> = w
        .engagement_range(day, day)
        .iter()
        .map(|e| (e.org_id, e.campaign_id))
        .collect();
    let mut rng = Rng::stream(seed ^ day.to_epoch_days() as u64, "churn-engagement");
    let mut pairs = BTreeSet::new();
    // Bounded: the history may hold fewer distinct pairs than asked for.
    let mut draws = want.saturating_mul(4) + 16;
    while pairs.len() < want && draws > 0 {
        draws -= 1;
        let e = rng.pick(&w.engagement);
        if !existing.contains(&(e.org_id, e.campaign_id)) {
            pairs.insert((e.org_id, e.campaign_id));
        }
    }
    pairs
        .into_iter()
        .map(|(org_id, campaign_id)| {
            let u = rng.unit();
            let impressions = 1 + (u * u * 400.0) as u64;
            let clicks = rng.below(impressions / 15 + 2);
            Engagement {
                date: day,
                org_id,
                campaign_id,
                impressions,
                clicks,
                engagements: clicks + rng.below(impressions / 10 + 1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sizes;

    fn world() -> World {
        let sizes = Sizes {
            companies: 400,
            contacts: 1_600,
            deals: 40,
            engaged_orgs: 40,
            days: 90,
        };
        crate::data::generate(
            7,
            sizes,
            NaiveDate::from_ymd_opt(2026, 6, 1).expect("a date"),
        )
    }

    /// 2026-06-02 10:00 UTC.
    const NOW: i64 = 1_780_394_400_000;

    #[test]
    fn one_percent_of_each_kind_changes_and_moves_its_modified_time() {
        let mut w = world();
        let c = churn(&mut w, 0.01, 1, None, NOW).expect("churn");
        assert_eq!((c.companies, c.contacts, c.deals), (4, 16, 1));
        let moved = |k: Kind| {
            let idx = w.mod_index(k);
            idx.0[idx.range(NOW, NOW + 1)].len()
        };
        assert_eq!(
            (
                moved(Kind::Company),
                moved(Kind::Contact),
                moved(Kind::Deal)
            ),
            (4, 16, 1)
        );
        assert!(c.engagement_rows > 0);
        assert_eq!(w.engagement_range(c.day, c.day).len(), c.engagement_rows);
    }

    #[test]
    fn the_same_seed_and_clock_give_the_same_changes() {
        let (mut a, mut b) = (world(), world());
        assert_eq!(
            churn(&mut a, 0.05, 3, None, NOW),
            churn(&mut b, 0.05, 3, None, NOW)
        );
        assert_eq!(a.engagement, b.engagement);
        assert_eq!(format!("{:?}", a.companies), format!("{:?}", b.companies));
        assert_eq!(format!("{:?}", a.deals), format!("{:?}", b.deals));
    }

    #[test]
    fn a_fraction_outside_zero_to_one_is_refused() {
        let mut w = world();
        for f in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                churn(&mut w, f, 1, None, NOW),
                Err(ChurnError::Fraction(_))
            ));
        }
        assert!(churn(&mut w, 1.0, 1, Some(0), NOW).is_ok());
    }
}
