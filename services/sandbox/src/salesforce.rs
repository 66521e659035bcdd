//! Salesforce REST: `query` (SOQL subset) and `query/<locator>` batches of 2,000.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::config::Provider;
use crate::data::{Kind, World, amount_string};
use crate::errors::salesforce as sf_error;
use crate::soql::{self, Field, OrderKey, Query, SfObject, SoqlError};
use crate::state::{AppState, SfCursor};
use crate::util::{date_ms, fmt_sf, form_get, parse_form};

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

fn stage_modstamp(w: &World) -> i64 {
    date_ms(w.anchor) - 400 * 86_400_000
}

/// Select the rows of a query, in order.
fn select(w: &World, q: &Query) -> Vec<u32> {
    let mut rows: Vec<u32> = match kind_of(q.object) {
        Some(k) => {
            let idx = w.mod_index(k);
            idx.0[idx.range(q.lo, q.hi)].iter().map(|e| e.1).collect()
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
    // Rows come ordered by (SystemModstamp, Id). Re-sort only for other orders.
    let natural = q.order.is_empty()
        || q.order == [(OrderKey::SystemModstamp, false)]
        || q.order == [(OrderKey::SystemModstamp, false), (OrderKey::Id, false)];
    if !natural {
        let modstamp = |i: u32| -> i64 {
            match q.object {
                SfObject::Account => w.companies[i as usize].modified_ms,
                SfObject::Contact => w.contacts[i as usize].modified_ms,
                SfObject::Opportunity => w.deals[i as usize].modified_ms,
                SfObject::OpportunityStage => 0,
            }
        };
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

fn record(w: &World, version: &str, object: SfObject, i: u32, fields: &[Field]) -> Value {
    let idx = i as usize;
    let s = |v: &str| Value::String(v.to_string());
    let opt = |v: &Option<String>| v.as_deref().map(s).unwrap_or(Value::Null);
    let mut o = Map::new();
    let id: String = match object {
        SfObject::Account => w.companies.get(idx).map(|c| c.sf_id.clone()),
        SfObject::Contact => w.contacts.get(idx).map(|c| c.sf_id.clone()),
        SfObject::Opportunity => w.deals.get(idx).map(|c| c.sf_id.clone()),
        SfObject::OpportunityStage => w.sf_stages.get(idx).map(|c| c.id.clone()),
    }
    .unwrap_or_default();
    o.insert(
        "attributes".into(),
        json!({"type": object.name(), "url": format!("/services/data/{version}/sobjects/{}/{id}", object.name())}),
    );
    let account_id = |c: Option<u32>| {
        c.and_then(|c| w.companies.get(c as usize))
            .map(|a| s(&a.sf_id))
            .unwrap_or(Value::Null)
    };
    for &f in fields {
        let v = match object {
            SfObject::Account => {
                let Some(c) = w.companies.get(idx) else {
                    continue;
                };
                match f {
                    "Id" => s(&c.sf_id),
                    "Name" => s(&c.name),
                    "Website" => opt(&c.website),
                    "BillingCountry" => opt(&c.country),
                    "CreatedDate" => s(&fmt_sf(c.created_ms)),
                    "LastModifiedDate" | "SystemModstamp" => s(&fmt_sf(c.modified_ms)),
                    "IsDeleted" => Value::Bool(c.archived),
                    _ => Value::Null,
                }
            }
            SfObject::Contact => {
                let Some(c) = w.contacts.get(idx) else {
                    continue;
                };
                match f {
                    "Id" => s(&c.sf_id),
                    "FirstName" => s(&c.first_name),
                    "LastName" => s(&c.last_name),
                    "Email" => opt(&c.email),
                    "Title" => opt(&c.title),
                    "AccountId" => account_id(c.company),
                    "CreatedDate" => s(&fmt_sf(c.created_ms)),
                    "LastModifiedDate" | "SystemModstamp" => s(&fmt_sf(c.modified_ms)),
                    "IsDeleted" => Value::Bool(c.archived),
                    _ => Value::Null,
                }
            }
            SfObject::Opportunity => {
                let Some(d) = w.deals.get(idx) else {
                    continue;
                };
                let stage = w.stage_of(d);
                match f {
                    "Id" => s(&d.sf_id),
                    "Name" => s(&d.name),
                    "AccountId" => account_id(d.company),
                    "Amount" => d
                        .amount_cents
                        .and_then(|c| amount_string(c).parse::<f64>().ok())
                        .map(Value::from)
                        .unwrap_or(Value::Null),
                    "CurrencyIsoCode" => s(&d.currency),
                    "StageName" => stage.map(|st| s(&st.label)).unwrap_or(Value::Null),
                    "CloseDate" => d
                        .close_date
                        .map(|cd| s(&cd.to_string()))
                        .unwrap_or(Value::Null),
                    "CreatedDate" => s(&fmt_sf(d.created_ms)),
                    "IsClosed" => Value::Bool(stage.is_some_and(|st| st.closed)),
                    "IsWon" => {
                        Value::Bool(stage.is_some_and(|st| st.closed && st.probability >= 1.0))
                    }
                    "LastModifiedDate" | "SystemModstamp" => s(&fmt_sf(d.modified_ms)),
                    "IsDeleted" => Value::Bool(d.archived),
                    _ => Value::Null,
                }
            }
            SfObject::OpportunityStage => {
                let Some(st) = w.sf_stages.get(idx) else {
                    continue;
                };
                match f {
                    "Id" => s(&st.id),
                    "ApiName" => s(&st.api_name),
                    "MasterLabel" => s(&st.label),
                    "IsClosed" => Value::Bool(st.closed),
                    "IsWon" => Value::Bool(st.won),
                    "SortOrder" => Value::from(st.sort_order),
                    "DefaultProbability" => Value::from(st.probability),
                    "IsActive" => Value::Bool(true),
                    "SystemModstamp" => s(&fmt_sf(stage_modstamp(w))),
                    _ => Value::Null,
                }
            }
        };
        o.insert(f.to_string(), v);
    }
    Value::Object(o)
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
    let records: Vec<Value> = cursor.rows[offset.min(total)..end]
        .iter()
        .map(|&i| record(&w, version, cursor.object, i, &cursor.fields))
        .collect();
    let done = end >= total;
    let mut body = json!({"totalSize": total, "done": done, "records": records});
    if !done && let Some(o) = body.as_object_mut() {
        o.insert(
            "nextRecordsUrl".into(),
            Value::String(format!("/services/data/{version}/query/{cursor_id}-{end}")),
        );
    }
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
    batch(&s, &version, &id, &cursor, 0)
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
