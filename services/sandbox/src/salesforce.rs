//! Salesforce REST: `query` (SOQL subset) and `query/<locator>` batches of 2,000.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::config::Provider;
use crate::data::{Kind, World, amount_string};
use crate::errors::salesforce as sf_error;
use crate::soql::{self, Field, OrderKey, Query, SfObject, SoqlError};
use crate::state::{AppState, SfCursor};
use crate::util::{date_ms, form_get, parse_form};

type S = State<(AppState, Provider)>;

const MAX_CURSORS: usize = 32;

fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b == "0")
}

fn kind_of(o: SfObject) -> Option<Kind> {
    match o {
        SfObject::Account => Some(Kind::Company),
        SfObject::Contact => Some(Kind::Contact),
        SfObject::Opportunity => Some(Kind::Deal),
        SfObject::OpportunityStage => None,
    }
}

/// Salesforce datetimes have whole seconds (`SystemModstamp`, `LastModifiedDate`, `CreatedDate`,
/// `deletedDate` all end in `.000`): the world's millisecond times, cut to their second.
pub fn whole_second(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

/// The first millisecond whose whole second is at or after `ms`: `whole_second(m) >= ms` iff
/// `m >= ceil_second(ms)`, so a bound on the seconds Salesforce shows is a bound on the world's
/// milliseconds.
fn ceil_second(ms: i64) -> i64 {
    if ms == i64::MIN || ms == i64::MAX {
        return ms;
    }
    whole_second(ms + 999)
}

fn stage_modstamp(w: &World) -> i64 {
    date_ms(w.anchor) - 400 * 86_400_000
}

/// Select the rows of a query, in order.
fn select(w: &World, q: &Query) -> Vec<u32> {
    let mut rows: Vec<u32> = match kind_of(q.object) {
        Some(k) => {
            // `lo <= SystemModstamp < hi` on whole seconds.
            let idx = w.mod_index(k);
            idx.0[idx.range(ceil_second(q.lo), ceil_second(q.hi))]
                .iter()
                .map(|e| e.1)
                .collect()
        }
        None => {
            let ms = stage_modstamp(w);
            if q.lo <= ms && ms < q.hi {
                (0..w.sf_stages.len() as u32).collect()
            } else {
                Vec::new()
            }
        }
    };
    // Rows come ordered by the world's milliseconds; Salesforce orders by the whole-second
    // SystemModstamp, then Id.
    let modstamp = |i: u32| -> i64 {
        whole_second(match q.object {
            SfObject::Account => w.companies[i as usize].modified_ms,
            SfObject::Contact => w.contacts[i as usize].modified_ms,
            SfObject::Opportunity => w.deals[i as usize].modified_ms,
            SfObject::OpportunityStage => 0,
        })
    };
    let natural = q.order.is_empty()
        || q.order == [(OrderKey::SystemModstamp, false)]
        || q.order == [(OrderKey::SystemModstamp, false), (OrderKey::Id, false)];
    if natural {
        rows.sort_by_key(|&i| (modstamp(i), i));
    } else {
        let order = q.order.clone();
        rows.sort_by(|&a, &b| {
            for (key, desc) in &order {
                let c = match key {
                    OrderKey::SystemModstamp => modstamp(a).cmp(&modstamp(b)),
                    OrderKey::Id => a.cmp(&b),
                };
                let c = if *desc { c.reverse() } else { c };
                if c != std::cmp::Ordering::Equal {
                    return c;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    if let Some(n) = q.limit {
        rows.truncate(n);
    }
    rows
}

/// One field value, borrowed from the world where possible.
enum FieldVal<'a> {
    Str(&'a str),
    Owned(String),
    Time(i64),
    Bool(bool),
    Num(f64),
    Int(i64),
    Null,
}

impl Serialize for FieldVal<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldVal::Str(v) => ser.serialize_str(v),
            FieldVal::Owned(v) => ser.serialize_str(v),
            FieldVal::Time(ms) => ser.collect_str(
                &crate::util::to_datetime(whole_second(*ms)).format(crate::util::SF_TIME_FORMAT),
            ),
            FieldVal::Bool(b) => ser.serialize_bool(*b),
            FieldVal::Num(n) => ser.serialize_f64(*n),
            FieldVal::Int(n) => ser.serialize_i64(*n),
            FieldVal::Null => ser.serialize_none(),
        }
    }
}

/// A record rendered straight into the response, without an intermediate JSON tree.
struct RecordView<'a> {
    w: &'a World,
    version: &'a str,
    object: SfObject,
    idx: usize,
    fields: &'a [Field],
}

#[derive(Serialize)]
struct Attributes<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    url: String,
}

impl Serialize for RecordView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry(
            "attributes",
            &Attributes {
                ty: self.object.name(),
                url: format!(
                    "/services/data/{}/sobjects/{}/{}",
                    self.version,
                    self.object.name(),
                    self.id()
                ),
            },
        )?;
        for &f in self.fields {
            map.serialize_entry(f, &self.value(f))?;
        }
        map.end()
    }
}

impl<'a> RecordView<'a> {
    fn id(&self) -> &'a str {
        let w = self.w;
        match self.object {
            SfObject::Account => w.companies.get(self.idx).map(|c| c.sf_id.as_str()),
            SfObject::Contact => w.contacts.get(self.idx).map(|c| c.sf_id.as_str()),
            SfObject::Opportunity => w.deals.get(self.idx).map(|c| c.sf_id.as_str()),
            SfObject::OpportunityStage => w.sf_stages.get(self.idx).map(|c| c.id.as_str()),
        }
        .unwrap_or("")
    }

    fn value(&self, f: Field) -> FieldVal<'a> {
        use FieldVal::*;
        let w = self.w;
        let opt = |v: &'a Option<String>| v.as_deref().map(Str).unwrap_or(Null);
        let account_id = |c: Option<u32>| {
            c.and_then(|c| w.companies.get(c as usize))
                .map(|a| Str(a.sf_id.as_str()))
                .unwrap_or(Null)
        };
        match self.object {
            SfObject::Account => {
                let Some(c) = w.companies.get(self.idx) else {
                    return Null;
                };
                match f {
                    "Id" => Str(&c.sf_id),
                    "Name" => Str(&c.name),
                    "Website" => opt(&c.website),
                    "BillingCountry" => opt(&c.country),
                    "CreatedDate" => Time(c.created_ms),
                    "LastModifiedDate" | "SystemModstamp" => Time(c.modified_ms),
                    "IsDeleted" => Bool(c.archived),
                    _ => Null,
                }
            }
            SfObject::Contact => {
                let Some(c) = w.contacts.get(self.idx) else {
                    return Null;
                };
                match f {
                    "Id" => Str(&c.sf_id),
                    "FirstName" => Str(&c.first_name),
                    "LastName" => Str(&c.last_name),
                    "Email" => opt(&c.email),
                    "Title" => opt(&c.title),
                    "AccountId" => account_id(c.company),
                    "CreatedDate" => Time(c.created_ms),
                    "LastModifiedDate" | "SystemModstamp" => Time(c.modified_ms),
                    "IsDeleted" => Bool(c.archived),
                    _ => Null,
                }
            }
            SfObject::Opportunity => {
                let Some(d) = w.deals.get(self.idx) else {
                    return Null;
                };
                let stage = w.stage_of(d);
                match f {
                    "Id" => Str(&d.sf_id),
                    "Name" => Str(&d.name),
                    "AccountId" => account_id(d.company),
                    "Amount" => d
                        .amount_cents
                        .and_then(|c| amount_string(c).parse::<f64>().ok())
                        .map(Num)
                        .unwrap_or(Null),
                    "CurrencyIsoCode" => Str(&d.currency),
                    "StageName" => stage.map(|st| Str(st.label.as_str())).unwrap_or(Null),
                    "CloseDate" => d.close_date.map(|cd| Owned(cd.to_string())).unwrap_or(Null),
                    "CreatedDate" => Time(d.created_ms),
                    "IsClosed" => Bool(stage.is_some_and(|st| st.closed)),
                    "IsWon" => Bool(stage.is_some_and(|st| st.closed && st.probability >= 1.0)),
                    "LastModifiedDate" | "SystemModstamp" => Time(d.modified_ms),
                    "IsDeleted" => Bool(d.archived),
                    _ => Null,
                }
            }
            SfObject::OpportunityStage => {
                let Some(st) = w.sf_stages.get(self.idx) else {
                    return Null;
                };
                match f {
                    "Id" => Str(&st.id),
                    "ApiName" => Str(&st.api_name),
                    "MasterLabel" => Str(&st.label),
                    "IsClosed" => Bool(st.closed),
                    "IsWon" => Bool(st.won),
                    "SortOrder" => Int(i64::from(st.sort_order)),
                    "DefaultProbability" => Num(st.probability),
                    "IsActive" => Bool(true),
                    "SystemModstamp" => Time(stage_modstamp(w)),
                    _ => Null,
                }
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryBatch<'a> {
    total_size: usize,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_records_url: Option<String>,
    records: Vec<RecordView<'a>>,
}

fn batch(
    s: &AppState,
    version: &str,
    cursor_id: &str,
    cursor: &SfCursor,
    offset: usize,
) -> Response {
    let size = s.config.salesforce_batch_size.max(1);
    let total = cursor.rows.len();
    let end = (offset + size).min(total);
    let w = s.world();
    let records: Vec<RecordView<'_>> = cursor.rows[offset.min(total)..end]
        .iter()
        .map(|&i| RecordView {
            w: &w,
            version,
            object: cursor.object,
            idx: i as usize,
            fields: &cursor.fields,
        })
        .collect();
    let done = end >= total;
    let body = QueryBatch {
        total_size: total,
        done,
        next_records_url: (!done)
            .then(|| format!("/services/data/{version}/query/{cursor_id}-{end}")),
        records,
    };
    Json(body).into_response()
}

/// `GET /services/data/{version}/query?q=SOQL`
pub async fn query(
    State((s, _)): S,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !valid_version(&version) {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    }
    let params = parse_form(raw.as_deref().unwrap_or(""));
    let Some(soql) = form_get(&params, "q").filter(|q| !q.trim().is_empty()) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let q = match soql::parse(soql) {
        Ok(q) => q,
        Err(SoqlError::Malformed(m)) => {
            return sf_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &m);
        }
        Err(SoqlError::InvalidField(m)) => {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", &m);
        }
        Err(SoqlError::InvalidType(m)) => {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &m);
        }
    };
    let rows = select(&s.world(), &q);
    let edit_after = q.object;
    let cursor = Arc::new(SfCursor {
        object: q.object,
        fields: q.fields,
        rows,
    });
    let id = {
        let mut cs = s.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cs.next += 1;
        let id = format!("01gDn{:010}", cs.next);
        cs.map.insert(id.clone(), Arc::clone(&cursor));
        cs.order.push_back(id.clone());
        while cs.order.len() > MAX_CURSORS {
            if let Some(old) = cs.order.pop_front() {
                cs.map.remove(&old);
            }
        }
        id
    };
    let resp = batch(&s, &version, &id, &cursor, 0);
    edit_after_query(&s, edit_after);
    resp
}

/// A user saving an Account again within the same second, just after a query read it
/// (`PUT /admin/providers/salesforce/edit-after-query`, one shot).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditAfterQuery {
    /// The Account's Salesforce id.
    pub id: String,
    pub website: String,
}

/// Applies a pending [`EditAfterQuery`] once an Account query was answered: the account's
/// website changes and its modified time moves by a millisecond, inside the whole second its
/// SystemModstamp already shows (Salesforce shows the two versions with the same stamp).
fn edit_after_query(s: &AppState, object: SfObject) {
    if object != SfObject::Account {
        return;
    }
    let Some(e) = s.controls(Provider::Salesforce).sf_edit_after_query.take() else {
        return;
    };
    let mut w = s.world_mut();
    let Some(idx) = w.find(Kind::Company, &e.id) else {
        return;
    };
    let c = &mut w.companies[idx as usize];
    let ms = (c.modified_ms + 1).min(whole_second(c.modified_ms) + 999);
    c.domain = crate::data::domain_property(&e.website);
    c.website = Some(e.website);
    w.set_modified(Kind::Company, idx, ms);
}

/// `GET /services/data/{version}/query/{cursor}-{offset}`
pub async fn query_more(
    State((s, _)): S,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    if !valid_version(&version) {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    }
    let invalid = || {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let cursor = {
        let cs = s.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cs.map.get(id).cloned()
    };
    match cursor {
        Some(c) if offset <= c.rows.len() => batch(&s, &version, id, &c, offset),
        _ => invalid(),
    }
}

/// `GET /services/data`: the versions list.
pub async fn versions(State((s, _)): S) -> Response {
    let _ = &s;
    Json(json!([{"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"}]))
        .into_response()
}

/// Salesforce keeps deleted records this long (the recycle bin); `start` may not be earlier.
const DELETED_RETENTION_MS: i64 = 30 * 86_400_000;

fn parse_replication_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.timestamp_millis())
}

fn sf_time(ms: i64) -> String {
    crate::util::to_datetime(whole_second(ms))
        .format(crate::util::SF_TIME_FORMAT)
        .to_string()
}

/// `GET /services/data/{version}/sobjects/{SObject}/deleted/?start=ISO&end=ISO`: the records
/// of the type deleted in `[start, end]`, as `{deletedRecords: [{id, deletedDate}],
/// earliestDateAvailable, latestDateCovered}`.
pub async fn deleted(
    State((s, _)): S,
    Path((version, sobject)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !valid_version(&version) {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    }
    let (kind, start, end, now) = match replication_request(&s, &sobject, raw.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let earliest = now - DELETED_RETENTION_MS;
    // The deletion index may lag (`PUT /admin/providers/salesforce/deleted-index-lag`): it is
    // complete up to `latestDateCovered` only, and newer deletions are not in it yet.
    let lag = s.controls(Provider::Salesforce).deleted_index_lag_ms;
    let covered = whole_second(end.min(now - lag));
    let w = s.world();
    let mut rows: Vec<(i64, u32)> = (0..w.len(kind) as u32)
        .filter(|&i| w.archived(kind, i))
        .filter_map(|i| {
            let ms = match kind {
                Kind::Company => w.companies.get(i as usize).map(|c| c.modified_ms),
                Kind::Contact => w.contacts.get(i as usize).map(|c| c.modified_ms),
                Kind::Deal => w.deals.get(i as usize).map(|d| d.modified_ms),
            }?;
            let ms = whole_second(ms);
            (start <= ms && ms <= covered).then_some((ms, i))
        })
        .collect();
    rows.sort_unstable();
    let records: Vec<_> = rows
        .into_iter()
        .filter_map(|(ms, i)| {
            let id = match kind {
                Kind::Company => w.companies.get(i as usize).map(|c| c.sf_id.clone()),
                Kind::Contact => w.contacts.get(i as usize).map(|c| c.sf_id.clone()),
                Kind::Deal => w.deals.get(i as usize).map(|d| d.sf_id.clone()),
            }?;
            Some(json!({"id": id, "deletedDate": sf_time(ms)}))
        })
        .collect();
    Json(json!({
        "deletedRecords": records,
        "earliestDateAvailable": sf_time(earliest),
        "latestDateCovered": sf_time(covered),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LagBody {
    seconds: u64,
}

/// `PUT /admin/providers/salesforce/edit-after-query {"id","website"}`: see [`EditAfterQuery`].
pub async fn set_edit_after_query(State(s): State<AppState>, raw: String) -> Response {
    let e: EditAfterQuery = match serde_json::from_str(&raw) {
        Ok(e) => e,
        Err(e) => {
            return admin_error(&format!(
                "invalid JSON body: {e}; expected {{\"id\",\"website\"}}"
            ));
        }
    };
    if s.world().find(Kind::Company, &e.id).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no Account {}", e.id)})),
        )
            .into_response();
    }
    s.controls(Provider::Salesforce).sf_edit_after_query = Some(e.clone());
    Json(json!({"edit_after_query": {"id": e.id, "website": e.website}})).into_response()
}

fn admin_error(m: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response()
}

/// `PUT /admin/providers/salesforce/deleted-index-lag {"seconds":N}`: the deletion index lags
/// `N` seconds behind the clock: `latestDateCovered` is at most `now - N`, and the deletions
/// after it are not listed yet (0 = up to date).
pub async fn deleted_index_lag(State(s): State<AppState>, raw: String) -> Response {
    let b: LagBody = match serde_json::from_str(if raw.trim().is_empty() { "{}" } else { &raw }) {
        Ok(b) => b,
        Err(e) => {
            return admin_error(&format!(
                "invalid JSON body: {e}; expected {{\"seconds\": N}}"
            ));
        }
    };
    let ms = i64::try_from(b.seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    s.controls(Provider::Salesforce).deleted_index_lag_ms = ms;
    Json(json!({"deleted_index_lag_seconds": b.seconds})).into_response()
}

// ---- Describe and getUpdated (served for clients that call them; the connector does not) ----

/// The sObjects the sandbox serves, in describe order.
const SOBJECTS: [crate::soql::SfObject; 4] = [
    crate::soql::SfObject::Account,
    crate::soql::SfObject::Contact,
    crate::soql::SfObject::Opportunity,
    crate::soql::SfObject::OpportunityStage,
];

fn key_prefix(o: crate::soql::SfObject) -> &'static str {
    match o {
        crate::soql::SfObject::Account => "001",
        crate::soql::SfObject::Contact => "003",
        crate::soql::SfObject::Opportunity => "006",
        crate::soql::SfObject::OpportunityStage => "01J",
    }
}

fn sobject_urls(version: &str, name: &str) -> serde_json::Value {
    let base = format!("/services/data/{version}/sobjects/{name}");
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "rowTemplate": format!("{base}/{{ID}}"),
    })
}

fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// `GET /services/data/{version}/sobjects`: describeGlobal, the sObjects this org serves (only
/// the four the sandbox models; a real org lists hundreds).
pub async fn describe_global(Path(version): Path<String>) -> Response {
    if !valid_version(&version) {
        return not_found();
    }
    let sobjects: Vec<_> = SOBJECTS
        .iter()
        .map(|o| {
            json!({
                "name": o.name(), "label": o.name(), "labelPlural": format!("{}s", o.name()),
                "keyPrefix": key_prefix(*o), "custom": false, "queryable": true,
                "retrieveable": true, "replicateable": true, "searchable": true,
                "createable": false, "updateable": false, "deletable": false,
                "urls": sobject_urls(&version, o.name()),
            })
        })
        .collect();
    Json(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})).into_response()
}

/// A field's Salesforce type, from its name (the sandbox's fields follow Salesforce's naming).
fn field_type(name: &str) -> &'static str {
    match name {
        "Id" => "id",
        "CloseDate" => "date",
        "Amount" => "currency",
        "Probability" | "DefaultProbability" => "percent",
        "SortOrder" => "int",
        n if n.starts_with("Is") => "boolean",
        n if n.ends_with("Date") || n.ends_with("Modstamp") => "datetime",
        n if n.ends_with("Id") => "reference",
        _ => "string",
    }
}

/// `GET /services/data/{version}/sobjects/{SObject}/describe`: the fields the sandbox serves.
pub async fn describe(Path((version, sobject)): Path<(String, String)>) -> Response {
    let Some(o) = crate::soql::SfObject::parse(&sobject).filter(|_| valid_version(&version)) else {
        return not_found();
    };
    let fields: Vec<_> = o
        .fields()
        .iter()
        .map(|f| {
            let ty = field_type(f);
            json!({
                "name": f, "label": f, "type": ty, "nillable": *f != "Id",
                "custom": false, "filterable": true, "sortable": ty != "boolean",
                "updateable": false, "createable": false,
            })
        })
        .collect();
    Json(json!({
        "name": o.name(), "label": o.name(), "labelPlural": format!("{}s", o.name()),
        "keyPrefix": key_prefix(o), "custom": false, "queryable": true, "replicateable": true,
        "fields": fields, "urls": sobject_urls(&version, o.name()),
    }))
    .into_response()
}

/// `GET /services/data/{version}/sobjects/{SObject}/updated/?start=ISO&end=ISO`: ids of the
/// live records of the type modified in `[start, end]`, `{ids, latestDateCovered}`; the same
/// date rules as getDeleted.
pub async fn updated(
    State((s, _)): S,
    Path((version, sobject)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !valid_version(&version) {
        return not_found();
    }
    let (kind, start, end, now) = match replication_request(&s, &sobject, raw.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let covered = whole_second(end.min(now));
    let w = s.world();
    let mut rows: Vec<(i64, String)> = (0..w.len(kind) as u32)
        .filter(|&i| !w.archived(kind, i))
        .filter_map(|i| {
            let (ms, id) = match kind {
                Kind::Company => w
                    .companies
                    .get(i as usize)
                    .map(|c| (c.modified_ms, &c.sf_id)),
                Kind::Contact => w
                    .contacts
                    .get(i as usize)
                    .map(|c| (c.modified_ms, &c.sf_id)),
                Kind::Deal => w.deals.get(i as usize).map(|d| (d.modified_ms, &d.sf_id)),
            }?;
            let ms = whole_second(ms);
            (start <= ms && ms <= covered).then(|| (ms, id.clone()))
        })
        .collect();
    rows.sort_unstable();
    let ids: Vec<String> = rows.into_iter().map(|(_, id)| id).collect();
    Json(json!({"ids": ids, "latestDateCovered": sf_time(covered)})).into_response()
}

/// What getDeleted and getUpdated read from a request: the sObject's kind and the window
/// `[start, end]`, checked as Salesforce checks it (ISO 8601 dates, `end` after `start`, `start`
/// no older than the 30 days the index keeps); the sandbox clock's now.
fn replication_request(
    s: &crate::state::AppState,
    sobject: &str,
    raw: Option<&str>,
) -> Result<(Kind, i64, i64, i64), Box<Response>> {
    let kind = match sobject {
        "Account" => Kind::Company,
        "Contact" => Kind::Contact,
        "Opportunity" => Kind::Deal,
        _ => {
            return Err(Box::new(sf_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!(
                    "The requested resource does not exist: sObject type '{sobject}' is not supported."
                ),
            )));
        }
    };
    let params = parse_form(raw.unwrap_or(""));
    let bad = |m: &str| sf_error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", m);
    let Some(start) = form_get(&params, "start").and_then(parse_replication_date) else {
        return Err(Box::new(bad(
            "start: a date-time in ISO 8601 form is required",
        )));
    };
    let Some(end) = form_get(&params, "end").and_then(parse_replication_date) else {
        return Err(Box::new(bad(
            "end: a date-time in ISO 8601 form is required",
        )));
    };
    if end <= start {
        return Err(Box::new(bad("end must be after start")));
    }
    let now = s.clock.now_ms();
    let earliest = now - DELETED_RETENTION_MS;
    if start < earliest {
        return Err(Box::new(bad(&format!(
            "start must not be earlier than {} (deleted records are kept 30 days)",
            sf_time(earliest)
        ))));
    }
    Ok((kind, start, end, now))
}
