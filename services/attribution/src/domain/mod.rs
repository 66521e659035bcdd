//! The attribution rules, pure: no I/O and no clock. The handlers load a workspace's projection
//! into [`metrics::Inputs`], and [`metrics::compute`] turns it into the dashboard numbers.

pub mod credit;
pub mod ids;
pub mod metrics;
pub mod money;

pub use credit::{HalfLife, Model};
pub use ids::{CampaignId, CompanyId, DealId, OrgId};
pub use metrics::{Metric, StageKind};
pub use money::{Amount, Currency};
