//! Attribution: turns LinkedIn engagement, matches and CRM deals into the dashboard numbers.
//!
//! - [`domain`]: the rules, pure (no I/O): money, attribution models, the numbers.
//! - [`handlers`]: events in (records, matches, plans), events out (AttributionUpdated).
//! - [`store`]: the PostgreSQL projection and the versioned dashboard sets.
//! - [`api`]: gRPC `rp.api.v1.Attribution`; [`drilldown`] explains deals for it.
//! - [`rebuild`]: the projection again from the event log.

pub mod api;
pub mod config;
pub mod domain;
pub mod drilldown;
pub mod handlers;
pub mod rebuild;
pub mod store;
