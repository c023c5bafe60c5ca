-- Webhooky schema, migration 0064: webhooky.send_test waits for a move of its webhook to
-- another account that is under way, as webhooky.redeliver does since 0037.
--
-- send_test read the webhook without a lock. A tenant's test sent while an admin's transaction
-- gave the webhook to another account read the old account, passed the tenant check, and
-- committed a test delivery of the tenant's event (from_event) for the webhook, which then
-- went to the URL of the account it moved to: the move's trigger had already ended the
-- webhook's deliveries of other accounts' events, and the test came after it. The webhook's
-- row is now read with a share lock: the test waits until the move commits, then finds no
-- webhook of its account.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0064_send_test_waits_for_a_move.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(64, 'send_test_waits_for_a_move'); END $$;

-- As in migration 0050, with the webhook's row locked (share) and the tenant's account in the
-- condition, so that the row is checked again as the move left it.
CREATE OR REPLACE FUNCTION webhooky.send_test(webhook_id bigint, payload jsonb DEFAULT NULL::jsonb, from_event bigint DEFAULT NULL::bigint)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    target webhooky.webhooks;
    body jsonb := send_test.payload;
    caller text := webhooky.caller_account();
    new_event_id bigint;
    new_delivery_id bigint;
BEGIN
    -- The webhook's row locked (share), as in webhooky.redeliver: a move to another account
    -- that is under way commits first, and what follows reads the account it moved to (a tenant
    -- of the old account then has no such webhook). Without the lock the test read the old
    -- account and committed an event of it for the webhook's new account, after the move's
    -- trigger had ended that webhook's deliveries of other accounts' events.
    SELECT * INTO target FROM webhooky.webhooks w
     WHERE w.id = send_test.webhook_id AND (caller IS NULL OR w.account_id = caller)  -- a tenant holds no lock of another account
       FOR SHARE OF w;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhooky.send_test: there is no webhook %', send_test.webhook_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, name FROM webhooky.webhooks lists them.';
    END IF;
    IF body IS NOT NULL AND send_test.from_event IS NOT NULL THEN
        RAISE EXCEPTION 'webhooky.send_test: give a payload or from_event, not both'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('webhooky.send_test(%s, from_event => %s) sends that event''s payload; webhooky.send_test(%s, ''{...}'') the one given.',
                                send_test.webhook_id, send_test.from_event, send_test.webhook_id);
    END IF;
    IF body IS NULL AND send_test.from_event IS NOT NULL THEN
        SELECT e.payload INTO body FROM webhooky.events e
         WHERE e.id = send_test.from_event AND (caller IS NULL OR e.account_id = caller);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'webhooky.send_test: there is no event %', send_test.from_event USING ERRCODE = 'no_data_found';
        END IF;
    ELSIF body IS NULL THEN
        SELECT t.sample INTO body FROM webhooky.event_types t WHERE t.name = target.event;
        IF body IS NULL THEN
            RAISE EXCEPTION 'webhooky.send_test: event type % has no sample payload', quote_literal(target.event)
                USING ERRCODE = 'no_data_found', HINT = 'Pass one: SELECT webhooky.send_test(id, ''{"customer": {...}}'').';
        END IF;
    END IF;
    IF jsonb_typeof(body) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'webhooky.send_test: the payload must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_test.payload IS NOT NULL AND octet_length(send_test.payload::text) > 1048576 THEN
        -- A tenant's test must not hand the worker payloads of any size.
        RAISE EXCEPTION 'webhooky.send_test: the payload is % bytes of JSON; at most 1 MiB', octet_length(send_test.payload::text)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out, is_test)
    VALUES (target.event, target.account_id, body, ARRAY[target.id], true, true)
    RETURNING id INTO new_event_id;
    INSERT INTO webhooky.deliveries (event_id, webhook_id, is_test)
    VALUES (new_event_id, target.id, true)
    RETURNING id INTO new_delivery_id;
    PERFORM pg_notify('webhooky', '');
    RETURN new_delivery_id;
END
$function$
;

COMMIT;
