-- Webhooky schema, migration 0023: webhooky.prune refuses arguments that make no sense.
--
-- A negative age (webhooky.prune('-1 day', ...)) put the cutoff in the future and deleted every
-- finished delivery, the newest included; a NULL age pruned nothing and said nothing; a NULL
-- batch size meant no limit (one transaction for the whole history), and a negative one failed
-- with PostgreSQL's bare 'LIMIT must not be negative' and the statement as context. Each is now
-- refused with what was wrong and what to pass instead (SQLSTATE 22023). Nothing else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0023_prune_arguments.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(23, 'prune_arguments'); END $$;

CREATE OR REPLACE FUNCTION webhooky.prune(succeeded_after interval DEFAULT '7 days', dead_after interval DEFAULT '30 days', batch_size integer DEFAULT 1000)
RETURNS TABLE (deliveries bigint, attempts bigint, events bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    deliveries_below bigint;
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
    events_below := webhooky.first_id_since('webhooky.events', now() - dead_after);
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
