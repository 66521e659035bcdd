//! The providers we connect to, and every way a provider is written: as people read it, as the
//! database and URLs store it, and as the events and the API number it. One mapping, here.

use crate::contracts::api::v1 as api;
use crate::contracts::events::v1 as ev;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Linkedin,
    Hubspot,
    Salesforce,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Linkedin, Provider::Hubspot, Provider::Salesforce];

    /// As people read it: `LinkedIn`, `HubSpot`, `Salesforce`.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Linkedin => "LinkedIn",
            Provider::Hubspot => "HubSpot",
            Provider::Salesforce => "Salesforce",
        }
    }

    /// As the database and URLs store it: `linkedin`, `hubspot`, `salesforce`.
    pub fn slug(self) -> &'static str {
        match self {
            Provider::Linkedin => "linkedin",
            Provider::Hubspot => "hubspot",
            Provider::Salesforce => "salesforce",
        }
    }

    pub fn from_slug(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.slug() == s)
    }

    pub fn to_event(self) -> ev::Provider {
        match self {
            Provider::Linkedin => ev::Provider::Linkedin,
            Provider::Hubspot => ev::Provider::Hubspot,
            Provider::Salesforce => ev::Provider::Salesforce,
        }
    }

    /// From an event's `rp.events.v1.Provider` number; `None` for unspecified or unknown.
    pub fn from_event(value: i32) -> Option<Self> {
        match ev::Provider::try_from(value).ok()? {
            ev::Provider::Linkedin => Some(Provider::Linkedin),
            ev::Provider::Hubspot => Some(Provider::Hubspot),
            ev::Provider::Salesforce => Some(Provider::Salesforce),
            ev::Provider::Unspecified => None,
        }
    }

    pub fn to_api(self) -> api::Provider {
        match self {
            Provider::Linkedin => api::Provider::Linkedin,
            Provider::Hubspot => api::Provider::Hubspot,
            Provider::Salesforce => api::Provider::Salesforce,
        }
    }

    /// From an API request's `rp.api.v1.Provider` number; `None` for unspecified or unknown.
    pub fn from_api(value: i32) -> Option<Self> {
        match api::Provider::try_from(value).ok()? {
            api::Provider::Linkedin => Some(Provider::Linkedin),
            api::Provider::Hubspot => Some(Provider::Hubspot),
            api::Provider::Salesforce => Some(Provider::Salesforce),
            api::Provider::Unspecified => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// The display name of an event's provider number, or "The integration" when it names none.
pub fn display_name_of_event(value: i32) -> &'static str {
    Provider::from_event(value).map_or("The integration", Provider::display_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_representation_round_trips() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_slug(p.slug()), Some(p));
            assert_eq!(Provider::from_event(p.to_event() as i32), Some(p));
            assert_eq!(Provider::from_api(p.to_api() as i32), Some(p));
            assert_eq!(p.to_string(), p.display_name());
        }
        assert_eq!(Provider::from_api(0), None);
        assert_eq!(Provider::from_event(42), None);
        assert_eq!(display_name_of_event(0), "The integration");
        assert_eq!(
            display_name_of_event(2),
            Provider::from_event(2).unwrap().display_name()
        );
    }
}
