//! Attribution: turns matches, engagement and deals into the dashboard numbers.
pub mod handlers;
