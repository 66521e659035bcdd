//! What the LinkedIn client returns: ad accounts, campaigns, daily engagement rows by member
//! company, and organizations.

use chrono::NaiveDate;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdAccount {
    pub id: u64,
    pub name: String,
    pub currency: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub id: u64,
    pub account_id: u64,
    pub name: String,
    pub status: String,
}

/// One day of one campaign's engagement with one member company.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngagementRow {
    pub org_id: u64,
    pub campaign_id: u64,
    pub date: NaiveDate,
    pub impressions: u64,
    pub clicks: u64,
    pub engagements: u64,
}

/// The rows of one date range.
#[derive(Clone, Debug, PartialEq)]
pub struct EngagementChunk {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub rows: Vec<EngagementRow>,
    /// The provider truncated a single day (cannot split further): rows are incomplete.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: u64,
    pub localized_name: String,
    pub vanity_name: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub industries: Vec<String>,
    pub staff_count_range: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationLookup {
    pub found: Vec<Organization>,
    /// Ids LinkedIn did not return (404 or another per-id error).
    pub missing: Vec<u64>,
}
