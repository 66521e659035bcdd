//! HubSpot's CRM records: the raw object as HubSpot sends it, the typed companies, contacts
//! and deals built from it, deleted (archived) entries, and deal pipelines with each stage's
//! outcome.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::provider::DeletedRecord;

/// A raw CRM object as HubSpot sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawObject {
    pub id: String,
    #[serde(default)]
    pub properties: HashMap<String, Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub associations: Option<HashMap<String, AssociationList>>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub archived_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AssociationList {
    #[serde(default)]
    pub results: Vec<AssociationRef>,
}

#[derive(Debug, Deserialize)]
pub struct AssociationRef {
    pub id: String,
}

impl RawObject {
    /// A property as a string (HubSpot sends strings or null; numbers are tolerated).
    pub fn prop(&self, name: &str) -> Option<String> {
        match self.properties.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub(super) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.prop(name).map(|s| parse_time(&s)).transpose()
    }

    pub(super) fn modified(&self, prop: &str) -> Result<DateTime<Utc>, String> {
        if let Some(t) = self.time(prop)? {
            return Ok(t);
        }
        match &self.updated_at {
            Some(u) => parse_time(u),
            None => Err(format!(
                "object {} has neither {prop} nor updatedAt",
                self.id
            )),
        }
    }

    pub(super) fn company_ids(&self) -> Vec<String> {
        self.associations
            .as_ref()
            .and_then(|a| a.get("companies"))
            .map(|l| l.results.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default()
    }
}

/// An entry of the archived list: it must say it is archived, and when.
pub(super) fn archived_record(o: RawObject) -> Result<DeletedRecord, String> {
    if !o.archived {
        return Err(format!(
            "object {} in an archived=true list is not marked archived",
            o.id
        ));
    }
    let at = o
        .archived_at
        .as_deref()
        .ok_or_else(|| format!("archived object {} has no archivedAt", o.id))?;
    Ok(DeletedRecord {
        deleted_at: parse_time(at)?,
        id: o.id,
    })
}

/// HubSpot datetimes: RFC 3339, or epoch milliseconds.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("bad epoch millis {s}"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("bad datetime {s:?}: {e}"))
}

/// A CRM object type the client can list and search.
pub trait HubspotObject: Sized + Send {
    /// Path segment: `companies`, `contacts`, `deals`.
    const PATH: &'static str;
    const PROPERTIES: &'static [&'static str];
    /// The last-modified property searches filter and sort on.
    const MODIFIED: &'static str;
    /// Whether records carry company associations (fetched separately after a search).
    const COMPANY_ASSOCIATIONS: bool;
    fn from_raw(raw: RawObject) -> Result<Self, String>;
    fn id(&self) -> &str;
    fn modified_at(&self) -> DateTime<Utc>;
    fn set_company_ids(&mut self, _ids: Vec<String>) {}
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Company {
    pub id: String,
    pub name: Option<String>,
    /// HubSpot's `domain` property (host, as HubSpot derived it).
    pub domain: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: DateTime<Utc>,
}

impl HubspotObject for Company {
    const PATH: &'static str = "companies";
    const PROPERTIES: &'static [&'static str] = &[
        "name",
        "domain",
        "website",
        "country",
        "createdate",
        "hs_lastmodifieddate",
    ];
    const MODIFIED: &'static str = "hs_lastmodifieddate";
    const COMPANY_ASSOCIATIONS: bool = false;
    fn from_raw(r: RawObject) -> Result<Self, String> {
        Ok(Company {
            name: r.prop("name"),
            domain: r.prop("domain"),
            website: r.prop("website"),
            country: r.prop("country"),
            created_at: r.time("createdate")?,
            modified_at: r.modified(Self::MODIFIED)?,
            id: r.id,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    /// Primary company (`associatedcompanyid`).
    pub company_id: Option<String>,
    pub modified_at: DateTime<Utc>,
}

impl HubspotObject for Contact {
    const PATH: &'static str = "contacts";
    const PROPERTIES: &'static [&'static str] = &[
        "email",
        "firstname",
        "lastname",
        "jobtitle",
        "associatedcompanyid",
        "lastmodifieddate",
    ];
    // Contacts' last-modified property is `lastmodifieddate`.
    const MODIFIED: &'static str = "lastmodifieddate";
    const COMPANY_ASSOCIATIONS: bool = false;
    fn from_raw(r: RawObject) -> Result<Self, String> {
        Ok(Contact {
            email: r.prop("email"),
            first_name: r.prop("firstname"),
            last_name: r.prop("lastname"),
            job_title: r.prop("jobtitle"),
            company_id: r.prop("associatedcompanyid"),
            modified_at: r.modified(Self::MODIFIED)?,
            id: r.id,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deal {
    pub id: String,
    pub name: Option<String>,
    /// Decimal string as HubSpot holds it (e.g. `12500.50`).
    pub amount: Option<String>,
    /// `deal_currency_code`; None = the portal's company currency.
    pub currency: Option<String>,
    pub stage_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub company_ids: Vec<String>,
    pub modified_at: DateTime<Utc>,
}

impl HubspotObject for Deal {
    const PATH: &'static str = "deals";
    const PROPERTIES: &'static [&'static str] = &[
        "dealname",
        "amount",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "createdate",
        "closedate",
        "hs_lastmodifieddate",
    ];
    const MODIFIED: &'static str = "hs_lastmodifieddate";
    const COMPANY_ASSOCIATIONS: bool = true;
    fn from_raw(r: RawObject) -> Result<Self, String> {
        Ok(Deal {
            name: r.prop("dealname"),
            amount: r.prop("amount"),
            currency: r.prop("deal_currency_code"),
            stage_id: r.prop("dealstage"),
            pipeline_id: r.prop("pipeline"),
            created_at: r.time("createdate")?,
            closed_at: r.time("closedate")?,
            company_ids: r.company_ids(),
            modified_at: r.modified(Self::MODIFIED)?,
            id: r.id,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at
    }
    fn set_company_ids(&mut self, ids: Vec<String>) {
        self.company_ids = ids;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageOutcome {
    Open,
    Won,
    Lost,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub outcome: StageOutcome,
    pub probability: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub stages: Vec<PipelineStage>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(v: Value) -> RawObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn an_archived_entry_gives_its_id_and_archived_at() {
        let d = archived_record(raw(json!({"id": "7", "properties": {}, "archived": true,
            "archivedAt": "2025-06-10T08:00:00.000Z"})))
        .unwrap();
        assert_eq!(d.id, "7");
        assert_eq!(d.deleted_at.to_rfc3339(), "2025-06-10T08:00:00+00:00");
    }

    #[test]
    fn an_archived_entry_without_archived_at_or_flag_is_a_clear_error() {
        let e = archived_record(raw(json!({"id": "7", "archived": true}))).unwrap_err();
        assert!(e.contains("no archivedAt"), "{e}");
        let e = archived_record(raw(json!({"id": "7", "archived": false,
            "archivedAt": "2025-06-10T08:00:00.000Z"})))
        .unwrap_err();
        assert!(e.contains("not marked archived"), "{e}");
        let e = archived_record(raw(
            json!({"id": "7", "archived": true, "archivedAt": "yesterday"}),
        ))
        .unwrap_err();
        assert!(e.contains("bad datetime"), "{e}");
    }
}
