//! Identifiers, parsed once at the edge: a value that exists is a trimmed, non-empty id.

use std::fmt;

/// Longest id accepted (providers' ids are far shorter).
pub const MAX_ID_LEN: usize = 256;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Trims `s`; refuses an empty or overlong id, saying why.
            pub fn parse(s: &str) -> Result<Self, String> {
                let t = s.trim();
                if t.is_empty() {
                    return Err(format!("{} is empty", $what));
                }
                if t.len() > MAX_ID_LEN {
                    return Err(format!("{} is longer than {MAX_ID_LEN} bytes", $what));
                }
                Ok(Self(t.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A LinkedIn organization (the company behind engagement).
    OrgId,
    "a LinkedIn organization id"
);
id_type!(
    /// A LinkedIn ad campaign.
    CampaignId,
    "a campaign id"
);
id_type!(
    /// A CRM company (account).
    CompanyId,
    "a CRM company id"
);
id_type!(
    /// A CRM deal (opportunity).
    DealId,
    "a deal id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_never_empty() {
        assert_eq!(DealId::parse("  d-1 ").unwrap().as_str(), "d-1");
        assert!(DealId::parse("   ").unwrap_err().contains("empty"));
        assert!(OrgId::parse(&"x".repeat(MAX_ID_LEN + 1)).is_err());
    }
}
