//! HubSpot CRM v3: objects list / get / search for companies, contacts, deals; deal pipelines.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::Provider;
use crate::data::{Kind, World, amount_string};
use crate::errors::{hubspot, hubspot_validation as bad};
use crate::state::AppState;
use crate::util::{fmt_iso, form_get, parse_form, percent_encode};

type S = State<(AppState, Provider)>;

pub fn parse_kind(t: &str) -> Option<Kind> {
    match t {
        "companies" | "company" | "0-2" => Some(Kind::Company),
        "contacts" | "contact" | "0-1" => Some(Kind::Contact),
        "deals" | "deal" | "0-3" => Some(Kind::Deal),
        _ => None,
    }
}

fn kind_path(k: Kind) -> &'static str {
    match k {
        Kind::Company => "companies",
        Kind::Contact => "contacts",
        Kind::Deal => "deals",
    }
}

fn default_properties(k: Kind) -> &'static [&'static str] {
    match k {
        Kind::Company => &[
            "createdate",
            "domain",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name",
        ],
        Kind::Contact => &[
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname",
        ],
        Kind::Deal => &[
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ],
    }
}

/// One property of one record; `None` = unknown property (not returned at all),
/// `Some(Value::Null)` = known but empty.
fn property(w: &World, k: Kind, idx: u32, name: &str) -> Option<Value> {
    let s = |v: &str| Value::String(v.to_string());
    let opt = |v: &Option<String>| v.as_deref().map(s).unwrap_or(Value::Null);
    let i = idx as usize;
    match k {
        Kind::Company => {
            let c = w.companies.get(i)?;
            Some(match name {
                "name" => s(&c.name),
                "domain" => opt(&c.domain),
                "website" => opt(&c.website),
                "country" => opt(&c.country),
                "hs_lastmodifieddate" => s(&fmt_iso(c.modified_ms)),
                "createdate" => s(&fmt_iso(c.created_ms)),
                "hs_object_id" => s(&c.hs_id.to_string()),
                _ => return None,
            })
        }
        Kind::Contact => {
            let c = w.contacts.get(i)?;
            Some(match name {
                "firstname" => s(&c.first_name),
                "lastname" => s(&c.last_name),
                "email" => opt(&c.email),
                "jobtitle" => opt(&c.title),
                "associatedcompanyid" => c
                    .company
                    .map(|ci| s(&w.hs_id(Kind::Company, ci).to_string()))
                    .unwrap_or(Value::Null),
                "hs_lastmodifieddate" | "lastmodifieddate" => s(&fmt_iso(c.modified_ms)),
                "createdate" => s(&fmt_iso(c.created_ms)),
                "hs_object_id" => s(&c.hs_id.to_string()),
                _ => return None,
            })
        }
        Kind::Deal => {
            let d = w.deals.get(i)?;
            let stage = w.stage_of(d);
            Some(match name {
                "dealname" => s(&d.name),
                "amount" => d
                    .amount_cents
                    .map(|c| s(&amount_string(c)))
                    .unwrap_or(Value::Null),
                "deal_currency_code" => s(&d.currency),
                "dealstage" => stage.map(|st| s(&st.id)).unwrap_or(Value::Null),
                "pipeline" => w
                    .pipelines
                    .get(d.pipeline)
                    .map(|p| s(&p.id))
                    .unwrap_or(Value::Null),
                "createdate" => s(&fmt_iso(d.created_ms)),
                "closedate" => d
                    .close_date
                    .map(|cd| s(&fmt_iso(crate::util::date_ms(cd))))
                    .unwrap_or(Value::Null),
                "hs_lastmodifieddate" => s(&fmt_iso(d.modified_ms)),
                "hs_object_id" => s(&d.hs_id.to_string()),
                _ => return None,
            })
        }
    }
}

fn times(w: &World, k: Kind, idx: u32) -> (i64, i64) {
    let i = idx as usize;
    match k {
        Kind::Company => w.companies.get(i).map(|c| (c.created_ms, c.modified_ms)),
        Kind::Contact => w.contacts.get(i).map(|c| (c.created_ms, c.modified_ms)),
        Kind::Deal => w.deals.get(i).map(|c| (c.created_ms, c.modified_ms)),
    }
    .unwrap_or_default()
}

fn render(w: &World, k: Kind, idx: u32, props: &[String], assoc: bool) -> Value {
    let mut p = Map::new();
    if props.is_empty() {
        for name in default_properties(k) {
            if let Some(v) = property(w, k, idx, name) {
                p.insert((*name).to_string(), v);
            }
        }
    } else {
        for name in props {
            if let Some(v) = property(w, k, idx, name) {
                p.insert(name.clone(), v);
            }
        }
    }
    let (created, modified) = times(w, k, idx);
    let mut o = json!({
        "id": w.hs_id(k, idx).to_string(),
        "properties": p,
        "createdAt": fmt_iso(created),
        "updatedAt": fmt_iso(modified),
        "archived": w.archived(k, idx),
    });
    // An archived record says when it was archived (archiving is its last modification).
    if w.archived(k, idx)
        && let Some(obj) = o.as_object_mut()
    {
        obj.insert("archivedAt".into(), json!(fmt_iso(modified)));
    }
    if assoc {
        let company = match k {
            Kind::Deal => w.deals.get(idx as usize).and_then(|d| d.company),
            Kind::Contact => w.contacts.get(idx as usize).and_then(|c| c.company),
            Kind::Company => None,
        };
        let ty = if k == Kind::Deal {
            "deal_to_company"
        } else {
            "contact_to_company"
        };
        if let (Some(c), Some(obj)) = (company, o.as_object_mut()) {
            obj.insert(
                "associations".into(),
                json!({"companies": {"results": [{"id": w.hs_id(Kind::Company, c).to_string(), "type": ty}]}}),
            );
        }
    }
    o
}

/// Every value of a list parameter, in both of HubSpot's forms: repeated
/// (`properties=a&properties=b`) and comma-separated (`properties=a,b`), or mixed; duplicates
/// dropped, first occurrence kept.
fn list_param(params: &[(String, String)], key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, v) in params.iter().filter(|(k, _)| k == key) {
        for item in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            if !out.iter().any(|o| o == item) {
                out.push(item.to_string());
            }
        }
    }
    out
}

/// The `archived` flag: `true`/`false` in any case (HubSpot parses it as a boolean); absent =
/// false; anything else is HubSpot's 400, never read as false (that would silently list live
/// records for an archived listing).
#[allow(clippy::result_large_err)]
fn archived_param(params: &[(String, String)]) -> Result<bool, Response> {
    match form_get(params, "archived") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(bad(&format!(
            "Invalid value '{v}' for query parameter 'archived': expected true or false"
        ))),
    }
}

/// The parameters of a read (list or one record) the sandbox does not model: refused in
/// HubSpot's shape rather than ignored, since ignoring them would answer something plausible and
/// wrong.
#[allow(clippy::result_large_err)]
fn unmodelled_read_params(params: &[(String, String)]) -> Result<(), Response> {
    if !list_param(params, "propertiesWithHistory").is_empty() {
        return Err(bad(
            "propertiesWithHistory is not supported by the sandbox: it keeps no property history",
        ));
    }
    Ok(())
}

/// Whether the `associations` asked for are the ones the sandbox has (contacts and deals to
/// companies); anything else is refused.
#[allow(clippy::result_large_err)]
fn associations_param(k: Kind, params: &[(String, String)]) -> Result<bool, Response> {
    let mut assoc = false;
    for a in list_param(params, "associations") {
        match a.as_str() {
            "companies" | "company" | "0-2" if k != Kind::Company => assoc = true,
            _ => {
                return Err(bad(&format!(
                    "association {a} is not supported by the sandbox for {}",
                    kind_path(k)
                )));
            }
        }
    }
    Ok(assoc)
}

/// `GET /crm/v3/objects/{type}?limit&after&properties&associations&archived`
pub async fn list(State((s, _)): S, Path(t): Path<String>, RawQuery(q): RawQuery) -> Response {
    let Some(k) = parse_kind(&t) else {
        return bad(&format!("Unable to infer object type from: {t}"));
    };
    let params = parse_form(q.as_deref().unwrap_or(""));
    let limit = match form_get(&params, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return bad("limit must be an integer between 1 and 100"),
    };
    let after = match form_get(&params, "after").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad("after must be a paging cursor returned by a previous call"),
    };
    let archived = match archived_param(&params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = unmodelled_read_params(&params) {
        return r;
    }
    let props = list_param(&params, "properties");
    let assoc = match associations_param(k, &params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let w = s.world();
    let n = w.len(k);
    let base_id = w.hs_id(k, 0);
    let mut i = after.map(|a| a.saturating_sub(base_id)).unwrap_or(0) as usize;
    let mut results = Vec::with_capacity(limit);
    while i < n && results.len() < limit {
        if w.archived(k, i as u32) == archived {
            results.push(render(&w, k, i as u32, &props, assoc));
        }
        i += 1;
    }
    while i < n && w.archived(k, i as u32) != archived {
        i += 1;
    }
    let mut body = json!({"results": results});
    if i < n {
        let next = w.hs_id(k, i as u32).to_string();
        // The request's own query with the next cursor, as HubSpot's link keeps it: a client
        // following it reads the same properties, associations and archived records.
        let mut query: Vec<String> = params
            .iter()
            .filter(|(key, _)| key != "after")
            .map(|(key, v)| format!("{}={}", percent_encode(key), percent_encode(v)))
            .collect();
        if form_get(&params, "limit").is_none() {
            query.push(format!("limit={limit}"));
        }
        query.push(format!("after={next}"));
        let link = format!(
            "{}/crm/v3/objects/{}?{}",
            s.provider_base(Provider::Hubspot),
            kind_path(k),
            query.join("&")
        );
        if let Some(o) = body.as_object_mut() {
            o.insert(
                "paging".into(),
                json!({"next": {"after": next, "link": link}}),
            );
        }
    }
    Json(body).into_response()
}

/// `GET /crm/v3/objects/{type}/{id}`
pub async fn get_one(
    State((s, _)): S,
    Path((t, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(k) = parse_kind(&t) else {
        return bad(&format!("Unable to infer object type from: {t}"));
    };
    let params = parse_form(q.as_deref().unwrap_or(""));
    let archived = match archived_param(&params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = unmodelled_read_params(&params) {
        return r;
    }
    if let Some(idp) = form_get(&params, "idProperty").filter(|p| *p != "hs_object_id") {
        return bad(&format!(
            "idProperty {idp} is not supported by the sandbox: records are read by hs_object_id"
        ));
    }
    let props = list_param(&params, "properties");
    let assoc = match associations_param(k, &params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let w = s.world();
    match id
        .parse::<u64>()
        .ok()
        .and_then(|n| w.find(k, &n.to_string()))
    {
        // `archived=true` reads an archived record; without it only live ones are found.
        Some(idx) if w.archived(k, idx) == archived => {
            Json(render(&w, k, idx, &props, assoc)).into_response()
        }
        _ => hubspot(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<SortSpec>,
    #[serde(default)]
    properties: Vec<String>,
    limit: Option<usize>,
    after: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    value: Option<Value>,
    high_value: Option<Value>,
    #[serde(default)]
    values: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SortSpec {
    Obj {
        #[serde(rename = "propertyName")]
        property_name: String,
        direction: Option<String>,
    },
    Str(String),
}

fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A datetime filter value: epoch millis or RFC 3339.
fn time_value(v: &Value) -> Option<i64> {
    let s = value_str(v);
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    chrono::DateTime::parse_from_rfc3339(&s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn is_modified_prop(k: Kind, p: &str) -> bool {
    p == "hs_lastmodifieddate" || (k == Kind::Contact && p == "lastmodifieddate")
}

/// The filter operators the sandbox implements: all of HubSpot's. Any other (or a lower-case
/// one, which HubSpot does not take either) is HubSpot's 400, never ignored.
const OPERATORS: [&str; 13] = [
    "EQ",
    "NEQ",
    "GT",
    "GTE",
    "LT",
    "LTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// What a filter must carry for its operator; `Err` is the 400's message. A filter missing its
/// value would otherwise match nothing (or everything) without a word.
fn check_filter(f: &Filter) -> Result<(), String> {
    let op = f.operator.as_str();
    if !OPERATORS.contains(&op) {
        return Err(format!(
            "Unsupported operator {op} (expected one of {})",
            OPERATORS.join(", ")
        ));
    }
    let has_value = f.value.as_ref().is_some_and(|v| !v.is_null());
    match op {
        "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => Ok(()),
        "IN" | "NOT_IN" if f.values.is_empty() => Err(format!(
            "{op} filter on {} needs a non-empty values list",
            f.property_name
        )),
        "IN" | "NOT_IN" => Ok(()),
        "BETWEEN" if !has_value || f.high_value.as_ref().is_none_or(Value::is_null) => {
            Err(format!(
                "BETWEEN filter on {} needs value and highValue",
                f.property_name
            ))
        }
        _ if !has_value => Err(format!("{op} filter on {} needs a value", f.property_name)),
        _ => Ok(()),
    }
}

/// HubSpot's CONTAINS_TOKEN: the value is a whole token (word) of the property, case
/// insensitive, or, with `*` wildcards, a pattern matching a token or the whole value
/// (`*@hubspot.com`, `jo*`).
fn contains_token(actual: &str, pattern: &str) -> bool {
    let a = actual.to_lowercase();
    let p = pattern.trim().to_lowercase();
    let mut tokens = a
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty());
    if p.contains('*') {
        glob(&p, &a) || tokens.any(|t| glob(&p, t))
    } else {
        a == p || tokens.any(|t| t == p)
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return text == pattern;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Compare a record's property to a filter. Numbers and datetimes compare numerically.
fn matches(w: &World, k: Kind, idx: u32, f: &Filter) -> bool {
    let actual = property(w, k, idx, &f.property_name).unwrap_or(Value::Null);
    let actual = match actual {
        Value::String(s) => Some(s),
        _ => None,
    };
    let numeric = |s: &str| -> Option<f64> {
        s.parse::<f64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.timestamp_millis() as f64)
        })
    };
    let cmp = |a: &str, b: &Value| -> Option<std::cmp::Ordering> {
        let b = value_str(b);
        match (numeric(a), numeric(&b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        }
    };
    use std::cmp::Ordering::*;
    match f.operator.as_str() {
        "HAS_PROPERTY" => actual.is_some(),
        "NOT_HAS_PROPERTY" => actual.is_none(),
        op => {
            // A record without the property is "not equal", "not in" and "without the token".
            let Some(a) = actual else {
                return matches!(op, "NEQ" | "NOT_IN" | "NOT_CONTAINS_TOKEN");
            };
            let v = f.value.as_ref();
            match op {
                "EQ" => v.and_then(|v| cmp(&a, v)) == Some(Equal),
                "NEQ" => v.and_then(|v| cmp(&a, v)) != Some(Equal),
                "GT" => v.and_then(|v| cmp(&a, v)) == Some(Greater),
                "GTE" => matches!(v.and_then(|v| cmp(&a, v)), Some(Greater | Equal)),
                "LT" => v.and_then(|v| cmp(&a, v)) == Some(Less),
                "LTE" => matches!(v.and_then(|v| cmp(&a, v)), Some(Less | Equal)),
                "BETWEEN" => {
                    matches!(v.and_then(|v| cmp(&a, v)), Some(Greater | Equal))
                        && matches!(
                            f.high_value.as_ref().and_then(|h| cmp(&a, h)),
                            Some(Less | Equal)
                        )
                }
                "IN" => f.values.iter().any(|v| cmp(&a, v) == Some(Equal)),
                "NOT_IN" => !f.values.iter().any(|v| cmp(&a, v) == Some(Equal)),
                "CONTAINS_TOKEN" => v.is_some_and(|v| contains_token(&a, &value_str(v))),
                "NOT_CONTAINS_TOKEN" => !v.is_some_and(|v| contains_token(&a, &value_str(v))),
                // check_filter refused every other operator before any record was read.
                _ => false,
            }
        }
    }
}

/// `POST /crm/v3/objects/{type}/search`
pub async fn search(State((s, _)): S, Path(t): Path<String>, body: String) -> Response {
    let Some(k) = parse_kind(&t) else {
        return bad(&format!("Unable to infer object type from: {t}"));
    };
    let req: SearchBody = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return bad(&format!("Invalid input JSON on line {}: {e}", e.line())),
    };
    let limit = req.limit.unwrap_or(10);
    if !(1..=200).contains(&limit) {
        return bad("limit must be between 1 and 200");
    }
    let after = match &req.after {
        None | Some(Value::Null) => 0,
        Some(v) => match value_str(v).parse::<usize>() {
            Ok(n) => n,
            Err(_) => return bad("after must be a non-negative integer offset"),
        },
    };
    let cap = s.config.hubspot_search_cap;
    if after >= cap {
        return bad(&format!(
            "Paging past {cap} results is not supported by the search API. Narrow the search with filters."
        ));
    }
    if req.filter_groups.len() > 5 {
        return bad("At most 5 filterGroups are allowed");
    }
    for g in &req.filter_groups {
        if g.filters.len() > 6 {
            return bad("At most 6 filters per filterGroup are allowed");
        }
        for f in &g.filters {
            if let Err(m) = check_filter(f) {
                return bad(&m);
            }
            if is_modified_prop(k, &f.property_name)
                && matches!(
                    f.operator.as_str(),
                    "EQ" | "GT" | "GTE" | "LT" | "LTE" | "BETWEEN"
                )
                && f.value.as_ref().and_then(time_value).is_none()
            {
                return bad(&format!(
                    "{} filter value must be epoch milliseconds or an ISO 8601 datetime",
                    f.property_name
                ));
            }
        }
    }
    // Sort: by modified (index order) unless another property is named.
    let (sort_prop, descending) = match req.sorts.first() {
        None => ("hs_lastmodifieddate".to_string(), false),
        Some(SortSpec::Obj {
            property_name,
            direction,
        }) => (
            property_name.clone(),
            direction.as_deref() == Some("DESCENDING"),
        ),
        Some(SortSpec::Str(s)) => match s.strip_prefix('-') {
            Some(p) => (p.to_string(), true),
            None => (s.clone(), false),
        },
    };
    let w = s.world();
    let index = w.mod_index(k);
    // Narrow by modified-time bounds when there is exactly one group (groups are ORed: the
    // first group's bounds say nothing about the others' records).
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    let mut simple = req.filter_groups.len() <= 1;
    if let (Some(g), true) = (req.filter_groups.first(), req.filter_groups.len() == 1) {
        for f in &g.filters {
            let v = f.value.as_ref().and_then(time_value);
            match (
                is_modified_prop(k, &f.property_name),
                f.operator.as_str(),
                v,
            ) {
                (true, "GTE", Some(v)) => lo = lo.max(v),
                (true, "GT", Some(v)) => lo = lo.max(v.saturating_add(1)),
                (true, "LT", Some(v)) => hi = hi.min(v),
                (true, "LTE", Some(v)) => hi = hi.min(v.saturating_add(1)),
                (true, "EQ", Some(v)) => {
                    lo = lo.max(v);
                    hi = hi.min(v.saturating_add(1));
                }
                _ => simple = false,
            }
        }
    }
    let range = index.range(lo, hi);
    let slice = &index.0[range];
    let by_modified = is_modified_prop(k, &sort_prop);
    let page: Vec<u32>;
    let total: usize;
    if simple && by_modified {
        total = slice.len();
        let it: Box<dyn Iterator<Item = &(i64, u32)>> = if descending {
            Box::new(slice.iter().rev())
        } else {
            Box::new(slice.iter())
        };
        page = it.skip(after).take(limit).map(|e| e.1).collect();
    } else {
        let mut hits: Vec<u32> = slice
            .iter()
            .map(|e| e.1)
            .filter(|&idx| {
                req.filter_groups.is_empty()
                    || req
                        .filter_groups
                        .iter()
                        .any(|g| g.filters.iter().all(|f| matches(&w, k, idx, f)))
            })
            .collect();
        if !by_modified {
            let key = |idx: u32| property(&w, k, idx, &sort_prop).map(|v| value_str(&v));
            if sort_prop == "hs_object_id" {
                hits.sort_by_key(|&i| w.hs_id(k, i));
            } else {
                hits.sort_by_key(|&i| key(i));
            }
        }
        if descending {
            hits.reverse();
        }
        total = hits.len();
        page = hits.into_iter().skip(after).take(limit).collect();
    }
    let mut props = req.properties.clone();
    for always in ["hs_object_id", "createdate", "hs_lastmodifieddate"] {
        if !props.iter().any(|p| p == always) {
            props.push(always.to_string());
        }
    }
    let results: Vec<Value> = page
        .iter()
        .map(|&idx| render(&w, k, idx, &props, false))
        .collect();
    drop(w);
    edit_during_search(&s, k, &page);
    let mut body = json!({"total": total, "results": results});
    let next = after + page.len();
    if next < total
        && let Some(o) = body.as_object_mut()
    {
        o.insert(
            "paging".into(),
            json!({"next": {"after": next.to_string()}}),
        );
    }
    Json(body).into_response()
}

/// The admin fault [`crate::state::EditDuringSearch`]: after the configured page of a search has
/// been served, its first record and the `count - 1` after it in the modified order are edited,
/// all in the same millisecond (their modified time becomes now).
fn edit_during_search(s: &AppState, k: Kind, page: &[u32]) {
    let edit: Vec<u32> = {
        let mut c = s.controls(Provider::Hubspot);
        let Some(f) = c.edit_during_search.as_mut() else {
            return;
        };
        if parse_kind(&f.object) != Some(k) {
            return;
        }
        f.served += 1;
        if f.served < f.after_page {
            return;
        }
        let n = f.count as usize;
        c.edit_during_search = None;
        // The page's first record and the ones after it in the modified order.
        let Some(&first) = page.first() else {
            return;
        };
        let w = s.world();
        let order = &w.mod_index(k).0;
        let start = order.iter().position(|e| e.1 == first).unwrap_or(0);
        order[start..].iter().take(n).map(|e| e.1).collect()
    };
    let now = s.clock.now_ms();
    let mut w = s.world_mut();
    for idx in edit {
        w.set_modified(k, idx, now);
    }
}

/// `GET /crm/v3/pipelines/{objectType}`
pub async fn pipelines(State((s, _)): S, Path(t): Path<String>) -> Response {
    match t.as_str() {
        "deals" | "deal" | "0-3" => {}
        "tickets" | "0-5" | "companies" | "contacts" => {
            return Json(json!({"results": []})).into_response();
        }
        other => return bad(&format!("Unable to infer object type from: {other}")),
    }
    let w = s.world();
    let created = fmt_iso(crate::util::date_ms(w.anchor) - 400 * 86_400_000);
    let results: Vec<Value> = w
        .pipelines
        .iter()
        .map(|p| {
            let stages: Vec<Value> = p
                .stages
                .iter()
                .map(|st| {
                    json!({
                        "id": st.id,
                        "label": st.label,
                        "displayOrder": st.display_order,
                        "metadata": {
                            "isClosed": if st.closed { "true" } else { "false" },
                            "probability": format!("{:.1}", st.probability),
                        },
                        "createdAt": created,
                        "updatedAt": created,
                        "archived": false,
                    })
                })
                .collect();
            json!({
                "id": p.id,
                "label": p.label,
                "displayOrder": p.display_order,
                "stages": stages,
                "createdAt": created,
                "updatedAt": created,
                "archived": false,
            })
        })
        .collect();
    Json(json!({"results": results})).into_response()
}

#[derive(Debug, Deserialize)]
struct BatchInputs {
    inputs: Vec<BatchId>,
}

#[derive(Debug, Deserialize)]
struct BatchId {
    id: Value,
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read` (contacts or deals to companies).
pub async fn associations_batch(
    State((s, _)): S,
    Path((from, to)): Path<(String, String)>,
    body: String,
) -> Response {
    let (Some(k), Some(Kind::Company)) = (parse_kind(&from), parse_kind(&to)) else {
        return bad(&format!(
            "the sandbox reads associations from contacts or deals to companies, not {from} to {to}"
        ));
    };
    if k == Kind::Company {
        return bad("the sandbox has no company-to-company associations");
    }
    let req: BatchInputs = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return bad(&format!("Invalid input JSON: {e}")),
    };
    if req.inputs.len() > 1000 {
        return bad("At most 1000 inputs are allowed");
    }
    let w = s.world();
    let now = fmt_iso(s.clock.now_ms());
    let type_id = if k == Kind::Deal { 5 } else { 1 };
    let from_type = if k == Kind::Deal { "deal" } else { "contact" };
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &req.inputs {
        let id = value_str(&input.id);
        let idx = id
            .parse::<u64>()
            .ok()
            .and_then(|n| w.find(k, &n.to_string()))
            .filter(|&i| !w.archived(k, i));
        let company = idx.and_then(|i| match k {
            Kind::Deal => w.deals[i as usize].company,
            Kind::Contact => w.contacts[i as usize].company,
            Kind::Company => None,
        });
        match company {
            Some(c) => results.push(json!({
                "from": {"id": id},
                "to": [{
                    "toObjectId": w.hs_id(Kind::Company, c),
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": "Primary"}],
                }],
            })),
            // HubSpot's per-input error, word for word; it answers an id that does not exist
            // (or is archived) the same way as one without a company.
            None => errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No company is associated with {from_type} {id}."),
                "context": {
                    "fromObjectId": [id],
                    "fromObjectType": [from_type],
                    "toObjectType": ["company"],
                },
            })),
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut body =
        json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    if !errors.is_empty()
        && let Some(o) = body.as_object_mut()
    {
        o.insert("numErrors".into(), errors.len().into());
        o.insert("errors".into(), Value::Array(errors));
    }
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_token_matches_words_and_wildcards_not_substrings() {
        assert!(contains_token("Blue Ridge Analytics GmbH", "ridge"));
        assert!(contains_token("Blue Ridge Analytics GmbH", "RIDGE"));
        assert!(!contains_token("Blue Ridge Analytics GmbH", "rid"));
        assert!(contains_token("Blue Ridge Analytics GmbH", "rid*"));
        assert!(contains_token("jane.doe@hubspot.com", "*@hubspot.com"));
        assert!(contains_token("jane.doe@hubspot.com", "hubspot"));
        assert!(!contains_token("jane.doe@hubspot.com", "*@example.com"));
        assert!(contains_token("a-b", "a*b"));
        assert!(contains_token("x", "*"));
        assert!(!contains_token("", "x"));
    }
}
