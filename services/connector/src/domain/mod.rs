//! The connector's pure types and rules: identifiers parsed once at the edge, providers and
//! connection states, incremental checkpoints, lookback plans, batching and failure
//! classification. No I/O here; everything is unit-tested.

pub mod batch;
pub mod checkpoint;
pub mod failure;
pub mod oauth_state;
pub mod plans;

use std::fmt;
use std::str::FromStr;

use rp_platform::contracts::api::v1 as api;
use rp_platform::contracts::events::v1 as ev;
use uuid::Uuid;

pub use crate::providers::Provider;

/// An integration (connection) id: one per workspace and provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntegrationId(Uuid);

impl IntegrationId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses an integration id; the error says what is wrong, for a user.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("is required (the integration's UUID)".into());
        }
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| format!("must be an integration UUID (got {s:?})"))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// `connection-<id>`: ConnectionConnected / Disconnected / Reconnected.
    pub fn connection_stream(&self) -> String {
        format!("connection-{}", self.0)
    }

    /// `checkpoint-<id>-<object>`: CheckpointAdvanced of one object type.
    pub fn checkpoint_stream(&self, object: ObjectKind) -> String {
        format!("checkpoint-{}-{}", self.0, object.slug())
    }

    /// `checkpoint-<id>-<object>_deletions`: CheckpointAdvanced of one object type's deletions.
    pub fn deletions_checkpoint_stream(&self, object: ObjectKind) -> String {
        format!("checkpoint-{}-{}_deletions", self.0, object.slug())
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A sync run id, as SyncRequested names it (the correlation id of the whole run).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncRunId(String);

impl SyncRunId {
    /// Any non-empty, printable id of at most 100 characters (the scheduler uses UUIDs).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("sync_run_id is empty".into());
        }
        if s.chars().count() > 100 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "sync_run_id {s:?} is not a printable id of at most 100 characters"
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `syncrun-<id>`: the life of the run.
    pub fn run_stream(&self) -> String {
        format!("syncrun-{}", self.0)
    }

    /// `records-<id>`: the run's RecordsPulled batches.
    pub fn records_stream(&self) -> String {
        format!("records-{}", self.0)
    }
}

impl fmt::Display for SyncRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a provider is written in the database and in URLs: `linkedin`, `hubspot`, `salesforce`.
pub fn provider_slug(p: Provider) -> &'static str {
    match p {
        Provider::Linkedin => "linkedin",
        Provider::Hubspot => "hubspot",
        Provider::Salesforce => "salesforce",
    }
}

pub fn parse_provider_slug(s: &str) -> Option<Provider> {
    match s {
        "linkedin" => Some(Provider::Linkedin),
        "hubspot" => Some(Provider::Hubspot),
        "salesforce" => Some(Provider::Salesforce),
        _ => None,
    }
}

pub fn provider_to_event(p: Provider) -> ev::Provider {
    match p {
        Provider::Linkedin => ev::Provider::Linkedin,
        Provider::Hubspot => ev::Provider::Hubspot,
        Provider::Salesforce => ev::Provider::Salesforce,
    }
}

pub fn provider_to_api(p: Provider) -> api::Provider {
    match p {
        Provider::Linkedin => api::Provider::Linkedin,
        Provider::Hubspot => api::Provider::Hubspot,
        Provider::Salesforce => api::Provider::Salesforce,
    }
}

/// The provider an API request names; `None` for UNSPECIFIED or an unknown number.
pub fn provider_from_api(value: i32) -> Option<Provider> {
    match api::Provider::try_from(value).ok()? {
        api::Provider::Linkedin => Some(Provider::Linkedin),
        api::Provider::Hubspot => Some(Provider::Hubspot),
        api::Provider::Salesforce => Some(Provider::Salesforce),
        api::Provider::Unspecified => None,
    }
}

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
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::UserRequested => "user_requested",
            DisconnectReason::AuthorizationRevoked => "revoked",
            DisconnectReason::AuthorizationExpired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user_requested" => Some(DisconnectReason::UserRequested),
            "revoked" => Some(DisconnectReason::AuthorizationRevoked),
            "expired" => Some(DisconnectReason::AuthorizationExpired),
            _ => None,
        }
    }

    pub fn to_event(self) -> ev::DisconnectReason {
        match self {
            DisconnectReason::UserRequested => ev::DisconnectReason::UserRequested,
            DisconnectReason::AuthorizationRevoked => ev::DisconnectReason::AuthorizationRevoked,
            DisconnectReason::AuthorizationExpired => ev::DisconnectReason::AuthorizationExpired,
        }
    }

    pub fn to_api(self) -> api::DisconnectReason {
        match self {
            DisconnectReason::UserRequested => api::DisconnectReason::UserRequested,
            DisconnectReason::AuthorizationRevoked => api::DisconnectReason::AuthorizationRevoked,
            DisconnectReason::AuthorizationExpired => api::DisconnectReason::AuthorizationExpired,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_parsed_once_with_messages_for_people() {
        let id = Uuid::new_v4();
        assert_eq!(
            IntegrationId::parse(&format!(" {id} ")).unwrap().as_uuid(),
            id
        );
        assert!(IntegrationId::parse("").unwrap_err().contains("required"));
        assert!(IntegrationId::parse("nope").unwrap_err().contains("UUID"));
        assert!(SyncRunId::parse("").is_err());
        assert!(SyncRunId::parse("a b").is_err());
        assert_eq!(
            SyncRunId::parse("run-1").unwrap().run_stream(),
            "syncrun-run-1"
        );
    }

    #[test]
    fn streams_follow_the_documented_names() {
        let id = IntegrationId::new(Uuid::nil());
        assert_eq!(
            id.connection_stream(),
            "connection-00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            id.checkpoint_stream(ObjectKind::CrmDeal),
            "checkpoint-00000000-0000-0000-0000-000000000000-crm_deal"
        );
    }

    #[test]
    fn providers_round_trip_through_every_representation() {
        for p in [Provider::Linkedin, Provider::Hubspot, Provider::Salesforce] {
            assert_eq!(parse_provider_slug(provider_slug(p)), Some(p));
            assert_eq!(provider_from_api(provider_to_api(p) as i32), Some(p));
        }
        assert_eq!(provider_from_api(0), None);
        assert_eq!(provider_from_api(42), None);
    }
}
