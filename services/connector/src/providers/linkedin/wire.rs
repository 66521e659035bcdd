//! LinkedIn's JSON, as it arrives, and the Rest.li encodings the client writes. Only the
//! client reads these.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct ApiError {
    #[serde(default)]
    pub(super) code: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct AccountsResp {
    pub(super) elements: Vec<AccountJ>,
    #[serde(default)]
    pub(super) paging: Option<PagingJ>,
}

#[derive(Deserialize)]
pub(super) struct AccountUsersResp {
    #[serde(default)]
    pub(super) elements: Vec<AccountUserJ>,
}

#[derive(Deserialize)]
pub(super) struct AccountUserJ {
    #[serde(default)]
    pub(super) user: String,
}

#[derive(Deserialize)]
pub(super) struct AccountJ {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) currency: String,
    #[serde(default)]
    pub(super) status: String,
}

#[derive(Deserialize)]
pub(super) struct CampaignsResp {
    pub(super) elements: Vec<CampaignJ>,
    #[serde(default)]
    pub(super) paging: Option<PagingJ>,
}

#[derive(Deserialize)]
pub(super) struct CampaignJ {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) status: String,
}

#[derive(Deserialize)]
pub(super) struct PagingJ {
    #[serde(default)]
    pub(super) total: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct AnalyticsResp {
    pub(super) elements: Vec<AnalyticsJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AnalyticsJ {
    pub(super) pivot_values: Vec<String>,
    pub(super) date_range: DateRangeJ,
    #[serde(default)]
    pub(super) impressions: u64,
    #[serde(default)]
    pub(super) clicks: u64,
    #[serde(default)]
    pub(super) total_engagements: u64,
}

#[derive(Deserialize)]
pub(super) struct DateRangeJ {
    pub(super) start: DateJ,
}

#[derive(Deserialize)]
pub(super) struct DateJ {
    pub(super) year: i32,
    pub(super) month: u32,
    pub(super) day: u32,
}

#[derive(Deserialize)]
pub(super) struct OrgsResp {
    #[serde(default)]
    pub(super) results: HashMap<String, OrgJ>,
    #[serde(default)]
    pub(super) statuses: HashMap<String, u16>,
    #[serde(default)]
    pub(super) errors: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrgJ {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) localized_name: String,
    #[serde(default)]
    pub(super) vanity_name: Option<String>,
    #[serde(default)]
    pub(super) localized_website: Option<String>,
    #[serde(default)]
    pub(super) industries: Vec<String>,
    #[serde(default)]
    pub(super) staff_count_range: Option<String>,
    #[serde(default)]
    pub(super) locations: Vec<LocationJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LocationJ {
    #[serde(default)]
    pub(super) location_type: Option<String>,
    #[serde(default)]
    pub(super) address: Option<AddressJ>,
}

#[derive(Deserialize)]
pub(super) struct AddressJ {
    #[serde(default)]
    pub(super) country: Option<String>,
}

pub(super) fn restli_date(d: NaiveDate) -> String {
    format!("(year:{},month:{},day:{})", d.year(), d.month(), d.day())
}

pub(super) fn urn_id(urn: &str, prefix: &str) -> Option<u64> {
    urn.strip_prefix(prefix)?.parse().ok()
}
