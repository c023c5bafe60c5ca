-- Webhooky schema, migration 0042: an event type's pace outlives the pruning of its events.
--
-- webhooky doctor's events check judges whether an event type's silence is unusual from its
-- recent events in webhooky.events. Once webhooky.prune had deleted them (7 days after their
-- deliveries succeeded, by default), an event type whose trigger was dropped had no events left
-- to judge by, and the check said "too few events yet": the longer a trigger had been gone, the
-- surer it looked. webhooky.prune now adds what it deletes (events that were not tests) to
-- webhooky.event_pace, one row per event type: how many, the first and the last, the longest
-- gap between two of them; the check falls back on it when too few events are left.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0042_event_pace_outlives_pruning.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(42, 'event_pace_outlives_pruning'); END $$;

CREATE TABLE webhooky.event_pace (
    event       text        PRIMARY KEY,
    events      bigint      NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    longest_gap interval    NOT NULL
);
REVOKE ALL ON webhooky.event_pace FROM PUBLIC;
COMMENT ON TABLE webhooky.event_pace IS
    'Per event type, the events webhooky.prune deleted (tests left out): how many, the first and last created_at, the longest gap between two of them (as seen batch by batch). webhooky doctor judges an event type''s silence by it when too few of its events are left.';
COMMENT ON COLUMN webhooky.event_pace.events IS 'Events of this type deleted by webhooky.prune so far.';
COMMENT ON COLUMN webhooky.event_pace.first_at IS 'created_at of the oldest of them.';
COMMENT ON COLUMN webhooky.event_pace.last_at IS 'created_at of the newest of them.';
COMMENT ON COLUMN webhooky.event_pace.longest_gap IS 'The longest time between two of them that were deleted in the same or consecutive batches.';

-- Adds deleted events (their types and created_at, side by side) to webhooky.event_pace.
CREATE FUNCTION webhooky.keep_event_pace(events text[], times timestamptz[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO webhooky.event_pace AS p (event, events, first_at, last_at, longest_gap)
    SELECT g.event, count(*), min(g.created_at), max(g.created_at), coalesce(max(g.gap), interval '0')
      FROM (SELECT x.event, x.created_at, x.created_at - lag(x.created_at) OVER (PARTITION BY x.event ORDER BY x.created_at) AS gap
              FROM unnest(keep_event_pace.events, keep_event_pace.times) AS x(event, created_at)) g
     GROUP BY g.event
    ON CONFLICT (event) DO UPDATE
       SET events = p.events + excluded.events,
           first_at = least(p.first_at, excluded.first_at),
           last_at = greatest(p.last_at, excluded.last_at),
           longest_gap = greatest(p.longest_gap, excluded.longest_gap,
                                  CASE WHEN excluded.first_at > p.last_at THEN excluded.first_at - p.last_at ELSE interval '0' END)
$$;
COMMENT ON FUNCTION webhooky.keep_event_pace(text[], timestamptz[]) IS
    'Adds events that webhooky.prune deletes (types and created_at, side by side) to webhooky.event_pace.';
REVOKE EXECUTE ON FUNCTION webhooky.keep_event_pace(text[], timestamptz[]) FROM PUBLIC;

-- As in migration 0038, and the events it deletes are added to webhooky.event_pace.
CREATE OR REPLACE FUNCTION webhooky.prune(succeeded_after interval DEFAULT '7 days', dead_after interval DEFAULT '30 days', batch_size integer DEFAULT 1000)
RETURNS TABLE (deliveries bigint, attempts bigint, events bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    deliveries_below bigint;
    gone_deliveries_count bigint;
    gone_attempts_count bigint;
    gone_events_count bigint;
    old_events_count bigint;
    events_below bigint;
BEGIN
    IF succeeded_after IS NULL OR dead_after IS NULL OR succeeded_after < interval '0' OR dead_after < interval '0' THEN
        RAISE EXCEPTION 'webhooky.prune: succeeded_after and dead_after must be intervals of 0 or more, not % and %',
                        coalesce(succeeded_after::text, 'NULL'), coalesce(dead_after::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'They say how old a finished delivery must be to go, e.g. webhooky.prune(''7 days'', ''30 days''); a negative one would delete the newest too.';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'webhooky.prune: batch_size must be at least 1, not %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'It bounds one call''s transaction (default 1000); call it again until it returns zeros.';
    END IF;
    -- A delivery completes after it is created: none created since the shorter cutoff is due.
    deliveries_below := webhooky.first_id_since('webhooky.deliveries', now() - least(succeeded_after, dead_after));
    WITH doomed AS (
        SELECT d.id, d.event_id
          FROM webhooky.deliveries d
         WHERE d.id < deliveries_below
           AND ((d.state = 'succeeded' AND d.completed_at < now() - prune.succeeded_after)
                OR (d.state = 'dead' AND d.completed_at < now() - prune.dead_after))
         ORDER BY d.id
         LIMIT prune.batch_size
           FOR UPDATE SKIP LOCKED
    ), gone_attempts AS (
        DELETE FROM webhooky.attempts a USING doomed WHERE a.delivery_id = doomed.id RETURNING 1
    ), gone_deliveries AS (
        DELETE FROM webhooky.deliveries d USING doomed WHERE d.id = doomed.id RETURNING d.event_id
    ), orphans AS (
        -- The events of this batch that have no other delivery.
        SELECT e.id FROM webhooky.events e
         WHERE e.id IN (SELECT event_id FROM gone_deliveries)
           AND NOT EXISTS (SELECT 1 FROM webhooky.deliveries d WHERE d.event_id = e.id AND d.id NOT IN (SELECT id FROM doomed))
    ), gone_events AS (
        DELETE FROM webhooky.events e USING orphans WHERE e.id = orphans.id RETURNING e.event, e.created_at, e.is_test
    ), paced AS (
        SELECT webhooky.keep_event_pace(array_agg(g.event), array_agg(g.created_at)) FROM gone_events g WHERE NOT g.is_test
    )
    SELECT (SELECT count(*) FROM gone_deliveries), (SELECT count(*) FROM gone_attempts), (SELECT count(*) FROM gone_events)
      INTO gone_deliveries_count, gone_attempts_count, gone_events_count
      FROM paced;
    IF gone_deliveries_count < batch_size THEN
        -- Old events no webhook kept: read past every old event that still has deliveries, so
        -- only once a run (this call found fewer deliveries than it may delete).
        events_below := webhooky.first_id_since('webhooky.events', now() - dead_after);
        WITH unkept AS (
            SELECT e.id FROM webhooky.events e
             WHERE e.id < events_below
               AND e.fanned_out AND e.created_at < now() - prune.dead_after
               AND NOT EXISTS (SELECT 1 FROM webhooky.deliveries d WHERE d.event_id = e.id)
             ORDER BY e.id
             LIMIT prune.batch_size
               FOR UPDATE SKIP LOCKED
        )
        , gone AS (
            DELETE FROM webhooky.events e USING unkept WHERE e.id = unkept.id RETURNING e.event, e.created_at, e.is_test
        ), paced AS (
            SELECT webhooky.keep_event_pace(array_agg(g.event), array_agg(g.created_at)) FROM gone g WHERE NOT g.is_test
        )
        SELECT (SELECT count(*) FROM gone) INTO old_events_count FROM paced;
        gone_events_count := gone_events_count + old_events_count;
    END IF;
    RETURN QUERY SELECT gone_deliveries_count, gone_attempts_count, gone_events_count;
END
$$;
COMMENT ON FUNCTION webhooky.prune(interval, interval, integer) IS
    'Deletes one batch of history: succeeded deliveries older than 7 days and dead ones older than 30 (by completion), their attempts, and events left without deliveries (old ones no delivery was made for in the batch that ends a run), counting the events in webhooky.event_pace. Call until it returns zeros; the worker does so every few minutes.';

-- Admins read it (doctor does); the worker writes it only through webhooky.prune.
INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_admin', 'GRANT SELECT ON webhooky.event_pace TO %I');
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
