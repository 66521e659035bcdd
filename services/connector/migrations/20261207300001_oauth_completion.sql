-- Issue 15.8: an OAuth connect link works only for the workspace that started it. The callback no
-- longer exchanges the code: it keeps the code here, sealed under a single-use completion handle
-- (only its SHA-256 is kept), and sends the browser to the Connections page with the handle; the
-- page completes it with its own API key (CompleteConnect), which must be of the workspace that
-- started the flow (services/connector/src/connect.rs, docs/security.md).
ALTER TABLE connector_oauth_states
    ADD COLUMN IF NOT EXISTS completion_sha256     BYTEA UNIQUE,
    ADD COLUMN IF NOT EXISTS code_key_id           TEXT,
    ADD COLUMN IF NOT EXISTS code_nonce            BYTEA,
    ADD COLUMN IF NOT EXISTS code                  BYTEA,
    ADD COLUMN IF NOT EXISTS completion_expires_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS completed_at          TIMESTAMPTZ;
