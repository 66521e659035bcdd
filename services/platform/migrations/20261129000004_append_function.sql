-- An append in one statement, so it costs one round trip (inside a caller's transaction) or one
-- autocommit statement (EventStore::append), instead of lock + version + insert + upsert, each a
-- round trip, plus BEGIN and COMMIT.
--
-- The rules are those of services/platform/src/eventlog.rs:
-- * The log's append lock (a transaction-scoped advisory lock, key "RPLOG") is taken first and
--   held to the end of the transaction, so positions become visible in commit order.
-- * The stream's version is read after the lock is granted. This function is VOLATILE and in
--   PL/pgSQL, so each statement in it takes a fresh snapshot under READ COMMITTED: the read sees
--   every append committed while we waited for the lock. (Reading it in the statement that takes
--   the lock would not; the race test in tests/eventlog.rs catches that.)
-- * p_expected: -1 any version, 0 the stream must not exist, n > 0 exactly version n.
--   A mismatch appends nothing and returns appended = false with the stream's actual version
--   (NULL: no stream), leaving the caller's transaction usable.
CREATE OR REPLACE FUNCTION rp_append(
    p_stream       TEXT,
    p_expected     BIGINT,
    p_traceparent  TEXT,
    p_ids          UUID[],
    p_types        TEXT[],
    p_workspaces   TEXT[],
    p_integrations TEXT[],
    p_correlations TEXT[],
    p_causations   TEXT[],
    p_occurred     TIMESTAMPTZ[],
    p_payloads     BYTEA[]
) RETURNS TABLE (appended BOOLEAN, stream_version BIGINT, first_position BIGINT, last_position BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_current BIGINT;
    v_base    BIGINT;
    v_first   BIGINT;
    v_last    BIGINT;
    v_n       BIGINT := cardinality(p_ids);
BEGIN
    PERFORM pg_advisory_xact_lock(353534496583);
    SELECT s.version INTO v_current FROM event_streams s WHERE s.stream_id = p_stream;
    IF (p_expected = 0 AND v_current IS NOT NULL)
       OR (p_expected > 0 AND v_current IS DISTINCT FROM p_expected) THEN
        RETURN QUERY SELECT false, v_current, NULL::BIGINT, NULL::BIGINT;
        RETURN;
    END IF;
    v_base := COALESCE(v_current, 0);

    WITH ins AS (
        INSERT INTO events (event_id, stream_id, version, event_type, workspace_id,
                            integration_id, correlation_id, causation_id, traceparent,
                            occurred_at, payload)
        SELECT t.event_id, p_stream, v_base + t.ord, t.event_type, t.workspace_id,
               t.integration_id, t.correlation_id, t.causation_id, p_traceparent,
               t.occurred_at, t.payload
        FROM UNNEST(p_ids, p_types, p_workspaces, p_integrations, p_correlations, p_causations,
                    p_occurred, p_payloads) WITH ORDINALITY
             AS t(event_id, event_type, workspace_id, integration_id, correlation_id,
                  causation_id, occurred_at, payload, ord)
        ORDER BY t.ord
        RETURNING events.position
    )
    SELECT min(ins.position), max(ins.position) INTO v_first, v_last FROM ins;

    INSERT INTO event_streams AS s (stream_id, version) VALUES (p_stream, v_base + v_n)
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, updated_at = now();

    RETURN QUERY SELECT true, v_base + v_n, v_first, v_last;
END;
$$;
