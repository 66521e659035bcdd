-- Which deals count where is versioned in place too (issue 16, docs/storage.md).
--
-- attribution_deal_windows held one row per window and counting deal for every kept version:
-- about 15,000 rows a version for a typical workspace, written and deleted at every switch (two a
-- day), although from one day to the next only a few deals enter or leave a window. After 30 days
-- it was 28.8 MB (5.2 times its size after the first sync), most of it index pages freed at the
-- left of the (workspace, version, ...) keys and refilled at the right. Now a row belongs to every
-- version from `valid_from` up to (not including) `valid_to`; a switch closes the rows that no
-- longer hold and opens the new ones, and pruning deletes rows closed at or before the oldest kept
-- version.
--
-- The current version's rows stay, valid from version 0 (so the previous version's lists read
-- them too until the next completed sync); the previous version's copies go.

DELETE FROM attribution_deal_windows d USING attribution_workspaces w
 WHERE w.workspace_id = d.workspace_id AND d.version IS DISTINCT FROM w.current_version;
ALTER TABLE attribution_deal_windows DROP CONSTRAINT IF EXISTS attribution_deal_windows_pkey;
ALTER TABLE attribution_deal_windows DROP COLUMN version;
ALTER TABLE attribution_deal_windows ADD COLUMN valid_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attribution_deal_windows ADD COLUMN valid_to BIGINT;
ALTER TABLE attribution_deal_windows ALTER COLUMN valid_from DROP DEFAULT;
-- The drill-down's lists read (workspace, window) newest first by (created_at, deal_id), keeping
-- the rows valid at their version: the key read backwards.
ALTER TABLE attribution_deal_windows
    ADD PRIMARY KEY (workspace_id, window_days, created_at, deal_id, valid_from);
