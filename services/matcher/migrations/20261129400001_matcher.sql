-- The matcher's projection (services/matcher/src/store.rs): the records it matches, the manual
-- decisions, and the current matches and review cases, per workspace.

CREATE TABLE IF NOT EXISTS matcher_workspaces (
    workspace_id TEXT PRIMARY KEY,
    -- Bumped by every change, so a replica knows whether its in-memory index is current.
    version      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS matcher_crm (
    workspace_id TEXT NOT NULL,
    crm_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    domain       TEXT,
    website      TEXT,
    country      TEXT,
    deleted      BOOLEAN NOT NULL DEFAULT false,
    -- Changed since the last matching step.
    dirty        BOOLEAN NOT NULL DEFAULT true,
    PRIMARY KEY (workspace_id, crm_id)
);

CREATE TABLE IF NOT EXISTS matcher_linkedin (
    workspace_id TEXT NOT NULL,
    linkedin_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    vanity_name  TEXT,
    website      TEXT,
    country      TEXT,
    dirty        BOOLEAN NOT NULL DEFAULT true,
    PRIMARY KEY (workspace_id, linkedin_id)
);

CREATE TABLE IF NOT EXISTS matcher_decisions (
    workspace_id TEXT NOT NULL,
    linkedin_id  TEXT NOT NULL,
    crm_id       TEXT NOT NULL,
    decision     INT NOT NULL,
    decided_by   TEXT NOT NULL DEFAULT '',
    decided_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, linkedin_id, crm_id)
);

CREATE TABLE IF NOT EXISTS matcher_matches (
    workspace_id TEXT NOT NULL,
    linkedin_id  TEXT NOT NULL,
    crm_id       TEXT NOT NULL,
    method       INT NOT NULL,
    score        DOUBLE PRECISION NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (workspace_id, linkedin_id, crm_id)
);

CREATE TABLE IF NOT EXISTS matcher_reviews (
    workspace_id TEXT NOT NULL,
    linkedin_id  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    -- [{crm_id, crm_name, method, score, reason}]
    candidates   JSONB NOT NULL,
    PRIMARY KEY (workspace_id, linkedin_id)
);
