-- Deals are versioned in place, like engagement rows (issue 16, docs/storage.md).
--
-- Every dashboard version used to copy every deal into attribution_version_deals (20,000 rows a
-- copy for a typical workspace, two syncs a day, the current and the previous copy kept): after
-- 30 days of daily syncs that table and its index were 31 MB, rewritten twice a day, for 1% of
-- deals changing a day. Now a deal row belongs to every dashboard version from `valid_from` up to
-- (not including) `valid_to`: a changed or deleted deal's row is closed at the pending version
-- and a new one opened, so a version's drill-down reads the deals as they were from the same
-- table, and pruning deletes the rows closed at or before the oldest kept version.
--
-- The kept versions' copies are dropped: until each workspace's next completed sync, the
-- previous version's drill-down reads the deals as they are now (the current version's are the
-- same).

ALTER TABLE attribution_deals ADD COLUMN IF NOT EXISTS valid_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attribution_deals ADD COLUMN IF NOT EXISTS valid_to BIGINT;
ALTER TABLE attribution_deals ALTER COLUMN valid_from DROP DEFAULT;
ALTER TABLE attribution_deals DROP CONSTRAINT IF EXISTS attribution_deals_pkey;
ALTER TABLE attribution_deals ADD PRIMARY KEY (workspace_id, deal_id, valid_from);

DROP TABLE IF EXISTS attribution_version_deals;
