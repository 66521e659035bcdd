//! LinkedIn Marketing API client: ad accounts, ad analytics by member company and campaign
//! (split by date range so no response reaches the 15,000-element truncation), and batched
//! organization lookup (at most 100 ids a call).
//!
//! | file | what |
//! |---|---|
//! | `config` | [`LinkedinConfig`], the analytics cap and the organization batch size |
//! | `records` | [`AdAccount`], [`Campaign`], [`EngagementRow`], [`Organization`] |
//! | `wire` | LinkedIn's response bodies and Rest.li encodings, read only by the client |
//! | `client` | [`LinkedinClient`]: one call per method |
//! | `engagement` | [`EngagementWalker`]: the resumable, range-splitting analytics walk |

mod client;
mod config;
mod engagement;
mod records;
mod wire;

pub use client::LinkedinClient;
pub use config::{ANALYTICS_CAP, DEFAULT_VERSION, LinkedinConfig, ORG_BATCH};
pub use engagement::EngagementWalker;
pub use records::{
    AdAccount, Campaign, EngagementChunk, EngagementRow, Organization, OrganizationLookup,
};
