//! Faults of our own infrastructure, for the scenarios that must survive them: the database
//! proxy lives in the platform's test support, shared with the platform's own tests.

pub use rp_platform::testing::DbProxy;
