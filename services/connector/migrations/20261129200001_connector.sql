-- The connector's tables: connections (projection of ConnectionConnected / Disconnected /
-- Reconnected, written in the same transaction as the append), the token vault (AES-256-GCM,
-- see src/crypto.rs), pending OAuth authorizations, workspaces' plans, and pull jobs.
-- Checkpoints are NOT here: they are read from the event log (streams checkpoint-<id>-<object>).

CREATE TABLE IF NOT EXISTS connector_connections (
    integration_id      UUID PRIMARY KEY,
    workspace_id        UUID NOT NULL,
    provider            TEXT NOT NULL CHECK (provider IN ('linkedin', 'hubspot', 'salesforce')),
    status              TEXT NOT NULL CHECK (status IN ('pending', 'connected', 'disconnected')),
    external_account_id TEXT NOT NULL DEFAULT '',
    scopes              TEXT[] NOT NULL DEFAULT '{}',
    -- first authorization completed
    connected_at        TIMESTAMPTZ,
    -- latest authorization (first or re-) completed
    authorized_at       TIMESTAMPTZ,
    disconnected_at     TIMESTAMPTZ,
    disconnect_reason   TEXT CHECK (disconnect_reason IN ('user_requested', 'revoked', 'expired')),
    provider_message    TEXT NOT NULL DEFAULT '',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- one integration per workspace and provider
    UNIQUE (workspace_id, provider)
);

-- Tokens, encrypted: `ciphertext` is the sealed JSON {"access_token","refresh_token"} under key
-- `key_id`, with the integration id as associated data. Never a plaintext token anywhere.
CREATE TABLE IF NOT EXISTS connector_tokens (
    integration_id    UUID PRIMARY KEY REFERENCES connector_connections (integration_id),
    key_id            TEXT NOT NULL,
    nonce             BYTEA NOT NULL,
    ciphertext        BYTEA NOT NULL,
    -- Salesforce: the org's instance_url (not a secret)
    api_base          TEXT,
    -- NULL when the provider does not say (Salesforce): refreshed on a 401 only
    access_expires_at TIMESTAMPTZ,
    -- bumped by every write: concurrent refreshes of one generation coalesce into one
    generation        BIGINT NOT NULL DEFAULT 1,
    refreshed_at      TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Authorizations in flight. Only the SHA-256 of the state is kept; the PKCE verifier is sealed
-- with the state hash as associated data. Single use: `used_at` is set atomically.
CREATE TABLE IF NOT EXISTS connector_oauth_states (
    state_sha256   BYTEA PRIMARY KEY,
    workspace_id   UUID NOT NULL,
    integration_id UUID NOT NULL REFERENCES connector_connections (integration_id),
    provider       TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    nonce          BYTEA NOT NULL,
    verifier       BYTEA NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS connector_oauth_states_expiry ON connector_oauth_states (expires_at);

-- Workspaces' plans (projection of WorkspaceCreated): the lookback windows come from RP_PLANS.
CREATE TABLE IF NOT EXISTS connector_workspaces (
    workspace_id UUID PRIMARY KEY,
    plan         TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per requested pull (SyncRequested), written by the consumer in its transaction; run
-- by a pull worker outside any consumer transaction, under a lease it renews.
CREATE TABLE IF NOT EXISTS pull_jobs (
    sync_run_id    TEXT PRIMARY KEY,
    integration_id UUID NOT NULL,
    workspace_id   UUID NOT NULL,
    -- the SyncRequested's correlation id (= the run) and event id, and its trace context
    correlation_id TEXT NOT NULL,
    causation_id   TEXT NOT NULL,
    traceparent    TEXT NOT NULL DEFAULT '',
    tracestate     TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'failed')),
    lease_owner    TEXT,
    lease_until    TIMESTAMPTZ,
    attempts       INT NOT NULL DEFAULT 0,
    -- 'completed', or the failure kind
    outcome        TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ
);
-- Only one pull per integration runs at a time, whichever process claims it.
CREATE UNIQUE INDEX IF NOT EXISTS pull_jobs_one_running_per_integration
    ON pull_jobs (integration_id) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS pull_jobs_runnable
    ON pull_jobs (created_at) WHERE state IN ('queued', 'running');
