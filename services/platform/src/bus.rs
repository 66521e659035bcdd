//! The bus: NATS JetStream. Events reach it only through the relay, which follows the log.
//!
//! Subjects: `<prefix>.v1.<partition>.<workspace>.<EventType>` (docs/bus.md). The partition is a
//! stable hash of the workspace; a consumer that needs per-workspace order binds one durable
//! consumer per partition with one message in flight each (NATS 2.9 has no partitioned
//! consumers), so order holds per workspace while partitions run in parallel.

use crate::config::{ConfigError, duration_or, parse_or, var_or};
use crate::contracts::events::v1::Envelope;
use crate::eventlog::RecordedEvent;
use crate::nats_auth::{NatsAuth, redact_url, split_url_credentials};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use prost::Message;
use std::time::Duration;

/// NATS header names the relay sets on every event.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const EVENT_ID: &str = "Rp-Event-Id";
    pub const EVENT_TYPE: &str = "Rp-Event-Type";
    pub const WORKSPACE_ID: &str = "Rp-Workspace-Id";
    pub const INTEGRATION_ID: &str = "Rp-Integration-Id";
    pub const STREAM_ID: &str = "Rp-Stream-Id";
    pub const STREAM_VERSION: &str = "Rp-Stream-Version";
    pub const POSITION: &str = "Rp-Position";
    pub const CORRELATION_ID: &str = "Rp-Correlation-Id";
    pub const CAUSATION_ID: &str = "Rp-Causation-Id";
    pub const OCCURRED_AT: &str = "Rp-Occurred-At";
    pub const RECORDED_AT: &str = "Rp-Recorded-At";
    pub const REPLAY: &str = "Rp-Replay";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    /// `RP_BUS_PREFIX`: first subject token (default `rp`). Tests use a unique one each.
    pub prefix: String,
    /// `RP_BUS_STREAM`: JetStream stream name (default `RP_EVENTS`).
    pub stream: String,
    /// `RP_BUS_PARTITIONS`: partitions for per-workspace ordering (default 16). Fixed for the
    /// life of a stream: changing it reorders events in flight.
    pub partitions: u32,
    /// `RP_BUS_MAX_AGE`: how long the stream keeps events (default 30d). The log keeps them
    /// forever; `rp events replay` republishes older ones.
    pub max_age: Duration,
    /// `RP_BUS_DEDUP_WINDOW`: JetStream duplicate window (default 2m): a republish of the same
    /// event id inside it is dropped by the server.
    pub dedup_window: Duration,
    /// `RP_BUS_REPLICAS`: stream replicas in a NATS cluster (default 1).
    pub replicas: usize,
    /// `RP_BUS_STORAGE`: `file` (default) or `memory`.
    pub storage: stream::StorageType,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            prefix: "rp".into(),
            stream: "RP_EVENTS".into(),
            partitions: 16,
            max_age: Duration::from_secs(30 * 86_400),
            dedup_window: Duration::from_secs(120),
            replicas: 1,
            storage: stream::StorageType::File,
        }
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl BusConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let prefix = var_or("RP_BUS_PREFIX", &d.prefix);
        if !valid_token(&prefix) {
            return Err(ConfigError::Invalid {
                var: "RP_BUS_PREFIX".into(),
                value: prefix,
                problem: "one subject token: letters, digits, '-' or '_'".into(),
            });
        }
        let stream_name = var_or("RP_BUS_STREAM", &d.stream);
        if !valid_token(&stream_name) {
            return Err(ConfigError::Invalid {
                var: "RP_BUS_STREAM".into(),
                value: stream_name,
                problem: "a stream name: letters, digits, '-' or '_'".into(),
            });
        }
        let partitions = parse_or("RP_BUS_PARTITIONS", d.partitions)?;
        if partitions == 0 || partitions > 1024 {
            return Err(ConfigError::Invalid {
                var: "RP_BUS_PARTITIONS".into(),
                value: partitions.to_string(),
                problem: "between 1 and 1024".into(),
            });
        }
        let replicas = parse_or("RP_BUS_REPLICAS", d.replicas)?;
        if !(1..=5).contains(&replicas) {
            return Err(ConfigError::Invalid {
                var: "RP_BUS_REPLICAS".into(),
                value: replicas.to_string(),
                problem: "JetStream allows 1 to 5 replicas".into(),
            });
        }
        let storage = match var_or("RP_BUS_STORAGE", "file").as_str() {
            "file" => stream::StorageType::File,
            "memory" => stream::StorageType::Memory,
            other => {
                return Err(ConfigError::Invalid {
                    var: "RP_BUS_STORAGE".into(),
                    value: other.into(),
                    problem: "use file or memory".into(),
                });
            }
        };
        Ok(Self {
            prefix,
            stream: stream_name,
            partitions,
            max_age: duration_or("RP_BUS_MAX_AGE", d.max_age)?,
            dedup_window: duration_or("RP_BUS_DEDUP_WINDOW", d.dedup_window)?,
            replicas,
            storage,
        })
    }

    /// The partition of a workspace: FNV-1a of its id, stable across processes and releases.
    pub fn partition_of(&self, workspace_id: &str) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in workspace_id.as_bytes() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h % self.partitions
    }

    /// The subject an event is published on.
    pub fn subject(&self, workspace_id: &str, event_type: &str) -> String {
        let ws = subject_token(workspace_id);
        format!(
            "{}.v1.{}.{}.{}",
            self.prefix,
            self.partition_of(workspace_id),
            ws,
            event_type
        )
    }

    /// Every event subject of this prefix.
    pub fn all_subjects(&self) -> String {
        format!("{}.v1.>", self.prefix)
    }

    /// Every subject of one partition.
    pub fn partition_subjects(&self, partition: u32) -> String {
        format!("{}.v1.{}.>", self.prefix, partition)
    }

    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.all_subjects()],
            retention: stream::RetentionPolicy::Limits,
            max_age: self.max_age,
            duplicate_window: self.dedup_window,
            num_replicas: self.replicas,
            storage: self.storage,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }
}

/// A workspace id as a subject token (ids are UUIDs; anything else is made safe, never rejected).
fn subject_token(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("JetStream stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("publish to {subject}: {message}")]
    Publish { subject: String, message: String },
}

/// Connects to NATS with the credentials and TLS settings of the environment
/// ([`crate::nats_auth`]: `NATS_CREDS` or `NATS_USER`/`NATS_PASSWORD`, `NATS_TLS_CA`, ...).
/// Fails fast (a few seconds) when NATS is not there, naming the URL (never a password).
///
/// `url` may name several servers of a cluster, comma-separated (`nats://a:4222,nats://b:4222`):
/// the client connects to any one that answers and reconnects to another when its server goes
/// (it also learns the cluster's other members from the server it reaches), so a service started
/// while one node is down still comes up (docs/deploy.md).
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let auth = NatsAuth::from_env().map_err(|e| BusError::Connect {
        url: redact_url(url),
        message: e.to_string(),
    })?;
    connect_with(url, name, &auth).await
}

/// [`connect`] with explicit credentials and TLS settings (tests use this).
pub async fn connect_with(
    url: &str,
    name: &str,
    auth: &NatsAuth,
) -> Result<async_nats::Client, BusError> {
    let err = |message: String| BusError::Connect {
        url: redact_url(url),
        message: format!("{message} (as {})", auth.describe()),
    };
    let (servers, in_url) = split_url_credentials(url);
    let servers = servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    let auth = match in_url {
        Some(user) if auth.user.is_none() && auth.creds_file.is_none() => &NatsAuth {
            user: Some(user),
            ..auth.clone()
        },
        _ => auth,
    };
    auth.options()
        .await
        .map_err(|message| BusError::Connect {
            url: redact_url(url),
            message,
        })?
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .connect(servers)
        .await
        .map_err(|e| err(e.to_string()))
}

/// Creates the stream, or brings an existing one to the configured settings. Idempotent.
pub async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &BusConfig,
) -> Result<stream::Stream, BusError> {
    let err = |e: &dyn std::fmt::Display| BusError::Stream {
        stream: cfg.stream.clone(),
        message: e.to_string(),
    };
    js.create_or_update_stream(cfg.stream_config())
        .await
        .map_err(|e| err(&e))?;
    js.get_stream(&cfg.stream).await.map_err(|e| err(&e))
}

/// The NATS message for a recorded event: the encoded envelope plus routing metadata in headers.
pub fn message_for(event: &RecordedEvent, replay: bool) -> (HeaderMap, bytes::Bytes) {
    let meta = event.meta();
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, meta.event_id.as_str());
    h.insert(headers::EVENT_ID, meta.event_id.as_str());
    h.insert(headers::EVENT_TYPE, event.event_type());
    h.insert(headers::WORKSPACE_ID, meta.workspace_id.as_str());
    if !meta.integration_id.is_empty() {
        h.insert(headers::INTEGRATION_ID, meta.integration_id.as_str());
    }
    h.insert(headers::STREAM_ID, event.stream_id.as_str());
    h.insert(headers::STREAM_VERSION, event.version.to_string().as_str());
    h.insert(headers::POSITION, event.position.to_string().as_str());
    h.insert(headers::CORRELATION_ID, meta.correlation_id.as_str());
    if !meta.causation_id.is_empty() {
        h.insert(headers::CAUSATION_ID, meta.causation_id.as_str());
    }
    if let Some(t) = meta
        .occurred_at
        .as_ref()
        .and_then(crate::contracts::from_timestamp)
    {
        h.insert(headers::OCCURRED_AT, t.to_rfc3339().as_str());
    }
    h.insert(
        headers::RECORDED_AT,
        event.recorded_at.to_rfc3339().as_str(),
    );
    if !meta.traceparent.is_empty() {
        h.insert(headers::TRACEPARENT, meta.traceparent.as_str());
    }
    if !meta.tracestate.is_empty() {
        h.insert(headers::TRACESTATE, meta.tracestate.as_str());
    }
    if replay {
        h.insert(headers::REPLAY, "true");
    }
    (h, bytes::Bytes::from(event.envelope.encode_to_vec()))
}

/// Why a message from the bus is not an event we can hand to a handler.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message has no {0} header")]
    MissingHeader(&'static str),
    #[error("header {0} is malformed")]
    BadHeader(&'static str),
    #[error("body is not an rp.events.v1.Envelope: {0}")]
    Body(#[from] prost::DecodeError),
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &'static str) -> Result<&'a str, DecodeError> {
    h.and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .ok_or(DecodeError::MissingHeader(name))
}

/// Rebuilds the recorded event from a bus message.
pub fn decode_message(msg: &async_nats::Message) -> Result<RecordedEvent, DecodeError> {
    let h = msg.headers.as_ref();
    let position = header(h, headers::POSITION)?
        .parse()
        .map_err(|_| DecodeError::BadHeader(headers::POSITION))?;
    let version = header(h, headers::STREAM_VERSION)?
        .parse()
        .map_err(|_| DecodeError::BadHeader(headers::STREAM_VERSION))?;
    let stream_id = header(h, headers::STREAM_ID)?.to_string();
    let recorded_at = header(h, headers::RECORDED_AT)
        .ok()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let envelope = Envelope::decode(msg.payload.as_ref())?;
    Ok(RecordedEvent {
        position,
        stream_id,
        version,
        recorded_at,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_partition_workspace_and_type() {
        let cfg = BusConfig::default();
        let ws = "0190a1b2-0000-7000-8000-000000000001";
        let s = cfg.subject(ws, "SyncRequested");
        let p = cfg.partition_of(ws);
        assert_eq!(s, format!("rp.v1.{p}.{ws}.SyncRequested"));
        assert!(p < cfg.partitions);
        // stable: the same workspace always lands in the same partition
        assert_eq!(p, cfg.partition_of(ws));
    }

    #[test]
    fn odd_workspace_ids_become_safe_tokens() {
        let cfg = BusConfig::default();
        assert!(cfg.subject("", "X").contains("._.X"));
        assert!(cfg.subject("a.b*c>", "X").contains(".a_b_c_.X"));
    }
}
