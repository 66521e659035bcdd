-- Changed records are found by a change sequence, not a flag rewritten on every row (issue 16,
-- docs/storage.md).
--
-- Every record was stored `dirty` and the matching step then set `dirty = false` on each: for a
-- workspace's first sync that wrote all 50,000 CRM companies twice, so after VACUUM matcher_crm
-- held twice its rows in pages (15.7 MB heap for 50,000 rows) and its primary key an entry for
-- each version (6.9 MB), for good. Now an upsert stamps the row with the next value of
-- `matcher_changes`; the matching step takes the rows stamped after the workspace's
-- `matched_through` and moves that mark past them, writing one row. Upserts hold the
-- workspace's row lock in share mode and the step in update mode, so no stamp given before the
-- mark can commit after it.

CREATE SEQUENCE IF NOT EXISTS matcher_changes;
ALTER TABLE matcher_workspaces ADD COLUMN IF NOT EXISTS matched_through BIGINT NOT NULL DEFAULT 0;
ALTER TABLE matcher_crm ADD COLUMN IF NOT EXISTS changed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE matcher_linkedin ADD COLUMN IF NOT EXISTS changed BIGINT NOT NULL DEFAULT 0;
UPDATE matcher_crm SET changed = nextval('matcher_changes') WHERE dirty;
UPDATE matcher_linkedin SET changed = nextval('matcher_changes') WHERE dirty;
ALTER TABLE matcher_crm DROP COLUMN IF EXISTS dirty;
ALTER TABLE matcher_linkedin DROP COLUMN IF EXISTS dirty;
