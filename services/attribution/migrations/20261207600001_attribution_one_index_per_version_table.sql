-- One index where two did the same work (issue 16, docs/storage.md "Table by table").
--
-- `make storage` after 30 days of a typical workspace, from pg_stat_user_indexes: the primary
-- keys of attribution_deal_windows and attribution_version_matches were never scanned (0 scans;
-- 7.9 MB and 2.0 MB), while the second index of each table served every read. Each table is
-- written once per version by a plain INSERT (no ON CONFLICT), so the primary key only checked a
-- uniqueness the writer already guarantees. Each table now has one index, the primary key, in
-- the column order its readers need:
--
-- * attribution_deal_windows: the drill-down's lists read (workspace, version, window) newest
--   first by (created_at, deal_id) and page after a (created_at, deal_id) cursor; an ascending
--   index read backwards gives that order. A deal has one creation time at a version, so the
--   key stays one row per deal, window and version. Pruning deletes by (workspace, version).
-- * attribution_version_matches: a version's drill-down reads the matches of a deal's companies
--   (workspace, version, crm_id = ANY(...)); the key leads with crm_id, then linkedin_id.

ALTER TABLE attribution_deal_windows DROP CONSTRAINT IF EXISTS attribution_deal_windows_pkey;
DROP INDEX IF EXISTS attribution_deal_windows_newest;
ALTER TABLE attribution_deal_windows
    ADD PRIMARY KEY (workspace_id, version, window_days, created_at, deal_id);

ALTER TABLE attribution_version_matches DROP CONSTRAINT IF EXISTS attribution_version_matches_pkey;
DROP INDEX IF EXISTS attribution_version_matches_by_account;
ALTER TABLE attribution_version_matches
    ADD PRIMARY KEY (workspace_id, version, crm_id, linkedin_id);
