-- Webhooky schema, migration 0046: a webhook's change reaches the deliveries waiting in a worker's line.
--
-- For an endpoint that answers quickly a worker keeps a second line of deliveries claimed and
-- rendered, waiting in its HTTP client until one of the endpoint's requests ends (README, "How
-- it works"). Disabling, deleting, editing or moving such a webhook did not reach them: they
-- went out after the change had committed, as the webhook was before it (to the old URL, with
-- the old body, headers and secret; a disabled or deleted webhook's too; an account move's
-- other accounts' events to the URL of the new owner), as long as a request timeout later
-- (seconds, with an endpoint turned slow). Every change of a webhook row (an UPDATE, which
-- moves its revision on, or a DELETE) now sends NOTIFY webhooky 'webhook <id>' at commit; a
-- worker that hears it takes that webhook's deliveries out of its line unsent and gives them
-- back: a disabled webhook's wait pending, an edited one's are claimed again and rendered with
-- the new revision, a deleted or moved one's stay as the change ended them (dead).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0046_webhook_changes_reach_the_line.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(46, 'webhook_changes_reach_the_line'); END $$;

CREATE FUNCTION webhooky.notify_webhook_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Sent at commit (folded with an identical one of the same transaction); a rollback sends none.
    PERFORM pg_notify('webhooky', 'webhook ' || OLD.id);
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION webhooky.notify_webhook_changed() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.notify_webhook_changed() IS
    'Trigger (after update or delete of a webhook): NOTIFY webhooky ''webhook <id>'', so that workers take the deliveries of the webhook waiting in their line back unsent.';

CREATE TRIGGER notify_webhook_changed AFTER UPDATE OR DELETE ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.notify_webhook_changed();

COMMIT;
