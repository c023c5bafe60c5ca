-- Webhooky schema, migration 0065: an outcome written while its webhook's delete was being
-- committed leaves no health row behind.
--
-- The statement that writes outcomes (the worker's recordSQL) inserts a webhook's health row
-- only while the webhook exists, as it saw the webhooks when it began. When it waited for the
-- deliveries that a delete of their webhook was ending (the delete's transaction still open),
-- it went on after the delete committed, still saw the webhook, found its health row gone
-- (the delete removes it), and inserted a new one: a row for a webhook that no longer exists,
-- which the health view never shows and nothing removed. A webhook given that id again
-- (INSERT ... OVERRIDING SYSTEM VALUE, a restore) would have started with its failures.
-- A trigger now looks again after each insert, with a snapshot of its own, and removes the row
-- of a webhook that is gone.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0065_no_health_for_a_deleted_webhook.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(65, 'no_health_for_a_deleted_webhook'); END $$;

CREATE FUNCTION webhooky.drop_health_of_deleted_webhook() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- A statement of its own: it sees a delete that committed while the insert's statement ran.
    DELETE FROM webhooky.webhook_health h
     WHERE h.webhook_id = NEW.webhook_id
       AND NOT EXISTS (SELECT FROM webhooky.webhooks w WHERE w.id = NEW.webhook_id);
    RETURN NULL;
END
$$;
-- Owner's rights: no role may fire it from a table of its own (see migration 0011).
REVOKE EXECUTE ON FUNCTION webhooky.drop_health_of_deleted_webhook() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.drop_health_of_deleted_webhook() IS
    'Trigger (after a health row is inserted): removes it when its webhook is gone (deleted while the outcome that inserted it was being written).';
CREATE TRIGGER drop_health_of_deleted_webhook AFTER INSERT ON webhooky.webhook_health
    FOR EACH ROW EXECUTE FUNCTION webhooky.drop_health_of_deleted_webhook();

COMMIT;
