-- Webhooky schema, migration 0060: webhooky.emit's refusal of an unknown event lists the known
-- ones.
--
-- A trigger calling webhooky.emit('order.payed', ...) for the registered 'order.paid' made every
-- change of its table fail with "webhooky.emit: unknown event 'order.payed'" and the hint
-- "Register the event first", which sends a DBA with a typo off to register a second, wrong
-- event. The hint now names the known events (as a webhook's refusal of an unknown event does)
-- and says to correct the name in the trigger, or to register the event when it is new. The
-- message, the SQLSTATE (22023) and everything else emit does are as in 0017: the known events
-- are looked up only when the event is refused, so the cost to a business transaction is the same.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0060_emit_names_known_events.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(60, 'emit_names_known_events'); END $$;

-- As in migration 0017; only the unknown event's hint differs.
CREATE OR REPLACE FUNCTION webhooky.emit(event text, payload jsonb, account_id text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    targets bigint[];
    new_event_id bigint;
    known text;
BEGIN
    IF jsonb_typeof(emit.payload) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'webhooky.emit(%): payload must be a JSON object, not %', quote_nullable(emit.event), coalesce(jsonb_typeof(emit.payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Build it with jsonb_build_object(''customer'', jsonb_build_object(''id'', NEW.id, ...)).';
    END IF;
    SELECT array_agg(w.id) INTO targets
      FROM webhooky.webhooks w
     WHERE w.event = emit.event AND w.enabled AND (w.account_id IS NULL OR w.account_id = emit.account_id);
    IF targets IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = emit.event) THEN
            SELECT string_agg(quote_literal(t.name), ', ' ORDER BY t.name) INTO known FROM webhooky.event_types t;
            RAISE EXCEPTION 'webhooky.emit: unknown event %', quote_nullable(emit.event)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Known events: %s. Correct the name in the trigger that calls webhooky.emit, or, for a new event, '
                                    'register it first: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...).',
                                    coalesce(known, 'none'));
        END IF;
        RETURN NULL;  -- no webhook wants it: nothing is recorded
    END IF;
    INSERT INTO webhooky.events (event, account_id, payload, webhook_ids)
    VALUES (emit.event, emit.account_id, emit.payload, targets)
    RETURNING id INTO new_event_id;
    -- Wake a worker only if one is waiting (identical notifications in one transaction are
    -- folded into one). A busy worker finds the event by itself. The payload tells workers that
    -- it is about new events (see migration 0017).
    IF EXISTS (SELECT 1 FROM webhooky.workers w WHERE w.wants_wakeup) THEN
        PERFORM pg_notify('webhooky', 'event');
    END IF;
    RETURN new_event_id;
END
$$;

COMMIT;
