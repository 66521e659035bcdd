//! The token vault: provider tokens encrypted at rest, handed out to pulls, refreshed before they
//! expire and after a 401, once per connection however many callers ask at the same moment.
//!
//! Coalescing works on the row's `generation`, bumped by every write. A caller that saw
//! generation `g` asks to refresh `g`: it takes the connection's in-process lock (callers in this
//! process queue there), then the vault row's `SELECT ... FOR UPDATE` (replicas queue there),
//! and re-reads. If the generation moved on, someone else already refreshed and the new token is
//! returned as is; otherwise this caller refreshes, stores the new tokens (and a rotated refresh
//! token) and commits. A refused refresh disconnects the connection in that same transaction:
//! the tokens are deleted, the projection says disconnected and ConnectionDisconnected is
//! appended.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rp_platform::contracts::events::v1::{ConnectionDisconnected, envelope::Event};
use rp_platform::eventlog::{self, AppendError, ExpectedVersion, NewEvent};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::clients::Clients;
use crate::clock::ProviderClock;
use crate::crypto::{CryptoError, KeyRing, Sealed};
use crate::domain::failure::RefreshPolicy;
use crate::domain::failure::{refresh_deadline, refusal_cause};
use crate::domain::provider::{GrantRefusal, ProviderError, Secret};
use crate::domain::{ConnectionStatus, DisconnectReason, IntegrationId, Provider};
use crate::providers::oauth::TokenSet;
use crate::store;
use crate::sync::domain::ConnectionFacts;
use crate::sync::store as sync_store;
use rp_platform::ids::WorkspaceId;

/// What is sealed in a vault row.
#[derive(Serialize, Deserialize)]
struct Payload {
    access_token: Secret,
    refresh_token: Option<Secret>,
    /// When the refresh token stops working, in the provider's clock, when it does and we know
    /// (`failure::refresh_deadline`): what tells an expired grant from a revoked one. Rows sealed
    /// before it was kept have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_expires_at: Option<DateTime<Utc>>,
}

/// A usable access token and the generation it belongs to.
#[derive(Debug, Clone)]
pub struct Access {
    pub token: Secret,
    pub generation: i64,
    /// Salesforce: the org's instance URL.
    pub api_base: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The causal chain a vault-initiated event belongs to (the sync run that found the refusal).
#[derive(Debug, Clone, Default)]
pub struct Cause {
    pub correlation_id: String,
    pub causation_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No tokens: the connection is not connected (or was disconnected meanwhile).
    #[error("the connection has no tokens: it is not connected")]
    NotConnected,
    /// The provider refused our refresh token; the connection is now disconnected.
    #[error("the provider refused our authorization ({reason:?}): {provider_message}")]
    Disconnected {
        reason: DisconnectReason,
        provider_message: String,
    },
    /// The token endpoint failed otherwise (outage, bad payload, our configuration).
    #[error(transparent)]
    Provider(ProviderError),
    #[error("token vault: {0}")]
    Crypto(#[from] CryptoError),
    #[error("token vault: {0}")]
    Database(#[from] sqlx::Error),
    #[error("token vault: {0}")]
    Append(#[from] AppendError),
    #[error("token vault: stored tokens are not readable: {0}")]
    Corrupt(String),
}

pub struct Vault {
    pool: PgPool,
    keys: KeyRing,
    clients: Clients,
    refresh_margin: chrono::Duration,
    locks: Mutex<HashMap<IntegrationId, Arc<tokio::sync::Mutex<()>>>>,
    /// The providers' clock, which refresh tokens' deadlines are kept in.
    clock: ProviderClock,
}

impl Vault {
    pub fn new(pool: PgPool, keys: KeyRing, clients: Clients, refresh_margin: Duration) -> Self {
        Self {
            pool,
            keys,
            clients,
            refresh_margin: chrono::Duration::from_std(refresh_margin)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            locks: Mutex::new(HashMap::new()),
            clock: ProviderClock::System,
        }
    }

    /// Reads the providers' clock from `clock` instead of this machine's (the sandbox's).
    pub fn with_provider_clock(mut self, clock: ProviderClock) -> Self {
        self.clock = clock;
        self
    }

    /// The providers' clock now, if it can be read (it only decides what a refusal is told).
    async fn provider_now(&self) -> Option<DateTime<Utc>> {
        match self.clock.now().await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the provider clock");
                None
            }
        }
    }

    /// The refresh token's deadline after `tokens` came from `provider`'s token endpoint.
    async fn deadline_after(
        &self,
        provider: Provider,
        tokens: &TokenSet,
        known: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let policy = self.clients.oauth(provider).refresh_policy();
        if policy == RefreshPolicy::UntilRevoked {
            return None;
        }
        let now = self.provider_now().await;
        refresh_deadline(policy, now, tokens.refresh_token_expires_in, known)
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn seal(&self, id: IntegrationId, payload: &Payload) -> Result<Sealed, VaultError> {
        let json = serde_json::to_vec(payload).map_err(|e| VaultError::Corrupt(e.to_string()))?;
        Ok(self.keys.seal(&json, id.as_uuid().as_bytes())?)
    }

    fn open(&self, id: IntegrationId, sealed: &Sealed) -> Result<Payload, VaultError> {
        let json = self.keys.open(sealed, id.as_uuid().as_bytes())?;
        // serde_json's error names a position, never the content.
        serde_json::from_slice(&json).map_err(|e| VaultError::Corrupt(e.to_string()))
    }

    /// The access and refresh tokens sealed in `sealed` (Disconnect revokes them at the provider).
    pub fn grant_tokens(
        &self,
        id: IntegrationId,
        sealed: &Sealed,
    ) -> Result<(Secret, Option<Secret>), VaultError> {
        let p = self.open(id, sealed)?;
        Ok((p.access_token, p.refresh_token))
    }

    /// Stores the tokens of a completed authorization (inside the caller's transaction).
    pub async fn store_new(
        &self,
        conn: &mut PgConnection,
        id: IntegrationId,
        provider: Provider,
        tokens: &TokenSet,
    ) -> Result<i64, VaultError> {
        let refresh_expires_at = self.deadline_after(provider, tokens, None).await;
        let sealed = self.seal(
            id,
            &Payload {
                access_token: tokens.access_token.clone(),
                refresh_token: tokens.refresh_token.clone(),
                refresh_expires_at,
            },
        )?;
        let expires = expires_at(tokens);
        Ok(store::put_tokens(
            conn,
            id,
            &sealed,
            tokens.instance_url.as_deref(),
            expires,
            false,
        )
        .await?)
    }

    fn lock_for(&self, id: IntegrationId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id).or_default().clone()
    }

    /// An access token for `id`, refreshed first when it expires within the margin.
    pub async fn access(&self, id: IntegrationId, cause: &Cause) -> Result<Access, VaultError> {
        let mut conn = self.pool.acquire().await?;
        let row = store::tokens(&mut conn, id)
            .await?
            .ok_or(VaultError::NotConnected)?;
        drop(conn);
        let expiring = row
            .access_expires_at
            .is_some_and(|t| t - self.refresh_margin <= Utc::now());
        if expiring {
            tracing::info!(integration_id = %id, "access token expires soon: refreshing ahead");
            return self.refresh(id, row.generation, cause).await;
        }
        self.access_of(id, &row)
    }

    /// When a holder of `access` should ask for a token again: the refresh margin before its
    /// expiry, but never before half its remaining life (a margin longer than the provider's
    /// token lifetime must not turn into a refresh per call). `None`: it does not expire.
    pub fn refresh_at(&self, access: &Access) -> Option<DateTime<Utc>> {
        let exp = access.expires_at?;
        let now = Utc::now();
        let half_life = now + (exp - now) / 2;
        Some((exp - self.refresh_margin).max(half_life))
    }

    fn access_of(&self, id: IntegrationId, row: &store::TokenRow) -> Result<Access, VaultError> {
        let payload = self.open(id, &row.sealed)?;
        Ok(Access {
            token: payload.access_token,
            generation: row.generation,
            api_base: row.api_base.clone(),
            expires_at: row.access_expires_at,
        })
    }

    /// Refreshes generation `stale` of `id`'s tokens, or returns the newer generation someone
    /// else already got.
    pub async fn refresh(
        &self,
        id: IntegrationId,
        stale: i64,
        cause: &Cause,
    ) -> Result<Access, VaultError> {
        let local = self.lock_for(id);
        let _local = local.lock().await;
        let mut tx = self.pool.begin().await?;
        let row = store::lock_tokens(&mut tx, id)
            .await?
            .ok_or(VaultError::NotConnected)?;
        if row.generation != stale {
            tracing::debug!(integration_id = %id, "tokens were refreshed meanwhile: using those");
            tx.commit().await?;
            return self.access_of(id, &row);
        }
        let conn = store::connection(&mut tx, id)
            .await?
            .ok_or(VaultError::NotConnected)?;
        let payload = self.open(id, &row.sealed)?;
        let known_deadline = payload.refresh_expires_at;
        let Some(refresh_token) = payload.refresh_token else {
            // Nothing to refresh with: as good as a refused grant.
            let reason = DisconnectReason::AuthorizationExpired;
            let msg = "the provider gave no refresh token".to_string();
            crate::metrics::token_refresh_failed(conn.provider, "no_refresh_token");
            disconnect_in(&mut tx, &conn, reason, &msg, cause).await?;
            tx.commit().await?;
            return Err(VaultError::Disconnected {
                reason,
                provider_message: msg,
            });
        };
        let oauth = self.clients.oauth(conn.provider);
        match oauth.refresh(&refresh_token).await {
            Ok(tokens) => {
                if tokens.refresh_token_rotated {
                    tracing::info!(integration_id = %id, "the provider rotated the refresh token: storing the new one");
                }
                let refresh_expires_at = self
                    .deadline_after(conn.provider, &tokens, known_deadline)
                    .await;
                let sealed = self.seal(
                    id,
                    &Payload {
                        access_token: tokens.access_token.clone(),
                        refresh_token: tokens.refresh_token.clone().or(Some(refresh_token)),
                        refresh_expires_at,
                    },
                )?;
                let expires = expires_at(&tokens);
                let generation = store::put_tokens(
                    &mut tx,
                    id,
                    &sealed,
                    tokens.instance_url.as_deref(),
                    expires,
                    true,
                )
                .await?;
                tx.commit().await?;
                crate::metrics::token_refreshed(conn.provider);
                tracing::info!(integration_id = %id, generation, "access token refreshed");
                Ok(Access {
                    token: tokens.access_token,
                    generation,
                    api_base: tokens.instance_url.or(row.api_base),
                    expires_at: expires,
                })
            }
            Err(ProviderError::GrantRefused {
                reason,
                provider_message,
                ..
            }) => {
                // What the answer says, completed by the refresh token's deadline.
                let now = match reason {
                    GrantRefusal::Unclear => self.provider_now().await,
                    _ => None,
                };
                let reason = refusal_cause(reason, known_deadline, now);
                tracing::warn!(integration_id = %id, provider = %conn.provider, ?reason, %provider_message, "refresh refused: disconnecting");
                crate::metrics::token_refresh_failed(conn.provider, "refused");
                disconnect_in(&mut tx, &conn, reason, &provider_message, cause).await?;
                tx.commit().await?;
                Err(VaultError::Disconnected {
                    reason,
                    provider_message,
                })
            }
            Err(e) => {
                crate::metrics::token_refresh_failed(conn.provider, "provider_error");
                Err(VaultError::Provider(e))
            }
        }
    }

    /// Re-seals a row under the active key when it was sealed under an older one.
    pub async fn rewrap(&self, id: IntegrationId) -> Result<bool, VaultError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = store::lock_tokens(&mut tx, id).await? else {
            return Ok(false);
        };
        if !self.keys.is_stale(&row.sealed) {
            return Ok(false);
        }
        let payload = self.open(id, &row.sealed)?;
        let sealed = self.seal(id, &payload)?;
        store::put_tokens(&mut tx, id, &sealed, None, row.access_expires_at, false).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// What [`rewrap_all`] did, per key id the rows were sealed with. Never a token.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// Rows re-sealed under the active key, by the key id they were sealed with before.
    pub resealed: BTreeMap<String, u64>,
    /// Rows that could not be opened (their key is not in the ring, or they do not decrypt),
    /// by their key id; they are left as they are.
    pub failed: BTreeMap<String, u64>,
}

/// Re-seals every vault row not sealed under the active key (`rp tokens rewrap`), `batch` rows
/// per transaction. Each batch locks its rows as a refresh does (`FOR UPDATE`), so it is safe
/// while connectors run: a refresh in flight finishes first (and has then re-sealed the row
/// under the active key itself, so the re-check skips it). Rows are walked in integration id
/// order, so a row that fails is not retried forever; running it again is harmless.
pub async fn rewrap_all(
    pool: &PgPool,
    keys: &KeyRing,
    batch: i64,
) -> Result<Rewrapped, VaultError> {
    let mut done = Rewrapped::default();
    let mut after = uuid::Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows =
            store::lock_stale_tokens(&mut tx, keys.active_key_id(), after, batch.max(1)).await?;
        let Some(last) = rows.last() else {
            tx.commit().await?;
            return Ok(done);
        };
        after = last.0.as_uuid();
        for (id, row) in &rows {
            let uuid = id.as_uuid();
            let aad = uuid.as_bytes();
            let old = row.sealed.key_id.clone();
            let resealed = keys
                .open(&row.sealed, aad)
                .and_then(|plain| keys.seal(&plain, aad));
            match resealed {
                Ok(sealed) => {
                    store::put_tokens(&mut tx, *id, &sealed, None, row.access_expires_at, false)
                        .await?;
                    *done.resealed.entry(old).or_default() += 1;
                }
                Err(e) => {
                    tracing::warn!(integration_id = %id, key_id = %old, error = %e, "could not re-seal tokens");
                    *done.failed.entry(old).or_default() += 1;
                }
            }
        }
        tx.commit().await?;
    }
}

fn expires_at(tokens: &TokenSet) -> Option<DateTime<Utc>> {
    tokens
        .expires_in
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() + d)
}

/// Marks the connection disconnected, forgets its tokens and appends ConnectionDisconnected, in
/// the caller's transaction. A connection that is not connected is left as it is.
pub async fn disconnect_in(
    conn: &mut PgConnection,
    row: &store::ConnectionRow,
    reason: DisconnectReason,
    provider_message: &str,
    cause: &Cause,
) -> Result<bool, VaultError> {
    let Some(current) = store::lock_connection(conn, row.integration_id).await? else {
        return Ok(false);
    };
    if current.status != ConnectionStatus::Connected {
        return Ok(false);
    }
    store::mark_disconnected(conn, row.integration_id, reason, provider_message).await?;
    store::delete_tokens(conn, row.integration_id).await?;
    let disconnected = Event::ConnectionDisconnected(ConnectionDisconnected {
        provider: row.provider.to_event() as i32,
        reason: reason.to_event() as i32,
        provider_message: provider_message.to_string(),
    });
    let mut event = NewEvent::new(row.workspace_id.to_string(), disconnected.clone())
        .integration(row.integration_id.to_string());
    let ws = WorkspaceId::new(row.workspace_id);
    let facts = ConnectionFacts {
        provider: Some(row.provider),
        connected: false,
    };
    sync_store::lock_integration(conn, row.integration_id, ws, &facts, Utc::now()).await?;
    if !cause.correlation_id.is_empty() {
        event = event
            .correlation(cause.correlation_id.clone())
            .causation(cause.causation_id.clone());
    }
    eventlog::append_in(
        conn,
        &row.integration_id.connection_stream(),
        ExpectedVersion::Any,
        vec![event],
    )
    .await?;
    // The health projection too, in this transaction: whoever disconnected (or whatever sync
    // found the grant refused) reads Disconnected at once, without waiting for the orchestrator.
    sync_store::project_connection(conn, row.integration_id, ws, &disconnected, Utc::now()).await?;
    crate::metrics::disconnected(row.provider, reason);
    Ok(true)
}
