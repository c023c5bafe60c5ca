-- Webhooky schema, migration 0051: enabling a webhook makes its deliveries that wait for a retry
-- due at once.
--
-- Enabling a webhook sent the NOTIFY that makes workers look for its waiting deliveries (0017),
-- but only those whose next_attempt_at had passed went out: a delivery waiting for a retry kept
-- its time. A webhook that Webhooky disabled (an answer 410 Gone, or failures over days) holds
-- deliveries whose next attempt is up to 24 hours away, and doctor's advice, "Once the endpoint
-- works: UPDATE webhooky.webhooks SET enabled = true", sent them that much later, while the docs
-- say that the waiting deliveries go out at once; an admin may not change deliveries, and
-- redeliver refuses a pending one. Enabling now makes them due at once (a Retry-After that the
-- endpoint asked for included: the admin says that it works again).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0051_enabling_sends_retries_at_once.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(51, 'enabling_sends_retries_at_once'); END $$;

-- As in migration 0017, plus the deliveries made due.
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
        -- Its waiting deliveries are due again, also those waiting for a retry: workers look for
        -- them at once.
        UPDATE webhooky.deliveries d SET next_attempt_at = now(), updated_at = now()
         WHERE d.webhook_id = NEW.id AND d.state = 'pending' AND d.next_attempt_at > now();
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION webhooky.on_webhook_change() IS
    'Trigger: a deleted webhook''s unfinished deliveries end dead (''webhook deleted'') and its health row goes; a webhook enabled again starts with no failures, and its waiting deliveries, those waiting for a retry too, are due at once and wake the workers.';

COMMIT;
