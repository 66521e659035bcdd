//! The matcher's vocabulary: records in, matches and review cases out, manual decisions.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why a record or decision is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0} is empty")]
    EmptyId(&'static str),
    #[error("{field} is too long ({len} bytes, at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

const MAX_ID_LEN: usize = 256;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Identifier of a ", $what, "; non-empty, trimmed. Parsed once at the edge.")]
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, RecordError> {
                let s = raw.trim();
                if s.is_empty() {
                    return Err(RecordError::EmptyId($what));
                }
                if s.len() > MAX_ID_LEN {
                    return Err(RecordError::TooLong {
                        field: $what,
                        len: s.len(),
                        max: MAX_ID_LEN,
                    });
                }
                Ok(Self(s.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = RecordError;
            fn try_from(s: String) -> Result<Self, RecordError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(CrmId, "CRM account id");
id_type!(LinkedInId, "LinkedIn company id");

/// A CRM account (HubSpot company, Salesforce Account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrmAccount {
    pub id: CrmId,
    pub name: String,
    /// The domain field, as typed (may be a URL, a free-mail domain, anything).
    pub domain: Option<String>,
    pub website: Option<String>,
    /// ISO 3166-1 alpha-2, any case.
    pub country: Option<String>,
}

/// A LinkedIn company, as company resolution returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedInCompany {
    pub id: LinkedInId,
    pub name: String,
    pub vanity_name: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
}

/// How a pair was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Same trusted web site.
    Domain,
    /// Same normalised name, no conflicting evidence.
    Name,
    /// Names a typo apart, one clear candidate, no conflicting evidence.
    Fuzzy,
    /// A person decided.
    Manual,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Domain => "domain",
            Method::Name => "name",
            Method::Fuzzy => "fuzzy",
            Method::Manual => "manual",
        }
    }
}

/// Confidence in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Score(f64);

impl Score {
    /// Clamps into [0, 1] and rounds to three decimals (NaN becomes 0).
    pub fn new(v: f64) -> Score {
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        Score((v * 1000.0).round() / 1000.0)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

/// One LinkedIn company paired with one CRM account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Match {
    pub linkedin_id: LinkedInId,
    pub crm_id: CrmId,
    pub method: Method,
    pub score: Score,
    /// Human-readable: what evidence made the pair.
    pub reason: String,
}

/// A CRM account that may be the company, in a case left for a person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub crm_id: CrmId,
    pub crm_name: String,
    pub method: Method,
    pub score: Score,
    pub reason: String,
}

/// A LinkedIn company the algorithm will not pair on its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Review {
    pub reason: String,
    pub candidates: Vec<Candidate>,
}

/// Everything the matcher says about one LinkedIn company.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkedInResult {
    pub linkedin_id: LinkedInId,
    /// Pairs, sorted by CRM id.
    pub matches: Vec<Match>,
    /// Set when the company needs a person's look (never together with algorithmic matches
    /// that the review is about).
    pub review: Option<Review>,
}

impl LinkedInResult {
    pub fn is_empty(&self) -> bool {
        self.matches.is_empty() && self.review.is_none()
    }
}

/// What a person decided about a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    /// The pair (proposed by the algorithm or in review) is right.
    Confirm,
    /// The pair is wrong: never output it, never count it as a candidate.
    Reject,
    /// Pair these two, whatever the algorithm says.
    Link,
}

/// A manual decision about one pair. The latest decision about a pair replaces earlier ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    pub linkedin_id: LinkedInId,
    pub crm_id: CrmId,
    #[serde(rename = "action")]
    pub kind: DecisionKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_never_empty() {
        assert_eq!(CrmId::parse(" crm-1 ").unwrap().as_str(), "crm-1");
        assert!(CrmId::parse("  ").is_err());
        assert!(LinkedInId::parse(&"x".repeat(300)).is_err());
    }

    #[test]
    fn scores_stay_in_the_unit_interval() {
        assert_eq!(Score::new(1.7).value(), 1.0);
        assert_eq!(Score::new(-1.0).value(), 0.0);
        assert_eq!(Score::new(f64::NAN).value(), 0.0);
        assert_eq!(Score::new(0.12345).value(), 0.123);
    }
}
