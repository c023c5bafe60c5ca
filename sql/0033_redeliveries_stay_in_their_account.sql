-- Webhooky schema, migration 0033: a redelivery sends an event only to a webhook of its account.
--
-- A webhook given to one account (0030) ends its unsent deliveries of other accounts' events,
-- and a tenant can no longer redeliver them (0025); an admin still could, with
-- webhooky.redeliver(id) or webhooky.redeliver_webhook(...), and the event, another e-shop's
-- customer, went to the URL that the webhook's new owner sets. Now webhooky.redeliver refuses a
-- delivery whose event is not of the account its webhook fires for (saying so, and how to
-- send the event through a webhook of its own account), and webhooky.redeliver_webhook leaves
-- such deliveries out. Webhooks for every account (account_id NULL) redeliver everything, as
-- before.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0033_redeliveries_stay_in_their_account.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(33, 'redeliveries_stay_in_their_account'); END $$;

-- As in migration 0025, and refusing a delivery of another account's event.
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

-- As in migration 0029, leaving out deliveries of other accounts' events.
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

COMMIT;
