//! The drill-down: why deals count, recomputed from the inputs of the dashboard version they
//! belong to (its deals, stages, matches and engagement rows), with the version's as-of time,
//! windows and half-life, by the same rules that computed its numbers. So it always agrees with
//! the dashboard, without storing every deal's touches and credit with every version.

use crate::domain::metrics::{self, DealOutcome, WindowNumbers};
use crate::domain::{HalfLife, OrgId};
use crate::store::{self, At, Loaded, Scope, VersionRow};
use sqlx::PgConnection;
use std::collections::{BTreeSet, HashMap};

/// Some deals of a version, explained for one window.
pub struct Explained {
    pub loaded: Loaded,
    pub numbers: WindowNumbers,
    pub org_names: HashMap<String, String>,
    pub company_names: HashMap<String, String>,
}

impl Explained {
    /// The deal's index in `loaded` and, when engagement counts for it, its outcome.
    pub fn deal(&self, deal_id: &str) -> Option<(usize, Option<&DealOutcome>)> {
        let i = self
            .loaded
            .inputs
            .deals
            .iter()
            .position(|d| d.id.as_str() == deal_id)?;
        Some((i, self.numbers.deals.iter().find(|o| o.deal == i)))
    }
}

/// Explains `deal_ids` (those the version knows) in the `window_days` window of `version`.
pub async fn explain(
    conn: &mut PgConnection,
    ws: &str,
    version: &VersionRow,
    window_days: u32,
    deal_ids: &[String],
) -> Result<Explained, sqlx::Error> {
    let as_of = version.as_of.date_naive();
    let longest = version
        .windows
        .iter()
        .filter_map(|w| u32::try_from(*w).ok())
        .max()
        .unwrap_or(window_days)
        .max(window_days);
    let loaded = store::load(
        conn,
        ws,
        At::Version(version.version),
        Scope::Deals(deal_ids),
        as_of,
        longest,
    )
    .await?;
    let half_life = u32::try_from(version.half_life_days)
        .ok()
        .and_then(|d| HalfLife::days(d).ok())
        .unwrap_or_default();
    let numbers = metrics::compute(&loaded.inputs, as_of, &[window_days], half_life)
        .pop()
        .unwrap_or_else(|| empty(window_days));
    let mut orgs: BTreeSet<&OrgId> = BTreeSet::new();
    let mut companies: BTreeSet<String> = BTreeSet::new();
    for o in &numbers.deals {
        for t in &o.touches {
            if let Some(row) = loaded.inputs.engagement.get(t.row) {
                orgs.insert(&row.org);
            }
            companies.insert(t.company.to_string());
        }
    }
    let orgs: Vec<String> = orgs.into_iter().map(|o| o.to_string()).collect();
    let companies: Vec<String> = companies.into_iter().collect();
    let (org_names, company_names) = store::names(conn, ws, &orgs, &companies).await?;
    Ok(Explained {
        loaded,
        numbers,
        org_names,
        company_names,
    })
}

fn empty(window_days: u32) -> WindowNumbers {
    WindowNumbers {
        window_days,
        companies: Default::default(),
        deal_counts: Default::default(),
        metrics: Default::default(),
        days_to_deal: Default::default(),
        campaign_credit: Default::default(),
        deals: Vec::new(),
    }
}
