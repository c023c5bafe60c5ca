-- Webhooky schema, migration 0015: pruning reads only the part of the tables old enough to prune.
--
-- webhooky.prune looked for old deliveries (and events without any) in id order with a filter
-- on their age; a batch that found fewer than it may delete (the last one of every run, every
-- 5 minutes) read on to the end of the table: with a week of history, every row of that week.
-- Ids grow with time, so the rows created before the cutoff are those below one id. That id is
-- found by halving the id range with a few dozen primary-key probes (webhooky.first_id_since),
-- and the batches read below it only. A row whose transaction began before the cutoff and wrote
-- it after the boundary (a higher id with an older created_at) is pruned by a later run; nothing
-- is pruned that was not before. Rows whose completed_at is older than their created_at (written
-- by hand) are kept until their created_at is old enough too.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0015_bounded_prune.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(15, 'bounded_prune'); END $$;

-- The lowest id of `tbl` (webhooky.deliveries or webhooky.events) whose row, or the first row
-- after it, was created at or after `cutoff`: every row below it is older (ids grow with time).
-- One max, one min and about log2(ids) probes of the primary key; 0 for an empty table.
CREATE FUNCTION webhooky.first_id_since(tbl regclass, cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    low bigint;   -- the row at or after it is older than the cutoff
    high bigint;  -- the row at or after it is not (or there is none)
    middle bigint;
    created timestamptz;
BEGIN
    IF tbl NOT IN ('webhooky.deliveries'::regclass, 'webhooky.events'::regclass) THEN
        RAISE EXCEPTION 'webhooky.first_id_since: % is not webhooky.deliveries or webhooky.events', tbl;
    END IF;
    EXECUTE format('SELECT id, created_at FROM %s ORDER BY id LIMIT 1', tbl) INTO low, created;
    IF low IS NULL OR created >= cutoff THEN
        RETURN coalesce(low, 0);
    END IF;
    EXECUTE format('SELECT id + 1 FROM %s ORDER BY id DESC LIMIT 1', tbl) INTO high;
    WHILE high - low > 1 LOOP
        middle := low + (high - low) / 2;
        EXECUTE format('SELECT created_at FROM %s WHERE id >= $1 ORDER BY id LIMIT 1', tbl) INTO created USING middle;
        IF created IS NULL OR created >= cutoff THEN
            high := middle;
        ELSE
            low := middle;
        END IF;
    END LOOP;
    RETURN high;
END
$$;
REVOKE ALL ON FUNCTION webhooky.first_id_since(regclass, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION webhooky.first_id_since(regclass, timestamptz) IS
    'Internal (webhooky.prune): the id below which every row of the table was created before the cutoff.';

CREATE OR REPLACE FUNCTION webhooky.prune(succeeded_after interval DEFAULT '7 days', dead_after interval DEFAULT '30 days', batch_size integer DEFAULT 1000)
RETURNS TABLE (deliveries bigint, attempts bigint, events bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- A delivery completes after it is created: none created since the shorter cutoff is due.
    deliveries_below bigint := webhooky.first_id_since('webhooky.deliveries', now() - least(succeeded_after, dead_after));
    events_below bigint := webhooky.first_id_since('webhooky.events', now() - dead_after);
BEGIN
    RETURN QUERY
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
        -- Events with no delivery left: those of this batch, and old ones no webhook kept.
        SELECT e.id FROM webhooky.events e
         WHERE e.id IN (SELECT event_id FROM gone_deliveries)
           AND NOT EXISTS (SELECT 1 FROM webhooky.deliveries d WHERE d.event_id = e.id AND d.id NOT IN (SELECT id FROM doomed))
        UNION
        (SELECT e.id FROM webhooky.events e
          WHERE e.id < events_below AND e.fanned_out AND e.created_at < now() - prune.dead_after
            AND NOT EXISTS (SELECT 1 FROM webhooky.deliveries d WHERE d.event_id = e.id)
          ORDER BY e.id LIMIT prune.batch_size)
    ), gone_events AS (
        DELETE FROM webhooky.events e USING orphans WHERE e.id = orphans.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone_deliveries), (SELECT count(*) FROM gone_attempts), (SELECT count(*) FROM gone_events);
END
$$;

COMMIT;
