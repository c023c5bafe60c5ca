-- Webhooky schema, migration 0038: a prune looks for old events without deliveries only in the
-- batch that ends a run, not in every batch.
--
-- Besides the events of the deliveries it deletes, every call of webhooky.prune looked for old
-- events that no delivery was ever made for (fanned out after their webhooks were deleted or
-- moved), in id order from the oldest event older than dead_after. Every old event that still
-- had deliveries was read on the way (an index probe of its deliveries each), and in a run that
-- catches up with a long history (pruning turned on, or --keep-dead shortened, with months of
-- history) that is every event older than dead_after not yet pruned, again in each batch: 1M
-- such events made each batch of 1,000 deliveries take 230 ms instead of 5, and the run grew
-- with the square of the history. That search now runs only in a call whose batch of
-- deliveries is not full (the last of a run, since runs call it until it returns zeros), and
-- takes the events it deletes with SKIP LOCKED, so two workers pruning at once do not wait for
-- each other there. Nothing else changes: the same rows go, at most a run later.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0038_prune_old_events_last.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(38, 'prune_old_events_last'); END $$;

-- As in migration 0023, the old events without deliveries in a second statement, only when the
-- batch of deliveries was not full.
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
        DELETE FROM webhooky.events e USING orphans WHERE e.id = orphans.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone_deliveries), (SELECT count(*) FROM gone_attempts), (SELECT count(*) FROM gone_events)
      INTO gone_deliveries_count, gone_attempts_count, gone_events_count;
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
        DELETE FROM webhooky.events e USING unkept WHERE e.id = unkept.id;
        GET DIAGNOSTICS old_events_count = ROW_COUNT;
        gone_events_count := gone_events_count + old_events_count;
    END IF;
    RETURN QUERY SELECT gone_deliveries_count, gone_attempts_count, gone_events_count;
END
$$;
COMMENT ON FUNCTION webhooky.prune(interval, interval, integer) IS
    'Deletes one batch of history: succeeded deliveries older than 7 days and dead ones older than 30 (by completion), their attempts, and events left without deliveries (old ones no delivery was made for in the batch that ends a run). Call until it returns zeros; the worker does so every few minutes.';

COMMIT;
