-- The attribution projection (services/attribution/src/store.rs).
--
-- Two parts:
-- * What the log says now (engagement, deals, pipelines' stages, matches, names, plans): written
--   by the handlers as events arrive; upserts only, so replays never double count.
-- * Dashboard versions: a complete set of numbers per workspace, written when a sync completes,
--   tagged with a version; `attribution_workspaces.current_version` points at the one readers
--   see and flips in the same transaction that writes the new set. The previous set is kept (so
--   a drill-down paging across a switch can finish), older ones are deleted.

CREATE TABLE IF NOT EXISTS attribution_workspaces (
    workspace_id    TEXT PRIMARY KEY,
    -- From WorkspaceCreated; NULL means the first plan of RP_PLANS.
    plan            TEXT,
    -- The dashboard version readers see; NULL until the first sync completes.
    current_version BIGINT,
    -- The last version written (versions are never reused).
    last_version    BIGINT NOT NULL DEFAULT 0
);

-- LinkedIn engagement: one row per organization, campaign and day. A re-pull replaces the row.
CREATE TABLE IF NOT EXISTS attribution_engagement (
    workspace_id    TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    campaign_id     TEXT NOT NULL,
    day             DATE NOT NULL,
    impressions     BIGINT NOT NULL,
    clicks          BIGINT NOT NULL,
    engagements     BIGINT NOT NULL,
    ad_account_id   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (workspace_id, organization_id, campaign_id, day)
);

CREATE TABLE IF NOT EXISTS attribution_organizations (
    workspace_id    TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    name            TEXT NOT NULL,
    PRIMARY KEY (workspace_id, organization_id)
);

CREATE TABLE IF NOT EXISTS attribution_companies (
    workspace_id TEXT NOT NULL,
    company_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    PRIMARY KEY (workspace_id, company_id)
);

-- CRM deals as last pulled; a deleted deal is removed.
CREATE TABLE IF NOT EXISTS attribution_deals (
    workspace_id TEXT NOT NULL,
    deal_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    -- The decimal string exactly as the CRM gave it (parsed when the numbers are computed).
    amount       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    stage_id     TEXT NOT NULL,
    pipeline_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ,
    closed_at    TIMESTAMPTZ,
    company_ids  TEXT[] NOT NULL,
    PRIMARY KEY (workspace_id, deal_id)
);

-- The CRM's pipeline definitions: what each stage means. A re-pulled pipeline replaces its stages.
CREATE TABLE IF NOT EXISTS attribution_stages (
    workspace_id  TEXT NOT NULL,
    pipeline_id   TEXT NOT NULL,
    stage_id      TEXT NOT NULL,
    label         TEXT NOT NULL,
    display_order INT NOT NULL,
    -- rp.events.v1.StageKind: 1 open, 2 won, 3 lost.
    kind          SMALLINT NOT NULL,
    PRIMARY KEY (workspace_id, pipeline_id, stage_id)
);

-- Current LinkedIn organization <-> CRM company matches, from AccountsMatched (sync or manual).
CREATE TABLE IF NOT EXISTS attribution_matches (
    workspace_id TEXT NOT NULL,
    linkedin_id  TEXT NOT NULL,
    crm_id       TEXT NOT NULL,
    method       INT NOT NULL,
    score        DOUBLE PRECISION NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (workspace_id, linkedin_id, crm_id)
);

-- ---- Dashboard versions --------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS attribution_versions (
    workspace_id   TEXT NOT NULL,
    version        BIGINT NOT NULL,
    sync_run_id    TEXT NOT NULL,
    -- The completion time of the sync (the time of the event that completed it).
    as_of          TIMESTAMPTZ NOT NULL,
    half_life_days INT NOT NULL,
    windows        INT[] NOT NULL,
    PRIMARY KEY (workspace_id, version)
);

CREATE TABLE IF NOT EXISTS attribution_window_numbers (
    workspace_id          TEXT NOT NULL,
    version               BIGINT NOT NULL,
    window_days           INT NOT NULL,
    engaged_companies     INT NOT NULL,
    matched_companies     INT NOT NULL,
    matched_accounts      INT NOT NULL,
    deals_total           INT NOT NULL,
    deals_open            INT NOT NULL,
    deals_won             INT NOT NULL,
    deals_lost            INT NOT NULL,
    deals_unclassified    INT NOT NULL,
    deals_influenced_lost INT NOT NULL,
    days_to_deal_deals    INT NOT NULL,
    days_to_deal_average  DOUBLE PRECISION,
    days_to_deal_median   DOUBLE PRECISION,
    PRIMARY KEY (workspace_id, version, window_days)
);

CREATE TABLE IF NOT EXISTS attribution_metric_totals (
    workspace_id         TEXT NOT NULL,
    version              BIGINT NOT NULL,
    window_days          INT NOT NULL,
    -- rp.api.v1.DashboardMetric.
    metric               SMALLINT NOT NULL,
    deals                INT NOT NULL,
    deals_without_amount INT NOT NULL,
    PRIMARY KEY (workspace_id, version, window_days, metric)
);

CREATE TABLE IF NOT EXISTS attribution_metric_amounts (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    window_days  INT NOT NULL,
    metric       SMALLINT NOT NULL,
    currency     TEXT NOT NULL,
    amount       NUMERIC NOT NULL,
    deals        INT NOT NULL,
    PRIMARY KEY (workspace_id, version, window_days, metric, currency)
);

CREATE TABLE IF NOT EXISTS attribution_campaign_credits (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    window_days  INT NOT NULL,
    -- rp.api.v1.AttributionModel.
    model        SMALLINT NOT NULL,
    metric       SMALLINT NOT NULL,
    currency     TEXT NOT NULL,
    campaign_id  TEXT NOT NULL,
    amount       NUMERIC NOT NULL,
    deals        INT NOT NULL,
    PRIMARY KEY (workspace_id, version, window_days, model, metric, currency, campaign_id)
);

-- Every deal known at the version's as-of time, as it was then.
CREATE TABLE IF NOT EXISTS attribution_version_deals (
    workspace_id TEXT NOT NULL,
    version      BIGINT NOT NULL,
    deal_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    -- NULL when the deal has no valid amount.
    amount       NUMERIC,
    currency     TEXT NOT NULL,
    -- rp.events.v1.StageKind; 0 when the stage is in no pipeline definition.
    stage        SMALLINT NOT NULL,
    stage_id     TEXT NOT NULL,
    pipeline_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ,
    closed_at    TIMESTAMPTZ,
    company_ids  TEXT[] NOT NULL,
    PRIMARY KEY (workspace_id, version, deal_id)
);

-- Why a deal counts in a window (only deals with at least one counting touch).
CREATE TABLE IF NOT EXISTS attribution_deal_windows (
    workspace_id     TEXT NOT NULL,
    version          BIGINT NOT NULL,
    window_days      INT NOT NULL,
    deal_id          TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    -- rp.api.v1.DashboardMetric values the deal counts in (empty for influenced lost deals).
    metrics          SMALLINT[] NOT NULL,
    first_engaged_on DATE,
    days_to_deal     INT,
    touches          JSONB NOT NULL,
    matches          JSONB NOT NULL,
    credits          JSONB NOT NULL,
    PRIMARY KEY (workspace_id, version, window_days, deal_id)
);

CREATE INDEX IF NOT EXISTS attribution_deal_windows_newest
    ON attribution_deal_windows (workspace_id, version, window_days, created_at DESC, deal_id DESC);
