-- What an open interruption promises, so that its words can follow the real next attempt
-- (NotificationUpdated; services/notification/src/domain.rs). Rebuilt from the log like the rest.

-- For 'sync_interrupted': the failure it tells of ('provider_outage', 'bad_payload', ...) and
-- the next attempt its text names (NULL: it names no time).
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS failure_kind TEXT;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMPTZ;
-- The last NotificationUpdated's occurred_at; NULL while the text is as raised.
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ;
