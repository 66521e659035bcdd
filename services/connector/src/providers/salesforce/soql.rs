//! The SOQL the client sends: the incremental query and its datetime literals.

use chrono::{DateTime, SecondsFormat, Utc};

use super::records::SalesforceObject;

/// SOQL datetime literal (UTC, milliseconds).
pub fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The incremental query: everything with `SystemModstamp >= since`, in a stable order.
pub fn incremental_soql<T: SalesforceObject>(since: Option<DateTime<Utc>>) -> String {
    let mut q = format!("SELECT {} FROM {}", T::FIELDS.join(", "), T::NAME);
    if let Some(s) = since {
        q.push_str(&format!(" WHERE SystemModstamp >= {}", soql_datetime(s)));
    }
    q.push_str(" ORDER BY SystemModstamp ASC, Id ASC");
    q
}
