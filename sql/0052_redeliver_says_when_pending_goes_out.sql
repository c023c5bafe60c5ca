-- Webhooky schema, migration 0052: webhooky.redeliver of a pending delivery says when it goes out.
--
-- redeliver refused a pending delivery with 'it will be sent without being redelivered' and
-- nothing else: an admin who redelivered a delivery of a paused webhook, or one waiting hours
-- for its next retry, learned neither that the webhook holds it back nor when it is due, and
-- the message was untrue for the paused webhook (nothing is sent until it is enabled). A
-- delivery held by its disabled webhook is now refused with that reason and a hint with the
-- UPDATE that enables it; any other pending or sending one keeps its message, with a hint that
-- says when it is due, or that a worker is sending it.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0052_redeliver_says_when_pending_goes_out.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(52, 'redeliver_says_when_pending_goes_out'); END $$;

-- As in migration 0040, with the reason a pending delivery waits.
CREATE OR REPLACE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
    its_webhook bigint;
    webhook_exists boolean;
    webhook_account text;
    event_account text;
    due timestamptz;
    webhook_enabled boolean;
    test boolean;
    caller text := webhooky.caller_account();
BEGIN
    -- The webhook's row first (a share lock, as in a move's order: webhook, then deliveries):
    -- a move to another account that is under way commits before what follows reads the
    -- webhook's account, or waits until this transaction ends and then ends the delivery.
    PERFORM 1 FROM webhooky.webhooks w
     WHERE w.id = (SELECT d.webhook_id FROM webhooky.deliveries d WHERE d.id = redeliver.delivery_id)
       AND (caller IS NULL OR w.account_id = caller)  -- a tenant holds no lock of another account
       FOR SHARE OF w;
    SELECT d.state, d.webhook_id, w.id IS NOT NULL, w.account_id,
           (SELECT e.account_id FROM webhooky.events e WHERE e.id = d.event_id), d.next_attempt_at, w.enabled, d.is_test
      INTO current, its_webhook, webhook_exists, webhook_account, event_account, due, webhook_enabled, test
      FROM webhooky.deliveries d LEFT JOIN webhooky.webhooks w ON w.id = d.webhook_id
     WHERE d.id = redeliver.delivery_id
       AND (caller IS NULL OR (w.account_id = caller
                               AND EXISTS (SELECT 1 FROM webhooky.events e WHERE e.id = d.event_id AND e.account_id = caller)))
       FOR UPDATE OF d;  -- held until the end: a prune or a worker cannot change it in between
    IF current IS NULL THEN
        RAISE EXCEPTION 'webhooky.redeliver: there is no delivery %', redeliver.delivery_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT webhook_exists THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % was for webhook %, which has been deleted: there is nothing to send it to',
                        redeliver.delivery_id, its_webhook
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Send the event again through another webhook with SELECT webhooky.send_test(WEBHOOK_ID, from_event => EVENT_ID) (its event id: SELECT event_id FROM webhooky.deliveries WHERE id = %s).', redeliver.delivery_id);
    END IF;
    IF webhook_account IS NOT NULL AND event_account IS DISTINCT FROM webhook_account THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is of an event of account %, and webhook % now fires for account % only: it would send one account''s data to another''s URL',
                        redeliver.delivery_id, coalesce(quote_literal(event_account), 'NULL (every account)'), its_webhook, quote_literal(webhook_account)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Send the event through a webhook of its own account with SELECT webhooky.send_test(WEBHOOK_ID, from_event => EVENT_ID) (its event id: SELECT event_id FROM webhooky.deliveries WHERE id = %s).', redeliver.delivery_id);
    END IF;
    IF current = 'pending' AND NOT webhook_enabled AND NOT test THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is pending, held while its webhook % is disabled; it will be sent once the webhook is enabled',
                        redeliver.delivery_id, its_webhook
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Enable the webhook (its pending deliveries are then due at once): UPDATE webhooky.webhooks SET enabled = true WHERE id = %s;', its_webhook);
    END IF;
    IF current NOT IN ('succeeded', 'dead') THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is %; it will be sent without being redelivered', redeliver.delivery_id, current
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE WHEN current = 'sending' THEN 'A worker is sending it now; what came of it: SELECT state, last_status, last_error FROM webhooky.deliveries WHERE id = ' || redeliver.delivery_id || ';'
                              WHEN due <= now() THEN 'It is due now: a worker sends it within moments.'
                              ELSE format('It waits for its next retry, due at %s (in %s); only a succeeded or dead delivery is redelivered.',
                                          date_trunc('second', due), justify_interval(date_trunc('second', due - now()))) END;
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now(),
           pending_since = now()
     WHERE d.id = redeliver.delivery_id AND d.state IN ('succeeded', 'dead');
    PERFORM pg_notify('webhooky', '');
END
$$;

COMMIT;
