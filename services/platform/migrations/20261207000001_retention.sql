-- Retention (docs/bus.md, "Retention"). Processed marks older than the retention are pruned; the
-- highest position pruned for each consumer is kept here, so a replay of an event at or below it
-- is still known as handled (unless it was dead-lettered), and pruning never weakens idempotency.
CREATE TABLE IF NOT EXISTS processed_floors (
    consumer   TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
CREATE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (event_id);
