//! Plans and their lookback windows live in the platform crate: the connector (how far back to
//! pull) and attribution (which windows to compute) read the same `RP_PLANS`.
pub use rp_platform::plans::{DEFAULT_PLANS, Plans};
