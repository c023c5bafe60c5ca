-- Webhooky schema, migration 0045: event_pace knows when an event type was wanted again, and two
-- prunes at once lock its rows in one order.
--
-- 1. An event type that no enabled webhook wanted for weeks records no events meanwhile (emit
--    records only what some webhook wants). When a webhook for it is enabled again, doctor's
--    events check measured the silence from the type's last event, weeks old (from
--    webhooky.event_pace since 0042, so however long ago), and said at once 'has a trigger been
--    dropped?'. A webhook that makes its event type wanted when no other enabled webhook did
--    (INSERT enabled, enable, or a change of event) now sets event_pace.wanted_since, and the
--    check counts the silence from the later of that and the last event.
-- 2. webhooky.prune wrote event_pace in each of its two statements: two workers pruning at once
--    could lock two event types' rows in opposite orders (a deadlock, which fails one batch),
--    and held them for the rest of their batch. It now writes once, at the end of the call, the
--    event types in order.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0045_event_pace_wanted_since.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(45, 'event_pace_wanted_since'); END $$;

-- A row may now exist before any of its events was pruned (only wanted_since).
ALTER TABLE webhooky.event_pace
    ALTER COLUMN events SET DEFAULT 0,
    ALTER COLUMN first_at DROP NOT NULL,
    ALTER COLUMN last_at DROP NOT NULL,
    ALTER COLUMN longest_gap SET DEFAULT interval '0',
    ADD COLUMN wanted_since timestamptz;
COMMENT ON COLUMN webhooky.event_pace.first_at IS 'created_at of the oldest of them (NULL: none pruned yet).';
COMMENT ON COLUMN webhooky.event_pace.last_at IS 'created_at of the newest of them (NULL: none pruned yet).';
COMMENT ON COLUMN webhooky.event_pace.wanted_since IS
    'When a webhook last made this event type wanted while no other enabled webhook did (NULL: not since schema version 45). No event is recorded while none wants it, so webhooky doctor counts the silence from here at the earliest.';
COMMENT ON TABLE webhooky.event_pace IS
    'Per event type, the events webhooky.prune deleted (tests left out): how many, the first and last created_at, the longest gap between two of them (as seen batch by batch); and when the type was last wanted again after no enabled webhook wanted it. webhooky doctor judges an event type''s silence by it.';

-- As in migration 0042, the event types in order (their rows locked in that order).
CREATE OR REPLACE FUNCTION webhooky.keep_event_pace(events text[], times timestamptz[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO webhooky.event_pace AS p (event, events, first_at, last_at, longest_gap)
    SELECT g.event, count(*), min(g.created_at), max(g.created_at), coalesce(max(g.gap), interval '0')
      FROM (SELECT x.event, x.created_at, x.created_at - lag(x.created_at) OVER (PARTITION BY x.event ORDER BY x.created_at) AS gap
              FROM unnest(keep_event_pace.events, keep_event_pace.times) AS x(event, created_at)) g
     GROUP BY g.event
     ORDER BY g.event
    ON CONFLICT (event) DO UPDATE
       SET events = p.events + excluded.events,
           first_at = least(p.first_at, excluded.first_at),
           last_at = greatest(p.last_at, excluded.last_at),
           longest_gap = greatest(p.longest_gap, excluded.longest_gap,
                                  CASE WHEN excluded.first_at > p.last_at THEN excluded.first_at - p.last_at ELSE interval '0' END)
$$;

-- Notes when a webhook makes its event type wanted while no other enabled webhook did.
CREATE FUNCTION webhooky.note_event_wanted_since() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id) THEN
        INSERT INTO webhooky.event_pace AS p (event, wanted_since) VALUES (NEW.event, now())
        ON CONFLICT (event) DO UPDATE SET wanted_since = excluded.wanted_since;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.note_event_wanted_since() IS
    'Trigger (after a webhook is inserted enabled, enabled, or given another event while enabled): sets webhooky.event_pace.wanted_since of its event type when no other enabled webhook wanted it.';
REVOKE EXECUTE ON FUNCTION webhooky.note_event_wanted_since() FROM PUBLIC;
CREATE TRIGGER note_event_wanted_since AFTER INSERT ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION webhooky.note_event_wanted_since();
CREATE TRIGGER note_event_wanted_again AFTER UPDATE OF enabled, event ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled AND (NOT OLD.enabled OR OLD.event IS DISTINCT FROM NEW.event))
    EXECUTE FUNCTION webhooky.note_event_wanted_since();

-- As in migration 0042, and event_pace written once, at the end of the call.
CREATE OR REPLACE FUNCTION webhooky.prune(succeeded_after interval DEFAULT '7 days', dead_after interval DEFAULT '30 days', batch_size integer DEFAULT 1000)
RETURNS TABLE (deliveries bigint, attempts bigint, events bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    deliveries_below bigint;
    gone_deliveries_count bigint;
    gone_attempts_count bigint;
    gone_events_count bigint;
    old_events_count bigint;
    -- The events deleted, for webhooky.event_pace (written once, at the end).
    gone_types text[];
    gone_times timestamptz[];
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
    )
    SELECT (SELECT count(*) FROM gone_deliveries), (SELECT count(*) FROM gone_attempts), (SELECT count(*) FROM gone_events),
           kept.types, kept.times
      INTO gone_deliveries_count, gone_attempts_count, gone_events_count, gone_types, gone_times
      FROM (SELECT array_agg(g.event) AS types, array_agg(g.created_at) AS times FROM gone_events g WHERE NOT g.is_test) kept;
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
        )
        SELECT (SELECT count(*) FROM gone), gone_types || kept.types, gone_times || kept.times
          INTO old_events_count, gone_types, gone_times
          FROM (SELECT array_agg(g.event) AS types, array_agg(g.created_at) AS times FROM gone g WHERE NOT g.is_test) kept;
        gone_events_count := gone_events_count + old_events_count;
    END IF;
    -- One write per call, the event types in order: two workers pruning at once wait for each
    -- other only there, at the end, and never lock two types in opposite orders.
    PERFORM webhooky.keep_event_pace(gone_types, gone_times) WHERE gone_types IS NOT NULL;
    RETURN QUERY SELECT gone_deliveries_count, gone_attempts_count, gone_events_count;
END
$$;


COMMIT;
