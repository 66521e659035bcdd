//! Resumable incremental search: everything modified in a time window, page by page, by key.
//!
//! HubSpot's search pages by offset (`after`) in the order asked for. Paging a last-modified
//! ordering by offset loses records: one already read that is edited meanwhile moves to the end
//! and every later record shifts back one place, so the first record of the next page is never
//! returned (and no later sync reads it, as it was modified before the new signpost). So every
//! page here is the *first* page of a query that starts where the last one ended:
//!
//! * **By time**: `modified >= from AND modified < until`, sorted by modified, offset 0. The
//!   records before the page's last timestamp are all in the page (it is a prefix of the sorted
//!   set), so they are returned and `from` moves to that timestamp; the records at it are read by
//!   the next query, which starts there (none is returned twice).
//! * **By id, within one millisecond**: when a whole page shares one timestamp, the records of
//!   that millisecond are read by `hs_object_id` (sorted, `> last id`), then the time walk goes on
//!   after it.
//!
//! Every query is read from offset 0, so the 10,000-result paging cap of search is never met.
//! A record edited during the walk moves to a later time: it is read again if that is before
//! `until`, else by the next sync; nothing is skipped.

use std::marker::PhantomData;

use chrono::{DateTime, Duration, Utc};

use super::client::HubspotClient;
use super::records::HubspotObject;
use crate::domain::provider::{ProviderError, Secret};

/// One search query of the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchQuery {
    /// Modified in `[from, until)`, by modified time.
    Time {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// Modified within the millisecond `at`, by id, after `after_id`.
    Millisecond {
        at: DateTime<Utc>,
        after_id: Option<String>,
    },
}

/// Resumable incremental walk over `[since, until)`. A failed call leaves the position as it was,
/// so the caller can refresh the token and call `next_page` again.
#[derive(Debug, Clone)]
pub struct SearchWalker<T> {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    /// Reading the millisecond `from` by id, after this id (`Some(None)`: from its first).
    by_id: Option<Option<String>>,
    done: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: HubspotObject> SearchWalker<T> {
    /// A walk over `[since, until)`; empty when `since` is not before `until`.
    pub(super) fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        SearchWalker {
            from: since,
            until,
            by_id: None,
            done: since >= until,
            _t: PhantomData,
        }
    }

    pub async fn next_page(
        &mut self,
        client: &HubspotClient,
        token: &Secret,
    ) -> Result<Option<Vec<T>>, ProviderError> {
        let limit = client.cfg.page_size.clamp(1, 100);
        while !self.done {
            if let Some(after_id) = self.by_id.clone() {
                let query = SearchQuery::Millisecond {
                    at: self.from,
                    after_id,
                };
                let page = client.search_page::<T>(token, &query).await?;
                let full = page.records.len() >= limit;
                match page.records.last() {
                    Some(last) if full => self.by_id = Some(Some(last.id().to_string())),
                    _ => {
                        // The millisecond is read: the time walk goes on after it.
                        self.by_id = None;
                        self.from += Duration::milliseconds(1);
                    }
                }
                if page.records.is_empty() {
                    continue;
                }
                return Ok(Some(page.records));
            }
            let query = SearchQuery::Time {
                from: self.from,
                until: self.until,
            };
            let page = client.search_page::<T>(token, &query).await?;
            let full = page.records.len() >= limit && page.next_after.is_some();
            let Some(last_at) = page.records.last().map(|r| r.modified_at()) else {
                self.done = true;
                break;
            };
            let mut records = page.records;
            if !full {
                // The query's last page: everything left is in it.
                self.done = true;
            } else if last_at <= self.from {
                // A whole page within one millisecond: read that millisecond by id.
                self.by_id = Some(None);
                continue;
            } else {
                // Return what lies before the page's last timestamp; the records at it are read
                // again by the next query, which starts there.
                records.retain(|r| r.modified_at() < last_at);
                self.from = last_at;
            }
            if records.is_empty() {
                continue;
            }
            return Ok(Some(records));
        }
        Ok(None)
    }
}
