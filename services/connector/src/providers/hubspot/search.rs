//! Resumable incremental search: everything modified in a time window, page by page, with
//! windows halved until each fits under HubSpot's 10,000-result paging limit.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};

use super::client::HubspotClient;
use super::records::HubspotObject;
use crate::domain::provider::{ProviderError, Secret};

/// Resumable incremental walk. Windows whose search would pass the paging cap are halved
/// until they fit; windows are visited oldest first. A failed call leaves the position as it
/// was, so the caller can refresh the token and call `next_page` again.
#[derive(Debug, Clone)]
pub struct SearchWalker<T> {
    pending: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    after: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: HubspotObject> SearchWalker<T> {
    /// A walk over `[since, until)`; empty when `since` is not before `until`.
    pub(super) fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        SearchWalker {
            pending: if since < until {
                vec![(since, until)]
            } else {
                vec![]
            },
            after: 0,
            _t: PhantomData,
        }
    }

    pub async fn next_page(
        &mut self,
        client: &HubspotClient,
        token: &Secret,
    ) -> Result<Option<Vec<T>>, ProviderError> {
        while let Some(&(from, to)) = self.pending.last() {
            let page = client.search_page::<T>(token, from, to, self.after).await?;
            if self.after == 0 && page.total > client.cfg.search_cap {
                let span = to - from;
                if span <= chrono::Duration::milliseconds(1) {
                    return Err(client.http.request_error(
                        &format!("POST /crm/v3/objects/{}/search", T::PATH),
                        None,
                        format!(
                            "{} records modified within one millisecond at {from}: more than search can page",
                            page.total
                        ),
                    ));
                }
                let mid = from + span / 2;
                tracing::debug!(%from, %to, total = page.total, "search window over the cap, halving");
                self.pending.pop();
                self.pending.push((mid, to));
                self.pending.push((from, mid));
                continue;
            }
            match page.next_after {
                Some(n) => self.after = n,
                None => {
                    self.pending.pop();
                    self.after = 0;
                }
            }
            if page.records.is_empty() {
                continue;
            }
            return Ok(Some(page.records));
        }
        Ok(None)
    }
}
