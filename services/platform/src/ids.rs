//! The identifiers every service passes around, parsed once at the edge (gRPC requests, event
//! metadata) and typed after that, and every event stream's name, spelled once, here.
//!
//! | stream | what it holds |
//! |---|---|
//! | `workspace-<workspace>` | WorkspaceCreated, PlanChanged, ApiKeyIssued / Revoked |
//! | `connection-<integration>` | ConnectionConnected / Reconnected / Disconnected, SyncScheduleSet |
//! | `checkpoint-<integration>-<object>` | CheckpointAdvanced of one object type (`..._deletions` for its deletions) |
//! | `syncrun-<run>` | the life of one sync run: SyncRequested .. SyncCompleted / SyncFailed |
//! | `records-<run>` | the run's RecordsPulled batches |
//! | `matches-<workspace>` | AccountsMatched from match decisions made outside a run |
//! | `notifications-<workspace>` | NotificationRaised / Resolved / Read |

use std::fmt;
use uuid::Uuid;

fn parse_uuid(s: &str, what: &str) -> Result<Uuid, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("is required (the {what}'s UUID)"));
    }
    Uuid::parse_str(s).map_err(|_| format!("must be the {what}'s UUID (got {:?})", shorten(s)))
}

/// At most 64 characters of `s`, for echoing bad input in an error without echoing a megabyte.
pub fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// A workspace id: a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(Uuid);

impl WorkspaceId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    /// Parses a workspace id (a UUID); the error says what is wrong, for a user.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_uuid(s, "workspace").map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// `workspace-<id>`: the workspace's own events (creation, plan, API keys).
    pub fn stream(&self) -> String {
        format!("workspace-{}", self.0)
    }

    /// `matches-<id>`: match decisions made outside a sync run.
    pub fn matches_stream(&self) -> String {
        format!("matches-{}", self.0)
    }

    /// `notifications-<id>`: the bell's notifications.
    pub fn notifications_stream(&self) -> String {
        format!("notifications-{}", self.0)
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

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
        parse_uuid(s, "integration").map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// `connection-<id>`: the connection's life and its schedule.
    pub fn connection_stream(&self) -> String {
        format!("connection-{}", self.0)
    }

    /// `checkpoint-<id>-<object>`: CheckpointAdvanced of one object type (`object` is its slug).
    pub fn checkpoint_stream(&self, object: &str) -> String {
        format!("checkpoint-{}-{object}", self.0)
    }

    /// `checkpoint-<id>-<object>_deletions`: CheckpointAdvanced of one object type's deletions.
    pub fn deletions_checkpoint_stream(&self, object: &str) -> String {
        format!("checkpoint-{}-{object}_deletions", self.0)
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A sync run id, as SyncRequested names it (the correlation id of the whole run). The connector
/// makes UUIDs; any printable id of at most 100 characters is accepted from events, so tools and
/// tests can name runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncRunId(String);

impl SyncRunId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("sync_run_id is empty".into());
        }
        if s.chars().count() > 100 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "sync_run_id {:?} is not a printable id of at most 100 characters",
                shorten(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_once_and_name_their_streams() {
        let ws = WorkspaceId::parse(" 0195f0a0-0000-7000-8000-000000000001 ").unwrap();
        assert_eq!(
            ws.stream(),
            "workspace-0195f0a0-0000-7000-8000-000000000001"
        );
        assert!(ws.matches_stream().starts_with("matches-"));
        assert!(ws.notifications_stream().starts_with("notifications-"));
        let i = IntegrationId::parse("0195f0a0-0000-7000-8000-000000000002").unwrap();
        assert_eq!(
            i.checkpoint_stream("companies"),
            "checkpoint-0195f0a0-0000-7000-8000-000000000002-companies"
        );
        assert_eq!(
            i.deletions_checkpoint_stream("deals"),
            "checkpoint-0195f0a0-0000-7000-8000-000000000002-deals_deletions"
        );
        let r = SyncRunId::parse("run-1").unwrap();
        assert_eq!(r.run_stream(), "syncrun-run-1");
        assert_eq!(r.records_stream(), "records-run-1");
    }

    #[test]
    fn bad_ids_are_refused_without_echoing_unbounded_input() {
        assert!(WorkspaceId::parse("").unwrap_err().contains("required"));
        let long = "x".repeat(1 << 20);
        let e = IntegrationId::parse(&long).unwrap_err();
        assert!(e.len() < 200, "{}", e.len());
        let e = SyncRunId::parse(&long).unwrap_err();
        assert!(e.len() < 200, "{}", e.len());
        assert!(SyncRunId::parse("a b").is_err());
        assert!(IntegrationId::parse("not-a-uuid").is_err());
    }
}
