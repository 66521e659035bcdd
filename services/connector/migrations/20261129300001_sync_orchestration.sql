-- Sync orchestration projection (services/connector/src/runs.rs): the Connections page's health,
-- and each sync run step by step. Rebuilt from the event log by replaying it.

CREATE TABLE IF NOT EXISTS sync_integrations (
    integration_id      TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL,
    provider            INT NOT NULL DEFAULT 0,
    connected           BOOLEAN NOT NULL,
    disconnect_reason   INT NOT NULL DEFAULT 0,
    provider_message    TEXT NOT NULL DEFAULT '',
    schedule_local_time TEXT NOT NULL,
    schedule_time_zone  TEXT NOT NULL,
    -- The latest daily slot already handled (run, joined or deliberately skipped).
    handled_slot        TIMESTAMPTZ,
    -- When a missed slot's catch-up is due (now + the workspace's jitter, set when noticed).
    catch_up_at         TIMESTAMPTZ,
    last_success_at     TIMESTAMPTZ,
    last_attempt_at     TIMESTAMPTZ,
    last_outcome        TEXT NOT NULL DEFAULT '',
    active_run_id       TEXT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sync_integrations_workspace ON sync_integrations (workspace_id);

CREATE TABLE IF NOT EXISTS sync_runs (
    sync_run_id      TEXT PRIMARY KEY,
    integration_id   TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    provider         INT NOT NULL DEFAULT 0,
    trigger          INT NOT NULL DEFAULT 0,
    -- requested | running | completed | failed | interrupted
    state            TEXT NOT NULL,
    current_step     INT NOT NULL DEFAULT 0,
    failure_kind     INT NOT NULL DEFAULT 0,
    failure_message  TEXT NOT NULL DEFAULT '',
    failure_location TEXT NOT NULL DEFAULT '',
    next_attempt_at  TIMESTAMPTZ,
    requested_at     TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS sync_runs_integration ON sync_runs (integration_id, requested_at DESC, sync_run_id DESC);

CREATE TABLE IF NOT EXISTS sync_run_steps (
    sync_run_id  TEXT NOT NULL,
    step         INT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    records      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sync_run_id, step)
);
