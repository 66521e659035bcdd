//! Salesforce REST client: SOQL queries with a `SystemModstamp >=` signpost ordered by
//! `SystemModstamp, Id`, paged through `nextRecordsUrl` batches.
//!
//! | file | what |
//! |---|---|
//! | `config` | [`SalesforceConfig`]: instance URL, API version |
//! | `records` | [`Account`], [`Contact`], [`Opportunity`], [`OpportunityStage`] |
//! | `instance` | [`check_instance_url`]: where a token answer may send us |
//! | `soql` | the incremental query ([`incremental_soql`]) |
//! | `client` | [`SalesforceClient`]: queries, deleted records, stages |

mod client;
mod config;
mod instance;
mod records;
mod soql;

pub use client::{DeletedPage, QueryPage, SalesforceClient};
pub use config::SalesforceConfig;
pub use instance::{UNTRUSTED_INSTANCE_URL, check_instance_url};
pub use records::{Account, Contact, Opportunity, OpportunityStage, SalesforceObject};
pub use soql::{incremental_soql, soql_datetime};
