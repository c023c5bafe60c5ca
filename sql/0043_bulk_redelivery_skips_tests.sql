-- Webhooky schema, migration 0043: redeliver_webhook leaves test deliveries out.
--
-- webhooky.redeliver_webhook, the bulk resend after an endpoint's outage (and what doctor's
-- dead check suggests), sent dead test deliveries again with the rest: sample payloads, or an
-- admin's hand-written one, to a receiver that takes them for events it missed. It now resends
-- only deliveries of real events; webhooky.redeliver(id) still sends a test again on purpose.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0043_bulk_redelivery_skips_tests.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(43, 'bulk_redelivery_skips_tests'); END $$;

-- As in migration 0040, without test deliveries.
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
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now(),
           pending_since = now()
     WHERE d.webhook_id = redeliver_webhook.webhook_id
       AND d.created_at >= redeliver_webhook.since AND d.created_at < redeliver_webhook.until
       AND (d.state = 'dead' OR (redeliver_webhook.include_succeeded AND d.state = 'succeeded'))
       -- not tests: their payloads are samples, not events a receiver missed
       AND NOT d.is_test
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
    'Sends again the dead (or, with include_succeeded, all finished) deliveries of a webhook created in [since, until), not those of tests (webhooky.redeliver sends one of them again); returns how many.';

COMMIT;
