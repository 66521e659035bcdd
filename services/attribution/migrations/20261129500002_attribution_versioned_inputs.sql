-- Versioned inputs instead of per-deal snapshots (services/attribution/src/store.rs).
--
-- A dashboard version used to carry a JSON copy of every deal's touches, matches and credits per
-- window, which made the switch slow for a large workspace. Now:
-- * Engagement rows are versioned in place: a row is part of every dashboard version from
--   `valid_from` up to (not including) `valid_to`. A changed row is closed and a new one opened
--   at the pending version, so the numbers' inputs of the current and previous versions stay
--   readable without copying 200,000 rows each sync.
-- * The small inputs (deals, pipeline stages, matches) are copied per version, in SQL.
-- * The drill-down recomputes a deal's touches and credit from its version's inputs with the same
--   code that computed the numbers; a version stores only which deals count where.
--
-- Versions written before this migration lack the copies: they are dropped, and each workspace's
-- numbers come back with its next completed sync (or `attribution rebuild` now).

ALTER TABLE attribution_engagement ADD COLUMN IF NOT EXISTS valid_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attribution_engagement ADD COLUMN IF NOT EXISTS valid_to BIGINT;
ALTER TABLE attribution_engagement ALTER COLUMN valid_from DROP DEFAULT;
ALTER TABLE attribution_engagement DROP CONSTRAINT IF EXISTS attribution_engagement_pkey;
ALTER TABLE attribution_engagement
    ADD PRIMARY KEY (workspace_id, organization_id, campaign_id, day, valid_from);
CREATE INDEX IF NOT EXISTS attribution_engagement_current
    ON attribution_engagement (workspace_id, organization_id) WHERE valid_to IS NULL;

DELETE FROM attribution_versions;
DELETE FROM attribution_window_numbers;
DELETE FROM attribution_metric_totals;
DELETE FROM attribution_metric_amounts;
DELETE FROM attribution_campaign_credits;
UPDATE attribution_workspaces SET current_version = NULL;

-- Deals as they were at a version: a copy of attribution_deals.
DROP TABLE IF EXISTS attribution_version_deals;
CREATE TABLE attribution_version_deals (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    deal_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    amount       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    stage_id     TEXT NOT NULL,
    pipeline_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ,
    closed_at    TIMESTAMPTZ,
    company_ids  TEXT[] NOT NULL,
    PRIMARY KEY (workspace_id, version, deal_id)
);

CREATE TABLE IF NOT EXISTS attribution_version_stages (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    pipeline_id  TEXT NOT NULL,
    stage_id     TEXT NOT NULL,
    kind         SMALLINT NOT NULL,
    PRIMARY KEY (workspace_id, version, pipeline_id, stage_id)
);

CREATE TABLE IF NOT EXISTS attribution_version_matches (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    linkedin_id  TEXT NOT NULL,
    crm_id       TEXT NOT NULL,
    method       INT NOT NULL,
    score        DOUBLE PRECISION NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (workspace_id, version, linkedin_id, crm_id)
);
CREATE INDEX IF NOT EXISTS attribution_version_matches_by_account
    ON attribution_version_matches (workspace_id, version, crm_id);

-- Which deals count where: one row per window and deal with a counting touch.
DROP TABLE IF EXISTS attribution_deal_windows;
CREATE TABLE attribution_deal_windows (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    window_days  INT NOT NULL,
    deal_id      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    -- rp.api.v1.DashboardMetric values the deal counts in (empty for influenced lost deals).
    metrics      SMALLINT[] NOT NULL,
    PRIMARY KEY (workspace_id, version, window_days, deal_id)
);
CREATE INDEX attribution_deal_windows_newest
    ON attribution_deal_windows (workspace_id, version, window_days, created_at DESC, deal_id DESC);
