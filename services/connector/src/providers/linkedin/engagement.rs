//! The engagement walk: ad analytics over a date range, in queries small enough never to be
//! truncated. A query whose response reaches the cap is split and fetched again: a date range in
//! halves; a single day by account (halves of the account list); a single account's day by
//! campaign (halves of its campaign list). A single campaign's day still at the cap cannot be
//! split further: it comes back marked truncated.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};

use super::client::LinkedinClient;
use super::records::EngagementChunk;
use crate::domain::provider::{ProviderError, Secret};

/// Which ad entities one query covers (the adAnalytics facet).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    /// `accounts=List(..)`.
    Accounts(Vec<u64>),
    /// `campaigns=List(..)`, all of one account.
    Campaigns(Vec<u64>),
}

#[derive(Clone, Debug)]
struct Query {
    start: NaiveDate,
    end: NaiveDate,
    scope: Scope,
}

/// Resumable walk over a date range: a failed call (e.g. an expired token) leaves the query
/// pending, so the caller can refresh and call `next_chunk` again.
#[derive(Clone, Debug)]
pub struct EngagementWalker {
    /// Each account's campaigns, to split a single account's day by campaign.
    campaigns: HashMap<u64, Vec<u64>>,
    /// Stack of queries still to make; the top is the earliest.
    pending: Vec<Query>,
}

impl EngagementWalker {
    /// A walk over `start..=end` for the accounts, in ranges of at most `chunk_days` days.
    pub(super) fn new(
        accounts: Vec<u64>,
        start: NaiveDate,
        end: NaiveDate,
        chunk_days: u32,
    ) -> Self {
        let step = u64::from(chunk_days.max(1));
        let mut pending = Vec::new();
        let mut from = start;
        while from <= end {
            let to = from
                .checked_add_days(Days::new(step - 1))
                .map_or(end, |t| t.min(end));
            pending.push(Query {
                start: from,
                end: to,
                scope: Scope::Accounts(accounts.clone()),
            });
            match to.succ_opt() {
                Some(next) => from = next,
                None => break,
            }
        }
        pending.reverse();
        EngagementWalker {
            campaigns: HashMap::new(),
            pending,
        }
    }

    /// Each account's campaigns: a single account's day at the cap is then split by campaign.
    /// Without them it comes back truncated.
    pub fn split_by_campaign(mut self, campaigns_of_account: HashMap<u64, Vec<u64>>) -> Self {
        self.campaigns = campaigns_of_account;
        self
    }

    /// How a query at the cap is split, or `None` when nothing finer exists.
    fn split(&self, q: &Query) -> Option<[Query; 2]> {
        let halves = |ids: &[u64], wrap: fn(Vec<u64>) -> Scope| {
            let (a, b) = ids.split_at(ids.len() / 2);
            [
                Query {
                    scope: wrap(a.to_vec()),
                    ..q.clone()
                },
                Query {
                    scope: wrap(b.to_vec()),
                    ..q.clone()
                },
            ]
        };
        if q.start < q.end {
            let days = (q.end - q.start).num_days().max(1) as u64;
            let mid = q.start + Days::new(days / 2);
            return Some([
                Query {
                    end: mid,
                    ..q.clone()
                },
                Query {
                    start: mid + Days::new(1),
                    ..q.clone()
                },
            ]);
        }
        match &q.scope {
            Scope::Accounts(a) if a.len() > 1 => Some(halves(a, Scope::Accounts)),
            Scope::Accounts(a) => {
                let campaigns = a.first().and_then(|id| self.campaigns.get(id))?;
                (campaigns.len() > 1).then(|| halves(campaigns, Scope::Campaigns))
            }
            Scope::Campaigns(c) if c.len() > 1 => Some(halves(c, Scope::Campaigns)),
            Scope::Campaigns(_) => None,
        }
    }

    /// The next chunk of rows in date order, or `None` when done.
    pub async fn next_chunk(
        &mut self,
        client: &LinkedinClient,
        token: &Secret,
    ) -> Result<Option<EngagementChunk>, ProviderError> {
        while let Some(q) = self.pending.last().cloned() {
            let (rows, capped) = match &q.scope {
                Scope::Accounts(a) => client.analytics(token, a, q.start, q.end).await?,
                Scope::Campaigns(c) => {
                    client
                        .analytics_of_campaigns(token, c, q.start, q.end)
                        .await?
                }
            };
            self.pending.pop();
            if capped {
                if let Some([first, second]) = self.split(&q) {
                    tracing::debug!(start = %q.start, end = %q.end, scope = ?q.scope, "adAnalytics hit the cap, splitting the query");
                    self.pending.push(second);
                    self.pending.push(first);
                    continue;
                }
                tracing::warn!(day = %q.start, scope = ?q.scope, "adAnalytics truncated one campaign's day, which cannot be split further: rows of that day are missing");
            }
            return Ok(Some(EngagementChunk {
                start: q.start,
                end: q.end,
                rows,
                truncated: capped,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 6, day).unwrap()
    }

    fn walker(accounts: Vec<u64>, campaigns: &[(u64, Vec<u64>)]) -> EngagementWalker {
        EngagementWalker::new(accounts, d(1), d(1), 1)
            .split_by_campaign(campaigns.iter().cloned().collect())
    }

    fn q(scope: Scope) -> Query {
        Query {
            start: d(1),
            end: d(1),
            scope,
        }
    }

    #[test]
    fn a_day_at_the_cap_is_split_by_account_then_by_campaign_then_not_at_all() {
        let w = walker(vec![1, 2, 3], &[(1, vec![10, 11, 12]), (2, vec![20])]);
        let [a, b] = w.split(&q(Scope::Accounts(vec![1, 2, 3]))).unwrap();
        assert_eq!(
            (a.scope, b.scope),
            (Scope::Accounts(vec![1]), Scope::Accounts(vec![2, 3]))
        );
        let [a, b] = w.split(&q(Scope::Accounts(vec![1]))).unwrap();
        assert_eq!(
            (a.scope, b.scope),
            (Scope::Campaigns(vec![10]), Scope::Campaigns(vec![11, 12]))
        );
        assert!(w.split(&q(Scope::Campaigns(vec![10]))).is_none());
        // One campaign: the account's day is that campaign's day.
        assert!(w.split(&q(Scope::Accounts(vec![2]))).is_none());
        // Campaigns unknown: nothing finer.
        assert!(w.split(&q(Scope::Accounts(vec![3]))).is_none());
    }

    #[test]
    fn a_range_at_the_cap_is_halved_by_date_first() {
        let w = walker(vec![1, 2], &[]);
        let range = Query {
            start: d(1),
            end: d(4),
            scope: Scope::Accounts(vec![1, 2]),
        };
        let [a, b] = w.split(&range).unwrap();
        assert_eq!((a.start, a.end, b.start, b.end), (d(1), d(2), d(3), d(4)));
        assert_eq!(b.scope, Scope::Accounts(vec![1, 2]));
    }
}
