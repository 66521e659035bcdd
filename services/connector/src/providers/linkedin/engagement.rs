//! The engagement walk: ad analytics over a date range, in ranges small enough never to be
//! truncated (a range whose response reaches the cap is halved and fetched again).

use chrono::{Days, NaiveDate};

use super::client::LinkedinClient;
use super::records::EngagementChunk;
use crate::domain::provider::{ProviderError, Secret};

/// Resumable walk over a date range: a failed call (e.g. an expired token) leaves the range
/// pending, so the caller can refresh and call `next_chunk` again.
#[derive(Clone, Debug)]
pub struct EngagementWalker {
    accounts: Vec<u64>,
    /// Stack of ranges still to fetch; the top is the earliest.
    pending: Vec<(NaiveDate, NaiveDate)>,
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
        let mut ranges = Vec::new();
        let mut from = start;
        while from <= end {
            let to = from
                .checked_add_days(Days::new(step - 1))
                .map_or(end, |t| t.min(end));
            ranges.push((from, to));
            match to.succ_opt() {
                Some(next) => from = next,
                None => break,
            }
        }
        ranges.reverse();
        EngagementWalker {
            accounts,
            pending: ranges,
        }
    }

    /// The next chunk of rows in date order, or `None` when done.
    pub async fn next_chunk(
        &mut self,
        client: &LinkedinClient,
        token: &Secret,
    ) -> Result<Option<EngagementChunk>, ProviderError> {
        while let Some(&(start, end)) = self.pending.last() {
            let (rows, capped) = client.analytics(token, &self.accounts, start, end).await?;
            self.pending.pop();
            if capped && start < end {
                let days = (end - start).num_days().max(1) as u64;
                let mid = start + Days::new(days / 2);
                tracing::debug!(%start, %end, %mid, "adAnalytics hit the cap, splitting the range");
                self.pending.push((mid + Days::new(1), end));
                self.pending.push((start, mid));
                continue;
            }
            if capped {
                tracing::warn!(%start, "adAnalytics truncated a single day; rows are incomplete");
            }
            return Ok(Some(EngagementChunk {
                start,
                end,
                rows,
                truncated: capped,
            }));
        }
        Ok(None)
    }
}
