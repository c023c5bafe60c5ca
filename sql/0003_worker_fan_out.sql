-- Webhooky schema, migration 0003: the worker fans events out, and NOTIFY only when needed.
--
-- Both make webhooky.emit cheaper for the business transaction that calls it:
--   * emit records one row, the event with the ids of the webhooks that want it (decided at
--     that moment, as before); the worker creates the deliveries (and claims the first
--     attempts in the same statement). So emit's cost no longer grows with the number of
--     webhooks, and indexes on webhooky.deliveries cost the worker, not the caller.
--   * emit sends NOTIFY only when a worker is waiting for one (webhooky.workers.wants_wakeup).
--     NOTIFY takes a database-wide lock at commit, which serialises committing transactions;
--     a busy worker finds new events by itself.
--
-- Building the new index on webhooky.deliveries blocks writes to that table while it runs:
-- on a large table, migrate at a quiet moment.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0003_worker_fan_out.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(3, 'worker_fan_out'); END $$;

-- Events already recorded have their deliveries: they count as fanned out.
ALTER TABLE webhooky.events
    ADD COLUMN webhook_ids bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN fanned_out boolean NOT NULL DEFAULT true;
ALTER TABLE webhooky.events ALTER COLUMN fanned_out SET DEFAULT false;
CREATE INDEX events_waiting ON webhooky.events (id) WHERE NOT fanned_out;
COMMENT ON COLUMN webhooky.events.webhook_ids IS 'The webhooks that wanted the event when it was emitted; each gets one delivery.';
COMMENT ON COLUMN webhooky.events.fanned_out IS 'Whether the worker has created the event''s deliveries (usually within milliseconds).';

CREATE INDEX deliveries_event ON webhooky.deliveries (event_id);

-- Workers announce themselves, beat a heart, and say whether they wait for a NOTIFY.
CREATE TABLE webhooky.workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    version      text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    listening    boolean     NOT NULL,
    wants_wakeup boolean     NOT NULL DEFAULT true
);
COMMENT ON TABLE webhooky.workers IS 'Running workers: heartbeat every few seconds; wants_wakeup when idle and listening (emit sends NOTIFY only then).';

CREATE OR REPLACE FUNCTION webhooky.emit(event text, payload jsonb, account_id text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    targets bigint[];
    new_event_id bigint;
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
            RAISE EXCEPTION 'webhooky.emit: unknown event %', quote_nullable(emit.event)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Register the event first: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...).';
        END IF;
        RETURN NULL;  -- no webhook wants it: nothing is recorded
    END IF;
    INSERT INTO webhooky.events (event, account_id, payload, webhook_ids)
    VALUES (emit.event, emit.account_id, emit.payload, targets)
    RETURNING id INTO new_event_id;
    -- Wake a worker only if one is waiting (identical notifications in one transaction are
    -- folded into one). A busy worker finds the event by itself.
    IF EXISTS (SELECT 1 FROM webhooky.workers w WHERE w.wants_wakeup) THEN
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN new_event_id;
END
$$;

COMMIT;
