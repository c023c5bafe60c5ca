-- Webhooky schema, migration 0030: a webhook given to another account takes no other account's
-- unsent events with it.
--
-- An admin may move a webhook to an account (UPDATE webhooky.webhooks SET account_id = ...): one
-- made for the wrong e-shop, or one that fired for every account and now fires for one. Since
-- 0025 the new account's tenant no longer sees the other accounts' history of it, but what was
-- not sent yet still went out to the webhook's URL, which the new owner may point where it
-- likes: its deliveries still pending or between retries, and the events emitted for it and not
-- yet fanned out (while no worker ran). Now, when a webhook is given to an account, its
-- unfinished deliveries of other accounts' events end dead ('webhook moved to another account')
-- and it is taken off the other accounts' events that wait for the fan-out. A move to every
-- account (NULL) takes nothing away. A worker's fan-out that read the events before the move
-- committed may still create deliveries of them: they are sent as the webhook was when the
-- event was emitted to it, at most once per such event.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0030_webhook_account_moves.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(30, 'webhook_account_moves'); END $$;

CREATE FUNCTION webhooky.on_webhook_account_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The events first: a fan-out that holds them is waited for, and the deliveries it made
    -- are then seen by the next statement.
    UPDATE webhooky.events e SET webhook_ids = array_remove(e.webhook_ids, NEW.id)
     WHERE NOT e.fanned_out AND NEW.id = ANY (e.webhook_ids) AND e.account_id IS DISTINCT FROM NEW.account_id;
    UPDATE webhooky.deliveries d
       SET state = 'dead', last_error = 'webhook moved to another account: this event is not of its account', completed_at = now(),
           updated_at = now(), claimed_by = NULL, lease_expires_at = NULL
     WHERE d.webhook_id = NEW.id AND d.state IN ('pending', 'sending')
       AND EXISTS (SELECT FROM webhooky.events e WHERE e.id = d.event_id AND e.account_id IS DISTINCT FROM NEW.account_id);
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION webhooky.on_webhook_account_change() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.on_webhook_account_change() IS
    'Trigger: a webhook given to an account ends its unfinished deliveries of other accounts'' events and leaves their unsent events.';

CREATE TRIGGER on_webhook_account_changed AFTER UPDATE OF account_id ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.account_id IS NOT NULL AND NEW.account_id IS DISTINCT FROM OLD.account_id)
    EXECUTE FUNCTION webhooky.on_webhook_account_change();

COMMIT;
