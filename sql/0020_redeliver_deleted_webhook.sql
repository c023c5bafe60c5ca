-- Webhooky schema, migration 0020: redelivering a delivery of a deleted webhook says so.
--
-- webhooky.redeliver looked the delivery up joined to its webhook (so that a tenant finds only
-- its own account's), and so answered "there is no delivery N" for a delivery whose webhook had
-- been deleted: the admin then read that very delivery in webhooky.deliveries (dead, "webhook
-- deleted"). It now says what is the matter, and how to send the event elsewhere. A tenant still
-- finds no such delivery (a deleted webhook is no account's). Nothing else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0020_redeliver_deleted_webhook.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(20, 'redeliver_deleted_webhook'); END $$;

-- As in migration 0009, and the delivery of a deleted webhook named as such.
CREATE OR REPLACE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
    its_webhook bigint;
    webhook_exists boolean;
    caller text := webhooky.caller_account();
BEGIN
    SELECT d.state, d.webhook_id, w.id IS NOT NULL INTO current, its_webhook, webhook_exists
      FROM webhooky.deliveries d LEFT JOIN webhooky.webhooks w ON w.id = d.webhook_id
     WHERE d.id = redeliver.delivery_id AND (caller IS NULL OR w.account_id = caller)
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

COMMIT;
