//! The connector's pure types and rules: identifiers parsed once at the edge, providers and
//! connection states, incremental checkpoints, lookback plans, batching and failure
//! classification. No I/O here; everything is unit-tested.

pub mod batch;
pub mod checkpoint;
pub mod failure;
pub mod oauth_state;
pub mod plans;
pub mod provider;

use std::str::FromStr;

use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1 as ev;

pub use rp_platform::ids::{IntegrationId, SyncRunId};
pub use rp_platform::provider::Provider;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// An authorization was started but never completed.
    Pending,
    Connected,
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Pending => "pending",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }

    pub fn to_api(self) -> api::ConnectionStatus {
        match self {
            ConnectionStatus::Pending => api::ConnectionStatus::Pending,
            ConnectionStatus::Connected => api::ConnectionStatus::Connected,
            ConnectionStatus::Disconnected => api::ConnectionStatus::Disconnected,
        }
    }
}

impl FromStr for ConnectionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(ConnectionStatus::Pending),
            "connected" => Ok(ConnectionStatus::Connected),
            "disconnected" => Ok(ConnectionStatus::Disconnected),
            other => Err(format!("unknown connection status {other:?}")),
        }
    }
}

/// Why syncing of a connection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    UserRequested,
    AuthorizationRevoked,
    AuthorizationExpired,
    /// Refused, and nothing we know tells whether it expired or was revoked.
    AuthorizationExpiredOrRevoked,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::UserRequested => "user_requested",
            DisconnectReason::AuthorizationRevoked => "revoked",
            DisconnectReason::AuthorizationExpired => "expired",
            DisconnectReason::AuthorizationExpiredOrRevoked => "expired_or_revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user_requested" => Some(DisconnectReason::UserRequested),
            "revoked" => Some(DisconnectReason::AuthorizationRevoked),
            "expired" => Some(DisconnectReason::AuthorizationExpired),
            "expired_or_revoked" => Some(DisconnectReason::AuthorizationExpiredOrRevoked),
            _ => None,
        }
    }

    pub fn to_event(self) -> ev::DisconnectReason {
        match self {
            DisconnectReason::UserRequested => ev::DisconnectReason::UserRequested,
            DisconnectReason::AuthorizationRevoked => ev::DisconnectReason::AuthorizationRevoked,
            DisconnectReason::AuthorizationExpired => ev::DisconnectReason::AuthorizationExpired,
            DisconnectReason::AuthorizationExpiredOrRevoked => {
                ev::DisconnectReason::AuthorizationExpiredOrRevoked
            }
        }
    }

    pub fn to_api(self) -> api::DisconnectReason {
        match self {
            DisconnectReason::UserRequested => api::DisconnectReason::UserRequested,
            DisconnectReason::AuthorizationRevoked => api::DisconnectReason::AuthorizationRevoked,
            DisconnectReason::AuthorizationExpired => api::DisconnectReason::AuthorizationExpired,
            DisconnectReason::AuthorizationExpiredOrRevoked => {
                api::DisconnectReason::AuthorizationExpiredOrRevoked
            }
        }
    }
}

/// The object types the connector pulls, with the name their checkpoint stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    LinkedinEngagement,
    LinkedinOrganization,
    CrmCompany,
    CrmContact,
    CrmDeal,
    CrmPipeline,
}

impl ObjectKind {
    pub fn slug(self) -> &'static str {
        match self {
            ObjectKind::LinkedinEngagement => "linkedin_engagement",
            ObjectKind::LinkedinOrganization => "linkedin_organization",
            ObjectKind::CrmCompany => "crm_company",
            ObjectKind::CrmContact => "crm_contact",
            ObjectKind::CrmDeal => "crm_deal",
            ObjectKind::CrmPipeline => "crm_pipeline",
        }
    }

    pub fn to_event(self) -> ev::ObjectType {
        match self {
            ObjectKind::LinkedinEngagement => ev::ObjectType::LinkedinEngagement,
            ObjectKind::LinkedinOrganization => ev::ObjectType::LinkedinOrganization,
            ObjectKind::CrmCompany => ev::ObjectType::CrmCompany,
            ObjectKind::CrmContact => ev::ObjectType::CrmContact,
            ObjectKind::CrmDeal => ev::ObjectType::CrmDeal,
            ObjectKind::CrmPipeline => ev::ObjectType::CrmPipeline,
        }
    }
}
