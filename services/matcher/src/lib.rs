//! Company matching for Revenue Proven: pairs LinkedIn companies with CRM accounts.
//!
//! - [`domain`]: the pure matching library (no I/O): web domains, names, the incremental index.
//! - [`cli`]: the batch command line (`matcher match --linkedin L.jsonl --crm C.jsonl`).
//! - [`service`]: the long-running service (NATS, Postgres, gRPC wiring).

pub mod api;
pub mod cli;
pub mod domain;
pub mod handlers;
pub mod service;
pub mod store;
