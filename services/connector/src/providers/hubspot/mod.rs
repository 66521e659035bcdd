//! HubSpot CRM client: paged lists, incremental search on the last-modified date (paged by key,
//! so edits during the walk skip nothing and the 10,000-result paging limit is never met), deal pipelines,
//! deal-to-company associations, and a rate limiter driven by HubSpot's rate-limit headers so a
//! sync uses the budget without ever being answered 429.
//!
//! | file | what |
//! |---|---|
//! | `config` | [`HubspotConfig`]: base URL, page size, default rate budget |
//! | `records` | [`Company`], [`Contact`], [`Deal`], [`Pipeline`]: what HubSpot sends, typed |
//! | `wire` | HubSpot's response bodies, read only by the client |
//! | `rate_limit` | the limiter that follows HubSpot's rate-limit headers |
//! | `client` | [`HubspotClient`]: one call per method |
//! | `search` | [`SearchWalker`]: the resumable incremental search, paged by key |

mod client;
mod config;
mod rate_limit;
mod records;
mod search;
mod wire;

pub use client::{HubspotClient, SearchPage, TokenInfo};
pub use config::{DEFAULT_MAX_RETRY_AFTER, HubspotConfig};
pub use records::{
    AssociationList, AssociationRef, Company, Contact, Deal, HubspotObject, Pipeline,
    PipelineStage, RawObject, StageOutcome,
};
pub use search::SearchWalker;
