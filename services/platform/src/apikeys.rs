//! API keys: how every gRPC call says which workspace it acts for.
//!
//! * A key is `rpk_<key id>_<secret>`: the key id is 32 hex digits (public: it names the key in
//!   `rp keys list` and in logs), the secret 64 hex digits (256 random bits). It is shown once,
//!   when issued, and never stored: the log and the `api_keys` projection keep only the SHA-256
//!   of the secret. Lookup is by key id, and the hashes are compared in constant time.
//! * Issuing and revoking are events (`ApiKeyIssued`, `ApiKeyRevoked` on `workspace-<id>`); the
//!   `api_keys` row is written in the same transaction as the append, so the table never
//!   disagrees with the log.
//! * Every call sends `authorization: Bearer <key>`. [`authenticate`] turns that into a
//!   [`Caller`] bound to one workspace (or `UNAUTHENTICATED` saying what is wrong), and
//!   [`Caller::authorize`] refuses a request that names another workspace (`PERMISSION_DENIED`).
//!   No cache: a revocation takes effect on the next call.
//! * A key has a [`Scope`]: `full` (every method; the default, and every key issued before
//!   scopes existed) or `read_only`. [`authenticate`] refuses a read-only key on any method that
//!   changes the workspace ([`WRITE_METHODS`], and any method not classified at all: fail
//!   closed) with `PERMISSION_DENIED`, in this one place rather than in each handler.

use crate::contracts::events::v1::{
    ApiKeyIssued, ApiKeyRevoked, ApiKeyScope as ScopeProto, envelope::Event,
};
use crate::eventlog::{self, AppendError, ExpectedVersion, NewEvent};
use crate::grpc;
use crate::ids::WorkspaceId;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tonic::metadata::MetadataMap;
use tonic::{GrpcMethod, Request, Status};
use uuid::Uuid;

/// Every key starts with this, so a leaked key is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "rpk_";
/// Longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// The public half of a key: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    fn generate() -> Self {
        Self(Uuid::new_v4().simple().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "a key id is 32 lowercase hex digits, as `rp keys list` shows it (got {s:?})"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every method: reads and changes. Keys issued before scopes existed are full.
    #[default]
    Full,
    /// Reads only: a method that changes the workspace is refused (`PERMISSION_DENIED`).
    ReadOnly,
}

impl Scope {
    /// As stored in `api_keys.scope` and shown by `rp keys list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::ReadOnly => "read_only",
        }
    }

    /// The column's value; anything else (which its CHECK rules out) is read-only, the lesser
    /// right.
    fn from_column(s: &str) -> Self {
        if s == "full" {
            Scope::Full
        } else {
            Scope::ReadOnly
        }
    }

    /// The event's value: unspecified (a key issued before scopes) is full.
    pub fn from_event(e: &ApiKeyIssued) -> Self {
        match e.scope() {
            ScopeProto::ReadOnly => Scope::ReadOnly,
            ScopeProto::Full | ScopeProto::Unspecified => Scope::Full,
        }
    }

    fn to_event(self) -> ScopeProto {
        match self {
            Scope::Full => ScopeProto::Full,
            Scope::ReadOnly => ScopeProto::ReadOnly,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("workspace {0} does not exist (create it with `rp workspaces create`)")]
    WorkspaceNotFound(WorkspaceId),
    #[error("label: {0}")]
    InvalidLabel(String),
    #[error("no API key with id {0}")]
    KeyNotFound(KeyId),
    #[error("api keys: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl From<ApiKeyError> for grpc::ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::WorkspaceNotFound(_) | ApiKeyError::KeyNotFound(_) => {
                grpc::ApiError::NotFound(e.to_string())
            }
            ApiKeyError::InvalidLabel(why) => grpc::ApiError::InvalidArgument {
                field: "label".into(),
                why,
            },
            ApiKeyError::Database(_) | ApiKeyError::Append(_) => {
                tracing::error!(error = %e, "api keys: infrastructure failure");
                grpc::ApiError::Unavailable {
                    operation: "api keys".into(),
                }
            }
        }
    }
}

/// A freshly issued key. `plaintext` is the only copy of the secret: show it once.
#[derive(Clone)]
pub struct IssuedKey {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub label: String,
    pub scope: Scope,
    pub plaintext: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key_id", &self.key_id)
            .field("workspace_id", &self.workspace_id)
            .field("label", &self.label)
            .field("scope", &self.scope)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// A key as `rp keys list` shows it (never the secret or its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ApiKeyInfo {
    pub key_id: String,
    pub workspace_id: Uuid,
    pub label: String,
    /// `full` or `read_only` ([`Scope::as_str`]).
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What [`revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked {
        workspace_id: WorkspaceId,
    },
    /// It was revoked before; nothing was appended.
    AlreadyRevoked {
        workspace_id: WorkspaceId,
    },
}

fn sha256(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Compares two digests without an early exit, so the time taken says nothing about where
/// they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn validate_label(label: &str) -> Result<String, ApiKeyError> {
    let label = label.trim();
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(ApiKeyError::InvalidLabel(format!(
            "must be at most {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(ApiKeyError::InvalidLabel(
            "must not contain control characters".into(),
        ));
    }
    Ok(label.to_string())
}

/// Issues a full key for `workspace_id` ([`issue_with_scope`]).
pub async fn issue(
    pool: &PgPool,
    workspace_id: WorkspaceId,
    label: &str,
) -> Result<IssuedKey, ApiKeyError> {
    issue_with_scope(pool, workspace_id, label, Scope::Full).await
}

/// Issues a key for `workspace_id` with `scope`: appends `ApiKeyIssued` (hash and scope) and
/// writes the projection row in one transaction. Returns the plaintext key, which exists nowhere
/// else.
pub async fn issue_with_scope(
    pool: &PgPool,
    workspace_id: WorkspaceId,
    label: &str,
    scope: Scope,
) -> Result<IssuedKey, ApiKeyError> {
    let label = validate_label(label)?;
    let key_id = KeyId::generate();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let plaintext = format!("{KEY_PREFIX}{key_id}_{}", hex::encode(secret));
    let secret_sha256 = hex::encode(sha256(&secret));

    let mut tx = pool.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_streams WHERE stream_id = $1)")
            .bind(workspace_id.stream())
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        return Err(ApiKeyError::WorkspaceNotFound(workspace_id));
    }
    let event = NewEvent::new(
        workspace_id.to_string(),
        Event::ApiKeyIssued(ApiKeyIssued {
            key_id: key_id.to_string(),
            secret_sha256: secret_sha256.clone(),
            label: label.clone(),
            scope: scope.to_event().into(),
        }),
    );
    sqlx::query(
        "INSERT INTO api_keys (key_id, workspace_id, secret_sha256, label, scope, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key_id.as_str())
    .bind(workspace_id.as_uuid())
    .bind(&secret_sha256)
    .bind(&label)
    .bind(scope.as_str())
    .bind(event.occurred_at)
    .execute(&mut *tx)
    .await?;
    eventlog::append_in(
        &mut tx,
        &workspace_id.stream(),
        ExpectedVersion::Any,
        vec![event],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(workspace_id = %workspace_id, key_id = %key_id, scope = scope.as_str(), "api key issued");
    Ok(IssuedKey {
        key_id,
        workspace_id,
        label,
        scope,
        plaintext,
    })
}

/// Revokes a key: appends `ApiKeyRevoked` and marks the row, in one transaction. Revoking a
/// revoked key changes nothing.
pub async fn revoke(pool: &PgPool, key_id: &KeyId) -> Result<Revocation, ApiKeyError> {
    let mut tx = pool.begin().await?;
    let row: Option<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT workspace_id, revoked_at FROM api_keys WHERE key_id = $1 FOR UPDATE",
    )
    .bind(key_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((workspace, revoked_at)) = row else {
        return Err(ApiKeyError::KeyNotFound(key_id.clone()));
    };
    let workspace_id = WorkspaceId::new(workspace);
    if revoked_at.is_some() {
        return Ok(Revocation::AlreadyRevoked { workspace_id });
    }
    let event = NewEvent::new(
        workspace_id.to_string(),
        Event::ApiKeyRevoked(ApiKeyRevoked {
            key_id: key_id.to_string(),
        }),
    );
    sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1")
        .bind(key_id.as_str())
        .bind(event.occurred_at)
        .execute(&mut *tx)
        .await?;
    eventlog::append_in(
        &mut tx,
        &workspace_id.stream(),
        ExpectedVersion::Any,
        vec![event],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(workspace_id = %workspace_id, key_id = %key_id, "api key revoked");
    Ok(Revocation::Revoked { workspace_id })
}

/// The workspace's keys, oldest first.
pub async fn list(
    pool: &PgPool,
    workspace_id: WorkspaceId,
) -> Result<Vec<ApiKeyInfo>, ApiKeyError> {
    Ok(sqlx::query_as(
        "SELECT key_id, workspace_id, label, scope, created_at, revoked_at FROM api_keys \
         WHERE workspace_id = $1 ORDER BY created_at, key_id",
    )
    .bind(workspace_id.as_uuid())
    .fetch_all(pool)
    .await?)
}

/// The methods that only read (`<package>.<Service>/<Method>`): the only ones a read-only key
/// may call. Everything else, [`WRITE_METHODS`] and any method listed nowhere, is refused to it:
/// a method added to a `.proto` without being classified here fails closed (and
/// `tests/key_scopes.rs` fails until it is classified).
pub const READ_METHODS: &[&str] = &[
    "rp.api.v1.Attribution/GetDashboard",
    "rp.api.v1.Attribution/ListDashboardDeals",
    "rp.api.v1.Attribution/GetDealAttribution",
    "rp.api.v1.Connections/ListConnections",
    "rp.api.v1.Connections/GetConnection",
    "rp.api.v1.Matches/ListMatches",
    "rp.api.v1.Matches/ListReviews",
    "rp.api.v1.Notifications/List",
    "rp.api.v1.Notifications/UnreadCount",
    "rp.api.v1.Notifications/Subscribe",
    "rp.api.v1.Sync/GetConnectionHealth",
    "rp.api.v1.Sync/WatchConnectionHealth",
    "rp.api.v1.Sync/ListSyncRuns",
    "rp.api.v1.Sync/GetSyncRun",
];

/// The methods that change the workspace: only a full key may call them. Marking notifications
/// read is one: the read state belongs to the workspace (every member's bell and unread count)
/// and is recorded in the log (`NotificationsRead`), so a key meant to look (a wall screen, a BI
/// export, an auditor) must not clear what the people who act on notifications have not seen.
pub const WRITE_METHODS: &[&str] = &[
    "rp.api.v1.Connections/StartConnect",
    "rp.api.v1.Connections/CompleteConnect",
    "rp.api.v1.Connections/Reconnect",
    "rp.api.v1.Connections/Disconnect",
    "rp.api.v1.Sync/SyncNow",
    "rp.api.v1.Sync/SetSyncSchedule",
    "rp.api.v1.Matches/RecordDecision",
    "rp.api.v1.Notifications/MarkRead",
    "rp.api.v1.Notifications/MarkAllRead",
];

/// Whether `method` (`<package>.<Service>/<Method>`) may be called with a key of `scope`: a
/// full key may call anything; a read-only key only [`READ_METHODS`].
pub fn permits(scope: Scope, method: &str) -> bool {
    match scope {
        Scope::Full => true,
        Scope::ReadOnly => READ_METHODS.contains(&method),
    }
}

/// The method a server call is for, from the [`GrpcMethod`] extension the servers' layer puts on
/// every request of a known method ([`crate::metrics::GrpcMetricsLayer`]); `None` when absent
/// (a handler called some other way), which a read-only key is refused on.
fn called_method<T>(request: &Request<T>) -> Option<&GrpcMethod<'static>> {
    request.extensions().get::<GrpcMethod<'static>>()
}

/// Who is calling: the key, the one workspace it acts for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub key_id: KeyId,
    pub scope: Scope,
}

impl Caller {
    /// Checks the workspace a request names (`workspace_id` field) against the key's:
    /// `INVALID_ARGUMENT` when it is not a workspace id, `PERMISSION_DENIED` when it is another
    /// workspace. Returns the parsed id.
    pub fn authorize(&self, workspace_id: &str) -> Result<WorkspaceId, Status> {
        let requested = WorkspaceId::parse(workspace_id)
            .map_err(|why| grpc::invalid_argument("workspace_id", why))?;
        if requested != self.workspace_id {
            tracing::warn!(key_id = %self.key_id, key_workspace = %self.workspace_id, requested = %requested, "request for another workspace refused");
            // The message names only the key's own workspace: never the one asked for.
            return Err(grpc::permission_denied(format!(
                "this API key belongs to workspace {}; it can act on that workspace only",
                self.workspace_id
            )));
        }
        Ok(requested)
    }
}

/// A key as presented in a request, split into its parts.
struct Presented {
    key_id: KeyId,
    secret: [u8; 32],
}

const HOW: &str = "send `authorization: Bearer rpk_<key id>_<secret>` metadata with a key from \
                   `rp keys create --workspace <id>`";

fn parse_authorization(metadata: &MetadataMap) -> Result<Presented, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Err(grpc::unauthenticated(format!("missing API key: {HOW}")));
    };
    let malformed = || grpc::unauthenticated(format!("malformed API key: {HOW}"));
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(malformed()),
    };
    let rest = token.strip_prefix(KEY_PREFIX).ok_or_else(malformed)?;
    let (id, secret_hex) = rest.split_once('_').ok_or_else(malformed)?;
    let key_id = KeyId::parse(id).map_err(|_| malformed())?;
    let mut secret = [0u8; 32];
    hex::decode_to_slice(secret_hex, &mut secret).map_err(|_| malformed())?;
    Ok(Presented { key_id, secret })
}

/// Why a call was not authenticated: the `reason` label of `rp_grpc_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Malformed,
    Unknown,
    Revoked,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Revoked => "revoked",
        }
    }
}

/// Authenticates a call from its `authorization` metadata, counts it against the key's rate
/// ([`crate::ratelimit::grpc_per_key`]), then checks the key's scope against the method called:
/// every gRPC method calls this first. Missing, malformed, unknown and revoked keys are
/// `UNAUTHENTICATED`, each with a message that says what to do, logged (the key id when one was
/// presented, never the secret) and counted in `rp_grpc_auth_failures_total`; a key over its
/// rate is `RESOURCE_EXHAUSTED` saying when to retry; a read-only key on a method that is not in
/// [`READ_METHODS`] is `PERMISSION_DENIED` saying a full key is needed, logged and counted in
/// `rp_grpc_read_only_refusals_total`; a database failure is `UNAVAILABLE`.
pub async fn authenticate<T>(pool: &PgPool, request: &Request<T>) -> Result<Caller, Status> {
    let metadata = request.metadata();
    let caller = match check(pool, metadata).await {
        Ok(caller) => caller,
        Err(Failure::Refused(reason, key_id, status)) => {
            crate::metrics::grpc()
                .auth_failures
                .get_or_create(&[("reason", reason.as_str().to_string())])
                .inc();
            tracing::warn!(
                reason = reason.as_str(),
                key_id = key_id.as_ref().map(KeyId::as_str),
                "gRPC call refused: API key not accepted"
            );
            return Err(status);
        }
        Err(Failure::Other(status)) => return Err(status),
    };
    let limiter = crate::ratelimit::grpc_per_key();
    if let Err(wait) = limiter.check(&caller.key_id.0) {
        crate::metrics::grpc().rate_limited.inc();
        let rate = limiter.rate();
        tracing::warn!(key_id = %caller.key_id, workspace_id = %caller.workspace_id, "gRPC call refused: API key over its rate");
        return Err(Status::resource_exhausted(format!(
            "API key {} is over its rate of {} calls per second (bursts of {}); retry in {} ms",
            caller.key_id,
            rate.per_second,
            rate.burst,
            wait.as_millis().max(1)
        )));
    }
    let called = called_method(request);
    let method = called.map(|m| format!("{}/{}", m.service(), m.method()));
    if !permits(caller.scope, method.as_deref().unwrap_or_default()) {
        let shown = method.as_deref().unwrap_or("this method");
        crate::metrics::grpc()
            .read_only_refusals
            .get_or_create(&[
                (
                    "grpc_service",
                    called.map_or("unknown", |m| m.service()).to_string(),
                ),
                (
                    "grpc_method",
                    called.map_or("unknown", |m| m.method()).to_string(),
                ),
            ])
            .inc();
        tracing::warn!(key_id = %caller.key_id, workspace_id = %caller.workspace_id, method = shown, "gRPC call refused: read-only API key on a method that changes the workspace");
        return Err(grpc::permission_denied(format!(
            "API key {} is read-only: it can read but not call {shown}, which changes the \
             workspace; use a full key (`rp keys create --workspace {}` without --read-only)",
            caller.key_id, caller.workspace_id
        )));
    }
    Ok(caller)
}

enum Failure {
    Refused(Refusal, Option<KeyId>, Status),
    Other(Status),
}

async fn check(pool: &PgPool, metadata: &MetadataMap) -> Result<Caller, Failure> {
    let presented = parse_authorization(metadata).map_err(|status| {
        let reason = if metadata.get("authorization").is_none() {
            Refusal::Missing
        } else {
            Refusal::Malformed
        };
        Failure::Refused(reason, None, status)
    })?;
    let row: Option<(Uuid, String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT workspace_id, secret_sha256, scope, revoked_at FROM api_keys WHERE key_id = $1",
    )
    .bind(presented.key_id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(|e| Failure::Other(grpc::unavailable("checking the API key", &e)))?;
    let digest = sha256(&presented.secret);
    let unknown = || {
        Failure::Refused(
            Refusal::Unknown,
            Some(presented.key_id.clone()),
            grpc::unauthenticated(format!(
                "unknown API key {}: it does not exist or its secret is wrong; {HOW}",
                presented.key_id
            )),
        )
    };
    let Some((workspace, stored_hex, scope, revoked_at)) = row else {
        return Err(unknown());
    };
    let mut stored = [0u8; 32];
    if hex::decode_to_slice(&stored_hex, &mut stored).is_err() {
        tracing::error!(key_id = %presented.key_id, "stored API key hash is not 32 bytes of hex");
        return Err(unknown());
    }
    if !constant_time_eq(&digest, &stored) {
        return Err(unknown());
    }
    if let Some(at) = revoked_at {
        return Err(Failure::Refused(
            Refusal::Revoked,
            Some(presented.key_id.clone()),
            grpc::unauthenticated(format!(
                "API key {} was revoked at {}; create a new one with `rp keys create --workspace {workspace}`",
                presented.key_id,
                at.format("%Y-%m-%d %H:%M UTC")
            )),
        ));
    }
    Ok(Caller {
        workspace_id: WorkspaceId::new(workspace),
        key_id: presented.key_id,
        scope: Scope::from_column(&scope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn with_auth(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Ok(v) = MetadataValue::try_from(v) {
            m.insert("authorization", v);
        }
        m
    }

    #[test]
    fn a_well_formed_key_splits_into_id_and_secret() {
        let key = format!("{KEY_PREFIX}{}_{}", "ab".repeat(16), "0f".repeat(32));
        let p = parse_authorization(&with_auth(&format!("Bearer {key}"))).unwrap();
        assert_eq!(p.key_id.as_str(), "ab".repeat(16));
        assert_eq!(p.secret, [0x0f; 32]);
        // The scheme is case-insensitive.
        assert!(parse_authorization(&with_auth(&format!("bearer {key}"))).is_ok());
    }

    #[test]
    fn missing_and_malformed_keys_are_unauthenticated_and_say_what_to_send() {
        let missing = parse_authorization(&MetadataMap::new()).err().unwrap();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().starts_with("missing API key"));
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer rpk_",
            "Bearer sk_abc_def",
            &format!("Bearer rpk_{}_{}", "AB".repeat(16), "00".repeat(32)),
            &format!("Bearer rpk_{}_{}", "ab".repeat(16), "00".repeat(31)),
            &format!("Bearer rpk_{}_{}", "ab".repeat(16), "zz".repeat(32)),
        ] {
            let e = parse_authorization(&with_auth(bad)).err().unwrap();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
            assert!(e.message().starts_with("malformed API key"), "{bad}");
            assert!(e.message().contains("authorization: Bearer"), "{bad}");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_digests() {
        assert!(constant_time_eq(&[1, 2, 3], &[1, 2, 3]));
        assert!(!constant_time_eq(&[1, 2, 3], &[1, 2, 4]));
        assert!(!constant_time_eq(&[1, 2], &[1, 2, 3]));
    }

    #[test]
    fn authorize_refuses_other_workspaces_and_names_the_field_for_garbage() {
        let mine = Uuid::new_v4();
        let caller = Caller {
            workspace_id: WorkspaceId::new(mine),
            key_id: KeyId::generate(),
            scope: Scope::Full,
        };
        assert_eq!(caller.authorize(&mine.to_string()).unwrap().as_uuid(), mine);
        let asked = Uuid::new_v4().to_string();
        let other = caller.authorize(&asked).unwrap_err();
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        assert!(!other.message().contains(&asked), "{}", other.message());
        let garbage = caller.authorize("not-a-uuid").unwrap_err();
        assert_eq!(garbage.code(), tonic::Code::InvalidArgument);
        assert!(garbage.message().starts_with("workspace_id: "));
    }

    #[test]
    fn a_read_only_key_may_call_only_reads_and_a_full_key_anything() {
        for m in READ_METHODS {
            assert!(permits(Scope::ReadOnly, m), "{m}");
            assert!(permits(Scope::Full, m), "{m}");
        }
        for m in WRITE_METHODS {
            assert!(!permits(Scope::ReadOnly, m), "{m}");
            assert!(permits(Scope::Full, m), "{m}");
        }
        // Fail closed: a method classified nowhere, or none at all, is not for read-only keys.
        for m in ["rp.api.v1.Sync/DeleteEverything", "", "Sync/SyncNow"] {
            assert!(!permits(Scope::ReadOnly, m), "{m}");
            assert!(permits(Scope::Full, m), "{m}");
        }
        assert!(
            READ_METHODS.iter().all(|m| !WRITE_METHODS.contains(m)),
            "a method is both read and write"
        );
    }

    #[test]
    fn labels_are_bounded_and_printable() {
        assert_eq!(validate_label("  ci  ").unwrap(), "ci");
        assert!(validate_label(&"x".repeat(101)).is_err());
        assert!(validate_label("a\nb").is_err());
    }

    #[test]
    fn the_plaintext_never_shows_in_debug_output() {
        let k = IssuedKey {
            key_id: KeyId::generate(),
            workspace_id: WorkspaceId::new(Uuid::new_v4()),
            label: "ci".into(),
            scope: Scope::Full,
            plaintext: "rpk_secret".into(),
        };
        assert!(!format!("{k:?}").contains("rpk_secret"));
    }
}
