-- Webhooky schema, migration 0037: a redelivery waits for a move of its webhook to another
-- account that is under way.
--
-- Since 0033 webhooky.redeliver refuses, and webhooky.redeliver_webhook leaves out, a delivery
-- whose event is not of the account its webhook fires for, and 0030's trigger ends such
-- deliveries when a webhook is moved. Both read the webhook's account without a lock: an
-- admin's redelivery while another transaction moved the webhook (UPDATE webhooky.webhooks SET
-- account_id = ..., not yet committed) read the old account, passed, and made the delivery
-- pending; the move's trigger had already ended the pending ones and did not see it, so after
-- both commits the event of one account waited to be sent to the URL of another. Now both
-- functions take a share lock on the webhook's row first: the move commits before they read
-- the account (and they refuse or leave the delivery out), or waits until they commit (and its
-- trigger ends the delivery). The worker is not held up: it locks webhook rows only with SKIP
-- LOCKED.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0037_redeliveries_wait_for_moves.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(37, 'redeliveries_wait_for_moves'); END $$;

-- As in migration 0033, locking the webhook's row first.
CREATE OR REPLACE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
    its_webhook bigint;
    webhook_exists boolean;
    webhook_account text;
    event_account text;
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
           (SELECT e.account_id FROM webhooky.events e WHERE e.id = d.event_id)
      INTO current, its_webhook, webhook_exists, webhook_account, event_account
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
    IF current NOT IN ('succeeded', 'dead') THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is %; it will be sent without being redelivered', redeliver.delivery_id, current
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now()
     WHERE d.id = redeliver.delivery_id AND d.state IN ('succeeded', 'dead');
    PERFORM pg_notify('webhooky', '');
END
$$;
COMMENT ON FUNCTION webhooky.redeliver(bigint) IS
    'Sends a succeeded or dead delivery again with a fresh retry schedule; receivers see the same webhook-id.';

-- As in migration 0033, locking the webhook's row first.
CREATE OR REPLACE FUNCTION webhooky.redeliver_webhook(webhook_id bigint, since timestamptz, until timestamptz DEFAULT now(), include_succeeded boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    count integer;
    caller text := webhooky.caller_account();
BEGIN
    IF redeliver_webhook.since IS NULL OR redeliver_webhook.until IS NULL THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: since and until must not be NULL'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'They bound when the deliveries to send again were created, e.g. webhooky.redeliver_webhook(1, now() - interval ''3 days''); until defaults to now().';
    END IF;
    IF redeliver_webhook.since >= redeliver_webhook.until THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: since must be before until (the deliveries created in [since, until) are sent again)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('since is %s, until %s: swapped?', redeliver_webhook.since, redeliver_webhook.until);
    END IF;
    -- The webhook's row locked (share), as in webhooky.redeliver: a move to another account
    -- that is under way commits first, and the UPDATE below reads the account it moved to.
    PERFORM 1 FROM webhooky.webhooks w
     WHERE w.id = redeliver_webhook.webhook_id AND (caller IS NULL OR w.account_id = caller)
       FOR SHARE OF w;
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = redeliver_webhook.webhook_id AND (caller IS NULL OR w.account_id = caller)) THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: there is no webhook %', redeliver_webhook.webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now()
     WHERE d.webhook_id = redeliver_webhook.webhook_id
       AND d.created_at >= redeliver_webhook.since AND d.created_at < redeliver_webhook.until
       AND (d.state = 'dead' OR (redeliver_webhook.include_succeeded AND d.state = 'succeeded'))
       -- only the deliveries of events of the account the webhook fires for now (for a tenant,
       -- its own): not another account's data to a URL its new owner chose
       AND EXISTS (SELECT 1 FROM webhooky.webhooks w JOIN webhooky.events e ON e.id = d.event_id
                    WHERE w.id = d.webhook_id AND (w.account_id IS NULL OR e.account_id = w.account_id)
                      AND (caller IS NULL OR e.account_id = caller));
    GET DIAGNOSTICS count = ROW_COUNT;
    IF count > 0 THEN
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN count;
END
$$;
COMMENT ON FUNCTION webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean) IS
    'Sends again the dead (or, with include_succeeded, all finished) deliveries of a webhook created in [since, until); returns how many.';

COMMIT;
