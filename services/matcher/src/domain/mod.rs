//! The matching domain: pure types and rules, no I/O.
//!
//! - [`site`]: websites and domains in any surface form → registrable domain (Public Suffix List).
//! - [`hosts`]: well-known hosts that never identify a company (first line only).
//! - [`names`]: company-name folding, legal forms (ISO 20275), abbreviations.
//! - `fuzzy`: names a typo apart, and names related enough to share a site.
//! - [`model`]: records, matches, review cases, manual decisions.
//! - [`index`]: the incremental match index: builds, applies changes, re-matches what they affect.
//! - [`rules`]: how one LinkedIn company is matched (domain, name, fuzzy name, manual decisions).
//! - `prepared`, `trust`, `words` (private to the index): records prepared for matching, the
//!   trust of sites, word rarity.

pub(crate) mod fuzzy;
pub(crate) mod hash;
pub mod hosts;
pub mod index;
pub(crate) mod keyindex;
pub mod model;
pub mod names;
mod prepared;
pub mod rules;
pub mod site;
mod trust;
mod words;

pub use index::{Change, ChangeSet, IndexStats, MatchConfig, MatchIndex};
pub use model::{
    Candidate, CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId,
    LinkedInResult, Match, Method, RecordError, Review, Score,
};
pub use names::NormalizedName;
pub use site::{Site, WebAddress, WebAddressError, registrable_domain};
