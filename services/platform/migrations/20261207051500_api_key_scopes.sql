-- API key scopes (issue 15.3): a key is `full` (every method, as every key was before) or
-- `read_only` (it may read, never change the workspace: no Sync Now, Disconnect, schedule change,
-- match decision...). Existing keys keep working as they did: the default is `full`. The scope
-- is recorded in the ApiKeyIssued event too, so the projection can be rebuilt from the log
-- (an event without one is a full key).
ALTER TABLE api_keys
    ADD COLUMN IF NOT EXISTS scope TEXT NOT NULL DEFAULT 'full'
        CHECK (scope IN ('full', 'read_only'));
