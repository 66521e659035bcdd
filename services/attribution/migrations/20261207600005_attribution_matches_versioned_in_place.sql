-- Matches are versioned in place too (issue 16, docs/storage.md): every dashboard version used
-- to copy every current match into attribution_version_matches (about 3,400 rows a copy for a
-- typical workspace, two switches a day), which grew 1.2 -> 5.2 MB in 30 days while a few
-- matches change a day. A match row now belongs to every version from `valid_from` up to (not
-- including) `valid_to`; a changed or removed match closes at the pending version, and pruning
-- deletes the rows closed at or before the oldest kept version. The key leads with crm_id: a
-- version's drill-down reads the matches of a deal's companies.
--
-- The kept versions' copies are dropped: until each workspace's next completed sync, the
-- previous version's drill-down reads the current matches.

ALTER TABLE attribution_matches ADD COLUMN IF NOT EXISTS valid_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attribution_matches ADD COLUMN IF NOT EXISTS valid_to BIGINT;
ALTER TABLE attribution_matches ALTER COLUMN valid_from DROP DEFAULT;
ALTER TABLE attribution_matches DROP CONSTRAINT IF EXISTS attribution_matches_pkey;
ALTER TABLE attribution_matches ADD PRIMARY KEY (workspace_id, crm_id, linkedin_id, valid_from);

DROP TABLE IF EXISTS attribution_version_matches;
