-- Webhooky schema, migration 0029: webhooky.redeliver_webhook refuses a time range that makes no
-- sense.
--
-- A NULL since or until (webhooky.redeliver_webhook(1, NULL), taken for "all of them") and a range
-- whose since is not before its until (the arguments swapped, or since => now()) matched no
-- delivery: the call sent nothing and returned 0, which reads as "nothing died". Each is now
-- refused with what to pass (SQLSTATE 22023), as webhooky.prune's arguments are (0023). Nothing
-- else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0029_redeliver_webhook_arguments.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(29, 'redeliver_webhook_arguments'); END $$;

-- As in migration 0025, and the time range checked first.
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
       AND (caller IS NULL OR EXISTS (SELECT 1 FROM webhooky.events e WHERE e.id = d.event_id AND e.account_id = caller));
    GET DIAGNOSTICS count = ROW_COUNT;
    IF count > 0 THEN
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN count;
END
$$;

COMMIT;
