-- Webhooky schema, migration 0017: a NOTIFY says what it is about.
--
-- webhooky.emit and the admin functions (send_test, redeliver, redeliver_webhook) sent the same
-- empty NOTIFY on channel webhooky, so a worker could not tell "new events" from "deliveries are
-- due now". A busy worker, whose fan-outs kept finding events, then left a test delivery or a
-- redelivery for its next poll (up to --poll-interval, 1 s by default). emit now sends the
-- payload 'event'; every other NOTIFY on the channel (the admin functions' empty one, or a DBA's
-- own NOTIFY webhooky) makes the workers look for due deliveries within 50 ms as well. Enabling a
-- webhook again sends one too (its waiting deliveries went out at the next poll).
-- Nothing else changes: emit still notifies only while a worker waits for it, once per transaction.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0017_notify_kinds.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(17, 'notify_kinds'); END $$;

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
    -- folded into one). A busy worker finds the event by itself. The payload tells workers that
    -- it is about new events (see migration 0017).
    IF EXISTS (SELECT 1 FROM webhooky.workers w WHERE w.wants_wakeup) THEN
        PERFORM pg_notify('webhooky', 'event');
    END IF;
    RETURN new_event_id;
END
$$;

-- As in migration 0002 (made SECURITY DEFINER by 0011), plus the NOTIFY when a webhook is enabled.
CREATE OR REPLACE FUNCTION webhooky.on_webhook_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE webhooky.deliveries d
           SET state = 'dead', last_error = 'webhook deleted', completed_at = now(), updated_at = now(),
               claimed_by = NULL, lease_expires_at = NULL
         WHERE d.webhook_id = OLD.id AND d.state IN ('pending', 'sending');
        DELETE FROM webhooky.webhook_health h WHERE h.webhook_id = OLD.id;
        RETURN OLD;
    END IF;
    IF NEW.enabled AND NOT OLD.enabled THEN
        UPDATE webhooky.webhook_health h SET consecutive_failures = 0, failing_since = NULL WHERE h.webhook_id = NEW.id;
        -- Its waiting deliveries are due again: workers look for them at once.
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN NEW;
END
$$;

COMMIT;
