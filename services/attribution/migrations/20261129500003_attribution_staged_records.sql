-- Records wait for their sync to complete (services/attribution/src/store.rs).
--
-- Syncs run per integration, so a LinkedIn sync and a CRM sync of one workspace can overlap.
-- A RecordsPulled batch is therefore not applied when it arrives: its log position is staged
-- here, and the batches of a sync are applied (in log order, from the log) when that sync's
-- matching step completes, in the same transaction that switches the numbers. The batches of a
-- sync that failed are applied with the next sync that completes (its checkpoints moved, so its
-- records will not be pulled again).

CREATE TABLE IF NOT EXISTS attribution_staged_records (
    workspace_id TEXT NOT NULL,
    -- The RecordsPulled event's position in the log.
    position     BIGINT NOT NULL,
    sync_run_id  TEXT NOT NULL,
    -- Apply with the next completed sync, whichever it is (its own sync ended without it).
    ready        BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (workspace_id, position)
);

-- Syncs whose attribution step ran or that failed: a batch of theirs seen again is ready.
CREATE TABLE IF NOT EXISTS attribution_ended_runs (
    workspace_id TEXT NOT NULL,
    sync_run_id  TEXT NOT NULL,
    PRIMARY KEY (workspace_id, sync_run_id)
);
