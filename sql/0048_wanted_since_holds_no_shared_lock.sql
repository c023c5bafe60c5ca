-- Webhooky schema, migration 0048: noting that an event type is wanted again holds no lock that
-- another account's transaction or the worker's prune waits for.
--
-- Migration 0045's trigger note_event_wanted_since runs with the owner's rights in the
-- transaction of whoever inserts or enables a webhook (tenants do), and upserted the event
-- type's one row of webhooky.event_pace. That row is every account's: a tenant that enabled a
-- webhook for a type no enabled webhook wanted and left its transaction open (BEGIN; INSERT ...;
-- and nothing more) made another account's INSERT or enabling of a webhook for the same type
-- wait for it, and the worker's webhooky.prune too, as soon as a batch deleted events of that
-- type (the pruner has no lock timeout: retention stopped for every account meanwhile). The
-- README promises that no privilege of a tenant holds another account's locks. The note is now a
-- row of the webhook's own, (event type, webhook) in webhooky.event_wanted, which only a change
-- of that webhook writes (and that change holds the webhook's row already); doctor takes the
-- newest per type, and webhooky.prune removes the older ones, skipping any that is locked.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0048_wanted_since_holds_no_shared_lock.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(48, 'wanted_since_holds_no_shared_lock'); END $$;

CREATE TABLE webhooky.event_wanted (
    event        text        NOT NULL,
    webhook_id   bigint      NOT NULL,
    wanted_since timestamptz NOT NULL,
    PRIMARY KEY (event, webhook_id)
);
REVOKE ALL ON webhooky.event_wanted FROM PUBLIC;
COMMENT ON TABLE webhooky.event_wanted IS
    'When a webhook last made its event type wanted while no other enabled webhook did (insert enabled, enable, a change of event), one row per event type and webhook (0 for what schema version 45 to 47 noted). No event is recorded while none wants the type, so webhooky doctor counts its silence from the newest at the earliest; webhooky.prune removes the older ones.';
COMMENT ON COLUMN webhooky.event_wanted.webhook_id IS 'The webhook that made the type wanted (no foreign key: the note outlives it; 0: noted before schema version 48).';
COMMENT ON COLUMN webhooky.event_wanted.wanted_since IS 'When it did.';

INSERT INTO webhooky.event_wanted (event, webhook_id, wanted_since)
SELECT p.event, 0, p.wanted_since FROM webhooky.event_pace p WHERE p.wanted_since IS NOT NULL;
ALTER TABLE webhooky.event_pace DROP COLUMN wanted_since;
COMMENT ON TABLE webhooky.event_pace IS
    'Per event type, the events webhooky.prune deleted (tests left out): how many, the first and last created_at, the longest gap between two of them (as seen batch by batch); only webhooky.prune writes it. webhooky doctor judges an event type''s silence by it (and by webhooky.event_wanted).';

-- As in migration 0045, but the note is the webhook's own row: no other account's transaction,
-- and no prune, waits for the transaction that writes it.
CREATE OR REPLACE FUNCTION webhooky.note_event_wanted_since() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id) THEN
        INSERT INTO webhooky.event_wanted AS n (event, webhook_id, wanted_since) VALUES (NEW.event, NEW.id, now())
        ON CONFLICT (event, webhook_id) DO UPDATE SET wanted_since = excluded.wanted_since;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.note_event_wanted_since() IS
    'Trigger (after a webhook is inserted enabled, enabled, or given another event while enabled): notes in webhooky.event_wanted, in a row of that webhook''s own, when it made its event type wanted while no other enabled webhook did.';

-- As in migration 0045, and the notes of webhooky.event_wanted that a newer one of their type
-- replaces are removed (those locked by a change under way are left for a later call).
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
        -- Once a run too: the notes a newer one of their type replaces. A note that a webhook's
        -- change under way holds is skipped, not waited for.
        DELETE FROM webhooky.event_wanted n
         WHERE (n.event, n.webhook_id) IN (
               SELECT o.event, o.webhook_id FROM webhooky.event_wanted o
                WHERE EXISTS (SELECT 1 FROM webhooky.event_wanted newer WHERE newer.event = o.event AND newer.wanted_since > o.wanted_since)
                  FOR UPDATE SKIP LOCKED);
    END IF;
    -- One write per call, the event types in order: two workers pruning at once wait for each
    -- other only there, at the end, and never lock two types in opposite orders. Nobody else
    -- writes webhooky.event_pace.
    PERFORM webhooky.keep_event_pace(gone_types, gone_times) WHERE gone_types IS NOT NULL;
    RETURN QUERY SELECT gone_deliveries_count, gone_attempts_count, gone_events_count;
END
$$;
COMMENT ON FUNCTION webhooky.prune(interval, interval, integer) IS
    'Deletes one batch of history: succeeded deliveries older than 7 days and dead ones older than 30 (by completion), their attempts, and events left without deliveries (old ones no delivery was made for in the batch that ends a run), counting the events in webhooky.event_pace; that batch also drops the notes of webhooky.event_wanted a newer one replaces. Call until it returns zeros; the worker does so every few minutes.';

-- Admins and workers read it (doctor does); only the trigger and webhooky.prune write it.
INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_admin', 'GRANT SELECT ON webhooky.event_wanted TO %I'),
    ('webhooky_worker', 'GRANT SELECT ON webhooky.event_wanted TO %I');
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
