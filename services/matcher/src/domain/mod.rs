//! The matching domain: pure types and rules, no I/O.
//!
//! - [`site`]: websites and domains in any surface form → registrable domain (Public Suffix List).
//! - [`hosts`]: well-known hosts that never identify a company (first line only).
//! - [`names`]: company-name folding, legal forms (ISO 20275), abbreviations, typo rules.
//! - [`model`]: records, matches, review cases, manual decisions.
//! - [`index`]: the incremental match index that applies the rules.

pub(crate) mod hash;
pub mod hosts;
pub mod index;
pub(crate) mod keyindex;
pub mod model;
pub mod names;
pub mod site;

pub use index::{Change, ChangeSet, IndexStats, MatchConfig, MatchIndex};
pub use model::{
    Candidate, CrmAccount, CrmId, Decision, DecisionKind, LinkedInCompany, LinkedInId,
    LinkedInResult, Match, Method, RecordError, Review, Score,
};
pub use names::NormalizedName;
pub use site::{Site, WebAddress, WebAddressError, registrable_domain};
