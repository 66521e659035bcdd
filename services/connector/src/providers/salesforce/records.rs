//! Salesforce's sObjects as the client reads them (accounts, contacts, opportunities and their
//! stages), and how their datetimes and amounts are written.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An sObject the client can query incrementally.
pub trait SalesforceObject: Sized + DeserializeOwned + Send {
    const NAME: &'static str;
    const FIELDS: &'static [&'static str];
    fn system_modstamp(&self) -> Option<DateTime<Utc>>;
}

pub(super) mod sf_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    /// Salesforce datetimes: `2025-01-31T12:00:00.000+0000`.
    pub fn parse(s: &str) -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
            .or_else(|_| DateTime::parse_from_rfc3339(s))
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("bad datetime {s:?}: {e}"))
    }

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// A JSON number as a decimal string (`12500.5` → `"12500.5"`, `12500.0` → `"12500"`).
fn decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let s = n.to_string();
            Some(match s.strip_suffix(".0") {
                Some(t) => t.to_string(),
                None => s,
            })
        }
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a number, got {other}"
            )));
        }
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
    pub website: Option<String>,
    pub billing_country: Option<String>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub created_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for Account {
    const NAME: &'static str = "Account";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "Name",
        "Website",
        "BillingCountry",
        "CreatedDate",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contact {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub account_id: Option<String>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for Contact {
    const NAME: &'static str = "Contact";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "FirstName",
        "LastName",
        "Email",
        "Title",
        "AccountId",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Opportunity {
    pub id: String,
    pub name: Option<String>,
    pub account_id: Option<String>,
    /// Decimal string.
    #[serde(default, deserialize_with = "decimal")]
    pub amount: Option<String>,
    /// Present in multi-currency orgs only.
    #[serde(default)]
    pub currency_iso_code: Option<String>,
    pub stage_name: Option<String>,
    #[serde(default)]
    pub close_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub created_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_closed: bool,
    #[serde(default)]
    pub is_won: bool,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for Opportunity {
    const NAME: &'static str = "Opportunity";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "Name",
        "AccountId",
        "Amount",
        "CurrencyIsoCode",
        "StageName",
        "CloseDate",
        "CreatedDate",
        "IsClosed",
        "IsWon",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpportunityStage {
    pub id: String,
    pub api_name: String,
    pub master_label: String,
    #[serde(default)]
    pub is_closed: bool,
    #[serde(default)]
    pub is_won: bool,
    #[serde(default)]
    pub sort_order: Option<i64>,
    /// Percent, 0..=100.
    #[serde(default)]
    pub default_probability: Option<f64>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default, deserialize_with = "sf_time::opt")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

impl SalesforceObject for OpportunityStage {
    const NAME: &'static str = "OpportunityStage";
    const FIELDS: &'static [&'static str] = &[
        "Id",
        "ApiName",
        "MasterLabel",
        "IsClosed",
        "IsWon",
        "SortOrder",
        "DefaultProbability",
        "IsActive",
        "SystemModstamp",
    ];
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}
