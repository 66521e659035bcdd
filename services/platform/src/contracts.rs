//! Generated protobuf contracts (`proto/`), and the small amount of glue every service needs
//! around the event envelope.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod events {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/rp.events.v1.rs"));
    }
}

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod api {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/rp.api.v1.rs"));
    }
}

/// Encoded `FileDescriptorSet` of every contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rp_descriptor.bin"));

use events::v1::envelope::Event;

impl Event {
    /// The event's type name as it appears in the log, in NATS subjects and in `rp` output:
    /// the protobuf message name (`SyncRequested`, `RecordsPulled`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::WorkspaceCreated(_) => "WorkspaceCreated",
            Event::ConnectionConnected(_) => "ConnectionConnected",
            Event::ConnectionDisconnected(_) => "ConnectionDisconnected",
            Event::ConnectionReconnected(_) => "ConnectionReconnected",
            Event::SyncScheduleSet(_) => "SyncScheduleSet",
            Event::SyncRequested(_) => "SyncRequested",
            Event::SyncStarted(_) => "SyncStarted",
            Event::SyncStepStarted(_) => "SyncStepStarted",
            Event::RecordsPulled(_) => "RecordsPulled",
            Event::CheckpointAdvanced(_) => "CheckpointAdvanced",
            Event::CheckpointReset(_) => "CheckpointReset",
            Event::PullCompleted(_) => "PullCompleted",
            Event::CompaniesResolved(_) => "CompaniesResolved",
            Event::AccountsMatched(_) => "AccountsMatched",
            Event::AttributionUpdated(_) => "AttributionUpdated",
            Event::SyncCompleted(_) => "SyncCompleted",
            Event::SyncFailed(_) => "SyncFailed",
            Event::MatchDecisionRecorded(_) => "MatchDecisionRecorded",
            Event::NotificationRaised(_) => "NotificationRaised",
            Event::NotificationResolved(_) => "NotificationResolved",
            Event::NotificationsRead(_) => "NotificationsRead",
            Event::NotificationUpdated(_) => "NotificationUpdated",
            Event::ApiKeyIssued(_) => "ApiKeyIssued",
            Event::ApiKeyRevoked(_) => "ApiKeyRevoked",
            Event::EventDeadLettered(_) => "EventDeadLettered",
        }
    }
}

/// Every event type name, for validating `--type` filters and documenting subjects.
pub const EVENT_TYPES: &[&str] = &[
    "WorkspaceCreated",
    "ConnectionConnected",
    "ConnectionDisconnected",
    "ConnectionReconnected",
    "SyncScheduleSet",
    "SyncRequested",
    "SyncStarted",
    "SyncStepStarted",
    "RecordsPulled",
    "CheckpointAdvanced",
    "CheckpointReset",
    "PullCompleted",
    "CompaniesResolved",
    "AccountsMatched",
    "AttributionUpdated",
    "SyncCompleted",
    "SyncFailed",
    "MatchDecisionRecorded",
    "NotificationRaised",
    "NotificationResolved",
    "NotificationsRead",
    "NotificationUpdated",
    "ApiKeyIssued",
    "ApiKeyRevoked",
    "EventDeadLettered",
];

/// Converts a chrono time into a protobuf timestamp.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a protobuf timestamp into a chrono time; `None` when it is out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}
