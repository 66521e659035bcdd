//! Connecting, reconnecting and disconnecting integrations: the OAuth authorization-code flow
//! with PKCE (S256) and an unguessable single-use state, the callback that completes it, and
//! the user's Disconnect. Used by the gRPC API (api.rs) and the callback server (callback.rs).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rp_platform::contracts::events::v1::{
    CheckpointReset, ConnectionConnected, ConnectionReconnected, envelope::Event,
};
use rp_platform::eventlog::{self, AppendError, ExpectedVersion, NewEvent};
use sqlx::PgPool;
use uuid::Uuid;

use crate::clients::Clients;
use crate::crypto::Sealed;
use crate::domain::ObjectKind;
use crate::domain::provider::{ProviderError, Secret};
use crate::domain::{ConnectionStatus, DisconnectReason, IntegrationId, Provider, oauth_state};
use crate::providers::oauth::TokenSet;
use crate::store::{self, CompletionLookup, ConnectionRow, StateLookup};
use crate::sync::domain::ConnectionFacts;
use crate::sync::store as sync_store;
use crate::vault::{self, Cause, Vault, VaultError};
use rp_platform::ids::WorkspaceId;

/// How long Disconnect waits for the provider to revoke the grant (the local disconnect is
/// already committed; a provider slower than this is counted as failed).
const REVOKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connections request could not be done; api.rs maps these to gRPC codes.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// The provider did not answer.
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error("{operation}: {cause}")]
    Infra {
        operation: &'static str,
        cause: String,
    },
}

fn infra(operation: &'static str) -> impl Fn(&dyn std::fmt::Display) -> FlowError {
    move |e| FlowError::Infra {
        operation,
        cause: e.to_string(),
    }
}

/// An integration connected by CompleteConnect.
#[derive(Debug, Clone)]
pub struct Completed {
    pub connection: ConnectionRow,
    pub reconnected: bool,
    pub account_changed: bool,
}

/// An authorization to send the browser to.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub integration_id: IntegrationId,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// How a callback ended, for the redirect back to the Connections page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The provider authorized: the page completes it with its own key (CompleteConnect) using
    /// the single-use `completion` handle.
    Authorized {
        provider: Provider,
        integration_id: IntegrationId,
        completion: String,
    },
    /// The user declined on the provider's consent screen.
    Denied {
        provider: Provider,
        integration_id: IntegrationId,
    },
    /// Refused: forged, replayed or expired state, or a broken callback. `reason` is a short
    /// code for the page (`invalid_state`, `state_used`, `state_expired`, ...).
    Refused { reason: &'static str },
    /// The provider's redirect was unusable.
    Failed {
        provider: Provider,
        integration_id: IntegrationId,
        reason: &'static str,
    },
}

impl CallbackOutcome {
    /// The query string for the Connections page.
    pub fn query(&self) -> String {
        match self {
            CallbackOutcome::Authorized {
                provider,
                integration_id,
                completion,
            } => format!(
                "status=authorized&provider={}&integration_id={integration_id}&completion={completion}",
                provider.slug()
            ),
            CallbackOutcome::Denied {
                provider,
                integration_id,
            } => format!(
                "status=denied&provider={}&integration_id={integration_id}",
                provider.slug()
            ),
            CallbackOutcome::Refused { reason } => format!("status=error&reason={reason}"),
            CallbackOutcome::Failed {
                provider,
                integration_id,
                reason,
            } => format!(
                "status=error&reason={reason}&provider={}&integration_id={integration_id}",
                provider.slug()
            ),
        }
    }
}

pub struct ConnectFlow {
    pool: PgPool,
    clients: Clients,
    vault: Arc<Vault>,
    state_ttl: Duration,
    connections_page: String,
}

impl ConnectFlow {
    pub fn new(
        pool: PgPool,
        clients: Clients,
        vault: Arc<Vault>,
        state_ttl: Duration,
        connections_page: String,
    ) -> Self {
        Self {
            pool,
            clients,
            vault,
            state_ttl,
            connections_page,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Where the browser goes after a callback.
    pub fn redirect_for(&self, outcome: &CallbackOutcome) -> String {
        let sep = if self.connections_page.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{}", self.connections_page, outcome.query())
    }

    /// Starts connecting the workspace's integration with `provider` (creating it the first
    /// time; reusing it after a disconnection).
    pub async fn start_connect(
        &self,
        workspace_id: Uuid,
        provider: Provider,
    ) -> Result<Authorization, FlowError> {
        let op = "starting the connection";
        let mut tx = self.pool.begin().await.map_err(|e| infra(op)(&e))?;
        let row = store::ensure_connection(&mut tx, workspace_id, provider)
            .await
            .map_err(|e| infra(op)(&e))?;
        if row.status == ConnectionStatus::Connected {
            return Err(FlowError::FailedPrecondition(format!(
                "the workspace's {provider} integration {} is already connected; disconnect it \
                 first to connect another {provider} account",
                row.integration_id
            )));
        }
        let auth = self.authorize(&mut tx, &row).await?;
        tx.commit().await.map_err(|e| infra(op)(&e))?;
        Ok(auth)
    }

    /// Starts the OAuth flow again on a disconnected integration.
    pub async fn reconnect(
        &self,
        workspace_id: Uuid,
        id: IntegrationId,
    ) -> Result<Authorization, FlowError> {
        let op = "starting the reconnection";
        let mut tx = self.pool.begin().await.map_err(|e| infra(op)(&e))?;
        let row = self.owned(&mut tx, workspace_id, id).await?;
        match row.status {
            ConnectionStatus::Connected => {
                return Err(FlowError::FailedPrecondition(format!(
                    "integration {id} ({}) is connected; there is nothing to reconnect",
                    row.provider
                )));
            }
            ConnectionStatus::Pending => {
                return Err(FlowError::FailedPrecondition(format!(
                    "integration {id} ({}) was never connected; use StartConnect",
                    row.provider
                )));
            }
            ConnectionStatus::Disconnected => {}
        }
        let auth = self.authorize(&mut tx, &row).await?;
        tx.commit().await.map_err(|e| infra(op)(&e))?;
        Ok(auth)
    }

    /// The user's Disconnect: syncing stops, tokens are forgotten, records and checkpoints stay.
    pub async fn disconnect(
        &self,
        workspace_id: Uuid,
        id: IntegrationId,
    ) -> Result<ConnectionRow, FlowError> {
        let op = "disconnecting";
        let mut tx = self.pool.begin().await.map_err(|e| infra(op)(&e))?;
        // Lock order everywhere: vault row, then connection row.
        let tokens = store::lock_tokens(&mut tx, id)
            .await
            .map_err(|e| infra(op)(&e))?;
        let row = self.owned(&mut tx, workspace_id, id).await?;
        if row.status != ConnectionStatus::Connected {
            return Err(FlowError::FailedPrecondition(format!(
                "integration {id} ({}) is not connected",
                row.provider
            )));
        }
        vault::disconnect_in(
            &mut tx,
            &row,
            DisconnectReason::UserRequested,
            "",
            &Cause::default(),
        )
        .await
        .map_err(|e| infra(op)(&e))?;
        let after = store::connection(&mut tx, id)
            .await
            .map_err(|e| infra(op)(&e))?
            .ok_or_else(|| FlowError::NotFound(format!("no integration {id}")))?;
        tx.commit().await.map_err(|e| infra(op)(&e))?;
        tracing::info!(integration_id = %id, provider = %row.provider, "disconnected by the user");
        // Only now, with the disconnect committed: the provider forgets the grant too. Its
        // failure is logged and counted, never the user's (the connection is disconnected here
        // whatever the provider says; the user can also remove the app there).
        if let Some(tokens) = tokens {
            self.revoke_at_provider(id, row.provider, &tokens.sealed)
                .await;
        }
        Ok(after)
    }

    /// Revokes the grant sealed in `sealed` at `provider` (after a Disconnect), within
    /// [`REVOKE_TIMEOUT`].
    async fn revoke_at_provider(&self, id: IntegrationId, provider: Provider, sealed: &Sealed) {
        let (access, refresh) = match self.vault.grant_tokens(id, sealed) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(integration_id = %id, %provider, error = %e, "could not read the tokens to revoke them at the provider");
                crate::metrics::grant_revocation(provider, "failed");
                return;
            }
        };
        let oauth = self.clients.oauth(provider);
        match tokio::time::timeout(REVOKE_TIMEOUT, oauth.revoke(&access, refresh.as_ref())).await {
            Ok(Ok(true)) => {
                tracing::info!(integration_id = %id, %provider, "grant revoked at the provider");
                crate::metrics::grant_revocation(provider, "revoked");
            }
            Ok(Ok(false)) => {
                tracing::info!(integration_id = %id, %provider, "nothing to revoke at the provider");
                crate::metrics::grant_revocation(provider, "skipped");
            }
            Ok(Err(e)) => {
                tracing::warn!(integration_id = %id, %provider, error = %e, "the provider did not revoke the grant; the connection is disconnected anyway");
                crate::metrics::grant_revocation(provider, "failed");
            }
            Err(_) => {
                tracing::warn!(integration_id = %id, %provider, "the provider did not answer the revocation in time; the connection is disconnected anyway");
                crate::metrics::grant_revocation(provider, "failed");
            }
        }
    }

    pub async fn get(
        &self,
        workspace_id: Uuid,
        id: IntegrationId,
    ) -> Result<ConnectionRow, FlowError> {
        let op = "reading the connection";
        let mut conn = self.pool.acquire().await.map_err(|e| infra(op)(&e))?;
        self.owned(&mut conn, workspace_id, id).await
    }

    pub async fn list(&self, workspace_id: Uuid) -> Result<Vec<ConnectionRow>, FlowError> {
        store::list_connections(&self.pool, workspace_id)
            .await
            .map_err(|e| infra("listing connections")(&e))
    }

    /// The integration, when it belongs to the workspace (another workspace's is NOT_FOUND too,
    /// so ids of other workspaces cannot be probed).
    async fn owned(
        &self,
        conn: &mut sqlx::PgConnection,
        workspace_id: Uuid,
        id: IntegrationId,
    ) -> Result<ConnectionRow, FlowError> {
        match store::lock_connection(conn, id).await {
            Ok(Some(row)) if row.workspace_id == workspace_id => Ok(row),
            Ok(_) => Err(FlowError::NotFound(format!(
                "workspace {workspace_id} has no integration {id}"
            ))),
            Err(e) => Err(infra("reading the connection")(&e)),
        }
    }

    async fn authorize(
        &self,
        conn: &mut sqlx::PgConnection,
        row: &ConnectionRow,
    ) -> Result<Authorization, FlowError> {
        let op = "starting the authorization";
        let state = oauth_state::generate();
        let hash = oauth_state::hash(&state).ok_or_else(|| FlowError::Infra {
            operation: op,
            cause: "generated state is malformed".into(),
        })?;
        let start = self.clients.oauth(row.provider).authorize_url(&state);
        let verifier = self
            .vault
            .keys()
            .seal(start.pkce_verifier.expose().as_bytes(), &hash)
            .map_err(|e| infra(op)(&e))?;
        let expires_at = self.expiry();
        store::insert_state(
            conn,
            store::NewState {
                state_sha256: &hash,
                workspace_id: row.workspace_id,
                integration_id: row.integration_id,
                provider: row.provider,
                verifier: &verifier,
                expires_at,
            },
        )
        .await
        .map_err(|e| infra(op)(&e))?;
        tracing::info!(integration_id = %row.integration_id, provider = %row.provider, "authorization started");
        Ok(Authorization {
            integration_id: row.integration_id,
            url: start.url,
            expires_at,
        })
    }

    /// The provider's redirect (the callback's query string): checks and uses up the state, and
    /// keeps the code, sealed, for the Connections page to complete with its own key
    /// ([`ConnectFlow::finish`]). Nothing is exchanged or connected here: the browser that
    /// brings the code back may not be the one that started the flow (issue 15.8).
    pub async fn complete(&self, query: &str) -> Result<CallbackOutcome, FlowError> {
        let op = "receiving the authorization";
        let state = form_value(query, "state");
        let Some(hash) = state.as_deref().and_then(oauth_state::hash) else {
            tracing::warn!("OAuth callback without a state we could have issued: refused");
            return Ok(CallbackOutcome::Refused {
                reason: "invalid_state",
            });
        };
        let mut tx = self.pool.begin().await.map_err(|e| infra(op)(&e))?;
        let lookup = store::consume_state(&mut tx, &hash)
            .await
            .map_err(|e| infra(op)(&e))?;
        let st = match lookup {
            StateLookup::Valid(st) => st,
            StateLookup::Unknown => {
                tracing::warn!("OAuth callback with an unknown state: refused");
                return Ok(CallbackOutcome::Refused {
                    reason: "invalid_state",
                });
            }
            StateLookup::Used => {
                tracing::warn!("OAuth callback replayed a used state: refused");
                return Ok(CallbackOutcome::Refused {
                    reason: "state_used",
                });
            }
            StateLookup::Expired => {
                tx.commit().await.map_err(|e| infra(op)(&e))?;
                tracing::warn!("OAuth callback with an expired state: refused");
                return Ok(CallbackOutcome::Refused {
                    reason: "state_expired",
                });
            }
        };
        let (provider, id) = (st.provider, st.integration_id);
        let outcome = match self.clients.oauth(provider).parse_callback(query) {
            Ok(callback) => {
                let completion = oauth_state::generate();
                let completion_hash =
                    oauth_state::hash(&completion).ok_or_else(|| FlowError::Infra {
                        operation: op,
                        cause: "generated completion handle is malformed".into(),
                    })?;
                let code = self
                    .vault
                    .keys()
                    .seal(callback.code.expose().as_bytes(), &completion_hash)
                    .map_err(|e| infra(op)(&e))?;
                store::hold_code(&mut tx, &hash, &completion_hash, &code, self.expiry())
                    .await
                    .map_err(|e| infra(op)(&e))?;
                tracing::info!(integration_id = %id, %provider, "authorization received; waiting for the Connections page to complete it");
                CallbackOutcome::Authorized {
                    provider,
                    integration_id: id,
                    completion,
                }
            }
            Err(ProviderError::Denied { error, .. }) => {
                tracing::info!(integration_id = %id, %provider, %error, "the user declined the authorization");
                CallbackOutcome::Denied {
                    provider,
                    integration_id: id,
                }
            }
            Err(e) => {
                tracing::warn!(integration_id = %id, %provider, error = %e, "unusable OAuth callback");
                CallbackOutcome::Failed {
                    provider,
                    integration_id: id,
                    reason: "invalid_callback",
                }
            }
        };
        tx.commit().await.map_err(|e| infra(op)(&e))?;
        Ok(outcome)
    }

    /// When a state or a held code issued now expires.
    fn expiry(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.state_ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(10))
    }

    /// CompleteConnect: completes the authorization held under `completion` (the SHA-256 of the
    /// handle the callback gave the browser), for `workspace_id`, the caller's. Only the
    /// workspace that started the flow completes it; a handle of another workspace is spent and
    /// answers as an unknown one. A connected integration's tokens and account are never
    /// replaced by a second authorization.
    pub async fn finish(
        &self,
        workspace_id: Uuid,
        completion: &[u8; 32],
    ) -> Result<Completed, FlowError> {
        let op = "completing the authorization";
        let mut tx = self.pool.begin().await.map_err(|e| infra(op)(&e))?;
        let lookup = store::take_completion(&mut tx, completion, workspace_id)
            .await
            .map_err(|e| infra(op)(&e))?;
        tx.commit().await.map_err(|e| infra(op)(&e))?;
        let held = match lookup {
            CompletionLookup::Valid(held) => held,
            CompletionLookup::Unknown => return Err(FlowError::NotFound(NOT_WAITING.into())),
            CompletionLookup::Foreign { provider } => {
                tracing::warn!(
                    alert = "oauth_link_forwarded",
                    %workspace_id,
                    %provider,
                    "an authorization started in another workspace was brought back to this one: refused and spent (a connect link sent to someone else?)"
                );
                crate::metrics::oauth_completion(provider, "foreign_workspace");
                return Err(FlowError::NotFound(NOT_WAITING.into()));
            }
            CompletionLookup::Used => {
                return Err(FlowError::FailedPrecondition(
                    "this authorization was already completed; nothing more to do".into(),
                ));
            }
            CompletionLookup::Expired => {
                return Err(FlowError::FailedPrecondition(
                    "the authorization took too long to complete and has expired; click Connect \
                     (or Reconnect) again"
                        .into(),
                ));
            }
        };
        let st = held.state;
        let (provider, id) = (st.provider, st.integration_id);
        let refused = |why: String| {
            crate::metrics::oauth_completion(provider, "refused");
            FlowError::FailedPrecondition(why)
        };
        // No exchange for a connection that cannot take it.
        if self.get(workspace_id, id).await?.status == ConnectionStatus::Connected {
            return Err(refused(already_connected(provider, id)));
        }
        let open = |sealed: &Sealed, aad: &[u8]| -> Result<Secret, FlowError> {
            let bytes = self
                .vault
                .keys()
                .open(sealed, aad)
                .map_err(|e| infra(op)(&e))?;
            Ok(Secret::new(
                String::from_utf8(bytes).map_err(|e| infra(op)(&e))?,
            ))
        };
        let code = open(&held.code, completion)?;
        let verifier = open(&st.verifier, &held.state_sha256)?;
        let oauth = self.clients.oauth(provider);
        let tokens = match oauth.exchange_code(&code, &verifier).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(integration_id = %id, %provider, error = %e, "code exchange failed");
                crate::metrics::oauth_completion(provider, "failed");
                return Err(match e {
                    ProviderError::Outage { .. } => FlowError::ProviderUnavailable(format!(
                        "{provider} did not answer while completing the authorization; click \
                         Connect (or Reconnect) again in a moment"
                    )),
                    ProviderError::BadPayload { detail, .. }
                        if detail
                            .starts_with(crate::providers::salesforce::UNTRUSTED_INSTANCE_URL) =>
                    {
                        FlowError::FailedPrecondition(format!(
                            "Salesforce sent us to a server that is not Salesforce ({detail}); no \
                             access was kept"
                        ))
                    }
                    e => FlowError::FailedPrecondition(format!(
                        "{provider} did not give us access ({e}); click Connect (or Reconnect) \
                         again"
                    )),
                });
            }
        };
        let mut scopes: Vec<String> = tokens
            .scope
            .as_deref()
            .unwrap_or_default()
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let (external, info_scopes) = self.account_of(provider, id, &tokens).await;
        if scopes.is_empty() {
            scopes = info_scopes;
        }

        let mut tx = self.pool.begin().await.map_err(|e| infra(op)(&e))?;
        store::lock_tokens(&mut tx, id)
            .await
            .map_err(|e| infra(op)(&e))?;
        let row = store::lock_connection(&mut tx, id)
            .await
            .map_err(|e| infra(op)(&e))?
            .ok_or_else(|| FlowError::NotFound(format!("no integration {id}")))?;
        if row.status == ConnectionStatus::Connected {
            // Connected by another authorization since the check above: this one is not used,
            // and the provider forgets the grant it just made.
            drop(tx);
            self.revoke_unused(id, provider, &tokens).await;
            return Err(refused(already_connected(provider, id)));
        }
        self.vault
            .store_new(&mut tx, id, provider, &tokens)
            .await
            .map_err(|e: VaultError| infra(op)(&e))?;
        store::mark_connected(&mut tx, id, &external, &scopes)
            .await
            .map_err(|e| infra(op)(&e))?;
        let p = provider.to_event() as i32;
        let changed = account_change(&row.external_account_id, &external, &tokens);
        let event = match row.status {
            ConnectionStatus::Pending => Event::ConnectionConnected(ConnectionConnected {
                provider: p,
                external_account_id: external.clone(),
                scopes: scopes.clone(),
            }),
            _ => Event::ConnectionReconnected(ConnectionReconnected {
                provider: p,
                external_account_id: external.clone(),
                previous_external_account_id: changed.unwrap_or_default().to_string(),
            }),
        };
        let reconnected = row.status == ConnectionStatus::Disconnected;
        if let Some(previous) = changed {
            tracing::warn!(integration_id = %id, %provider, previous, current = %external, "authorized for another account: its checkpoints are reset and it is pulled in full");
            reset_checkpoints(&mut tx, id, provider, st.workspace_id, previous, &external)
                .await
                .map_err(|e: AppendError| infra(op)(&e))?;
        }
        let facts = ConnectionFacts {
            provider: Some(provider),
            connected: true,
        };
        let ws = WorkspaceId::new(st.workspace_id);
        sync_store::lock_integration(&mut tx, id, ws, &facts, Utc::now())
            .await
            .map_err(|e| infra(op)(&e))?;
        eventlog::append_in(
            &mut tx,
            &id.connection_stream(),
            ExpectedVersion::Any,
            vec![
                NewEvent::new(st.workspace_id.to_string(), event.clone())
                    .integration(id.to_string()),
            ],
        )
        .await
        .map_err(|e: AppendError| infra(op)(&e))?;
        // The health projection too, in this transaction: the page says Connected at once,
        // without waiting for the orchestrator.
        sync_store::project_connection(&mut tx, id, ws, &event, Utc::now())
            .await
            .map_err(|e| infra(op)(&e))?;
        let connection = store::connection(&mut tx, id)
            .await
            .map_err(|e| infra(op)(&e))?
            .ok_or_else(|| FlowError::NotFound(format!("no integration {id}")))?;
        tx.commit().await.map_err(|e| infra(op)(&e))?;
        crate::metrics::oauth_completion(provider, "connected");
        tracing::info!(integration_id = %id, %provider, reconnected, "authorization completed");
        Ok(Completed {
            connection,
            reconnected,
            account_changed: changed.is_some(),
        })
    }

    /// Revokes at the provider a grant we will not use (an authorization that lost the race to
    /// connect the integration), within [`REVOKE_TIMEOUT`]; a failure is logged only.
    async fn revoke_unused(&self, id: IntegrationId, provider: Provider, tokens: &TokenSet) {
        let oauth = self.clients.oauth(provider);
        let revoke = oauth.revoke(&tokens.access_token, tokens.refresh_token.as_ref());
        match tokio::time::timeout(REVOKE_TIMEOUT, revoke).await {
            Ok(Ok(_)) => {
                tracing::info!(integration_id = %id, %provider, "unused grant revoked at the provider")
            }
            Ok(Err(e)) => {
                tracing::warn!(integration_id = %id, %provider, error = %e, "could not revoke an unused grant at the provider")
            }
            Err(_) => {
                tracing::warn!(integration_id = %id, %provider, "the provider did not answer the revocation of an unused grant in time")
            }
        }
    }
}

/// CompleteConnect's answer for a handle that is not waiting in the caller's workspace (never
/// issued, or started in another workspace: alike, so neither can be told apart).
const NOT_WAITING: &str = "no authorization started in this workspace is waiting for this \
    completion, so nothing was connected. If you followed a connect link someone sent you, \
    ignore it: click Connect on your own Connections page instead.";

fn already_connected(provider: Provider, id: IntegrationId) -> String {
    format!(
        "the workspace's {provider} integration {id} is already connected, so this \
         authorization was not used; disconnect it first to connect another {provider} account"
    )
}

impl ConnectFlow {
    /// Which provider account the tokens are for, and the scopes the provider's metadata names
    /// (HubSpot's token answer does not): the HubSpot portal (its token metadata), the Salesforce
    /// org (the identity URL of the token answer) or the LinkedIn member (their ad account
    /// roles). Empty when the provider does not say; not knowing it does not stop the connection.
    async fn account_of(
        &self,
        provider: Provider,
        id: IntegrationId,
        tokens: &TokenSet,
    ) -> (String, Vec<String>) {
        match provider {
            Provider::Hubspot => match self
                .clients
                .hubspot()
                .token_info(&tokens.access_token)
                .await
            {
                Ok(info) => (info.hub_id, info.scopes),
                Err(e) => {
                    tracing::warn!(integration_id = %id, error = %e, "could not read HubSpot's token metadata");
                    (String::new(), Vec::new())
                }
            },
            Provider::Salesforce => (
                tokens
                    .identity
                    .as_deref()
                    .and_then(salesforce_org)
                    .or_else(|| tokens.instance_url.clone())
                    .unwrap_or_default(),
                Vec::new(),
            ),
            Provider::Linkedin => match self
                .clients
                .linkedin()
                .authenticated_member(&tokens.access_token)
                .await
            {
                Ok(member) => (member.unwrap_or_default(), Vec::new()),
                Err(e) => {
                    tracing::warn!(integration_id = %id, error = %e, "could not read which LinkedIn member authorized");
                    (String::new(), Vec::new())
                }
            },
        }
    }
}

/// The org id of a Salesforce identity URL (`https://login.salesforce.com/id/<org>/<user>`).
fn salesforce_org(identity: &str) -> Option<String> {
    let mut parts = identity.split("/id/").nth(1)?.split('/');
    let org = parts.next()?.trim();
    (org.len() >= 15 && org.chars().all(|c| c.is_ascii_alphanumeric())).then(|| org.to_string())
}

/// The account the integration synced before, when the new authorization is for another one:
/// both known and unequal. A Salesforce connection made before the org id was recorded holds
/// its instance URL: compared with the new instance URL then.
fn account_change<'a>(stored: &'a str, now: &str, tokens: &TokenSet) -> Option<&'a str> {
    let stored_trim = stored.trim();
    if stored_trim.is_empty() || now.trim().is_empty() {
        return None;
    }
    let now = if stored_trim.starts_with("http") {
        tokens.instance_url.as_deref().unwrap_or(now)
    } else {
        now
    };
    (stored_trim != now.trim()).then_some(stored)
}

/// Drops the checkpoints of every object the provider's pulls keep one for (deletions
/// included), so the next sync reads the new account in full.
async fn reset_checkpoints(
    tx: &mut sqlx::PgConnection,
    id: IntegrationId,
    provider: Provider,
    workspace_id: Uuid,
    previous: &str,
    current: &str,
) -> Result<(), AppendError> {
    let reason = format!("account changed from {previous} to {current}");
    let kinds: &[ObjectKind] = match provider {
        Provider::Linkedin => &[
            ObjectKind::LinkedinEngagement,
            ObjectKind::LinkedinOrganization,
        ],
        Provider::Hubspot | Provider::Salesforce => &[
            ObjectKind::CrmCompany,
            ObjectKind::CrmContact,
            ObjectKind::CrmDeal,
            ObjectKind::CrmPipeline,
        ],
    };
    for kind in kinds {
        let mut streams = vec![id.checkpoint_stream(kind.slug())];
        if provider != Provider::Linkedin {
            streams.push(id.deletions_checkpoint_stream(kind.slug()));
        }
        for stream in streams {
            let reset = Event::CheckpointReset(CheckpointReset {
                object_type: kind.to_event() as i32,
                reason: reason.clone(),
            });
            eventlog::append_in(
                &mut *tx,
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::new(workspace_id.to_string(), reset).integration(id.to_string())],
            )
            .await?;
        }
    }
    Ok(())
}

/// The first value of `key` in an `application/x-www-form-urlencoded` query.
fn form_value(query: &str, key: &str) -> Option<String> {
    oauth2::url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(instance_url: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: Secret::new(String::from("a")),
            refresh_token: None,
            refresh_token_rotated: false,
            expires_in: None,
            refresh_token_expires_in: None,
            scope: None,
            instance_url: instance_url.map(String::from),
            identity: None,
        }
    }

    #[test]
    fn a_salesforce_identity_url_names_the_org() {
        assert_eq!(
            salesforce_org("https://login.salesforce.com/id/00D5e000000AbCdEAK/0055e000001XyZ1AAK")
                .as_deref(),
            Some("00D5e000000AbCdEAK")
        );
        assert_eq!(salesforce_org("https://login.salesforce.com/"), None);
        assert_eq!(salesforce_org("https://x/id/short/005"), None);
    }

    #[test]
    fn only_two_known_unequal_accounts_are_a_change() {
        let t = tokens(None);
        assert_eq!(account_change("4242424", "4242425", &t), Some("4242424"));
        assert_eq!(account_change("4242424", "4242424", &t), None);
        assert_eq!(account_change("", "4242425", &t), None, "not known before");
        assert_eq!(account_change("4242424", "", &t), None, "not known now");
        // A Salesforce connection made when the instance URL was recorded: compared as such.
        let sf = tokens(Some("https://acme.my.salesforce.com"));
        assert_eq!(
            account_change("https://acme.my.salesforce.com", "00D5e000000AbCdEAK", &sf),
            None
        );
        assert_eq!(
            account_change("https://other.my.salesforce.com", "00D5e000000AbCdEAK", &sf),
            Some("https://other.my.salesforce.com")
        );
    }

    #[test]
    fn outcomes_become_page_queries_without_secrets() {
        let id = IntegrationId::new(Uuid::nil());
        let q = CallbackOutcome::Authorized {
            provider: Provider::Hubspot,
            integration_id: id,
            completion: "h".repeat(43),
        }
        .query();
        assert_eq!(
            q,
            format!(
                "status=authorized&provider=hubspot&integration_id=00000000-0000-0000-0000-000000000000&completion={}",
                "h".repeat(43)
            )
        );
        assert_eq!(
            CallbackOutcome::Refused {
                reason: "state_used"
            }
            .query(),
            "status=error&reason=state_used"
        );
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(
            form_value("a=1&state=x%2By", "state").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_value("a=1", "state"), None);
    }
}
