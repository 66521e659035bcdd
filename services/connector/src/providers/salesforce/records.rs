//! Salesforce's sObjects as the client reads them (accounts, contacts, opportunities and their
//! stages), and how their datetimes and amounts are written.

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// An sObject the client can query incrementally.
pub trait SalesforceObject: Sized + DeserializeOwned + Serialize + Send {
    const NAME: &'static str;
    const FIELDS: &'static [&'static str];
    fn id(&self) -> &str;
    fn system_modstamp(&self) -> Option<DateTime<Utc>>;

    /// What a pull's boundary remembers this version by, in place of the bare id:
    /// `<Id>#<fingerprint of every field read>`. `SystemModstamp` (like `LastModifiedDate`) has
    /// whole seconds, so two edits of one record within one second show the same stamp; the
    /// fingerprint tells them apart. Two versions that differ in no field we read are the same
    /// version for us, and skipping the second is right.
    fn version_key(&self) -> String {
        format!("{}#{}", self.id(), fingerprint(self))
    }
}

/// 64 bits of SHA-256 over the record's JSON (fields in declaration order), as hex. Stable
/// across builds; if the fields read change, boundary records are simply read once more.
fn fingerprint<T: Serialize>(record: &T) -> String {
    let json = serde_json::to_vec(record).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
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

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
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
    fn id(&self) -> &str {
        &self.id
    }
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
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
    fn id(&self) -> &str {
        &self.id
    }
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
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
    fn id(&self) -> &str {
        &self.id
    }
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
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
    fn id(&self) -> &str {
        &self.id
    }
    fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(website: &str, modstamp: &str) -> Account {
        serde_json::from_value(serde_json::json!({
            "attributes": {"type": "Account"},
            "Id": "001Dn0000000004IAA",
            "Name": "Acme",
            "Website": website,
            "BillingCountry": "DE",
            "CreatedDate": "2025-01-01T00:00:00.000+0000",
            "SystemModstamp": modstamp,
        }))
        .unwrap()
    }

    #[test]
    fn two_edits_in_one_second_have_different_version_keys() {
        let first = account("https://first.example", "2025-06-30T10:00:07.000+0000");
        let second = account("https://second.example", "2025-06-30T10:00:07.000+0000");
        assert_eq!(first.system_modstamp, second.system_modstamp);
        assert_ne!(first.version_key(), second.version_key());
        assert!(first.version_key().starts_with("001Dn0000000004IAA#"));
        // The same version read twice has the same key.
        let again = account("https://first.example", "2025-06-30T10:00:07.000+0000");
        assert_eq!(first.version_key(), again.version_key());
    }
}
