-- The append-only event log: the source of truth of the whole system.

CREATE TABLE IF NOT EXISTS event_streams (
    stream_id  TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- `position` is assigned while the transaction holds the log's append lock (see
-- services/platform/src/eventlog.rs): positions are handed out in commit order, so a reader that has seen position N
-- has seen, or will never see, everything below N. That is what lets readers follow the log by
-- position without skipping an event that was still being committed.
CREATE TABLE IF NOT EXISTS events (
    position        BIGSERIAL PRIMARY KEY,
    event_id        UUID NOT NULL UNIQUE,
    stream_id       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    workspace_id    TEXT NOT NULL DEFAULT '',
    integration_id  TEXT NOT NULL DEFAULT '',
    correlation_id  TEXT NOT NULL DEFAULT '',
    causation_id    TEXT NOT NULL DEFAULT '',
    traceparent     TEXT NOT NULL DEFAULT '',
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Protobuf `rp.events.v1.Envelope`.
    payload         BYTEA NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE INDEX IF NOT EXISTS events_workspace_position ON events (workspace_id, position);
CREATE INDEX IF NOT EXISTS events_type_position ON events (event_type, position);

-- Append-only, enforced by the database itself: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS events_append_only ON events;
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

DROP TRIGGER IF EXISTS events_no_truncate ON events;
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Wake followers (the relay) as soon as a transaction that appended commits.
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rp_events', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS events_notify ON events;
CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Where each relay has published up to.
CREATE TABLE IF NOT EXISTS relay_checkpoints (
    relay      TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Consumer runtime: one row per (consumer, event) handled, written in the handler's transaction.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     TEXT NOT NULL,
    event_id     UUID NOT NULL,
    position     BIGINT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS processed_events_consumer_position ON processed_events (consumer, position);

-- Messages a consumer gave up on, with the error: visible to operators (`rp consumers`).
CREATE TABLE IF NOT EXISTS dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    consumer     TEXT NOT NULL,
    event_id     UUID,
    event_type   TEXT NOT NULL DEFAULT '',
    subject      TEXT NOT NULL,
    stream_seq   BIGINT NOT NULL,
    deliveries   BIGINT NOT NULL,
    error        TEXT NOT NULL,
    payload      BYTEA NOT NULL,
    dead_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (consumer, stream_seq)
);
