-- API keys: the projection of ApiKeyIssued / ApiKeyRevoked (stream `workspace-<id>`), written in
-- the same transaction as the append (services/platform/src/apikeys.rs). Only the SHA-256 of a
-- key's secret is kept; the secret itself is shown once, when issued.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id        TEXT PRIMARY KEY,
    workspace_id  UUID NOT NULL,
    -- hex SHA-256 of the 32-byte secret
    secret_sha256 TEXT NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    label         TEXT NOT NULL DEFAULT '',
    revoked_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS api_keys_workspace ON api_keys (workspace_id, created_at);
