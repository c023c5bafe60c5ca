-- Webhooky schema, migration 0066: an event type is noted as wanted again when the change that
-- makes it so commits, not when its statement ran.
--
-- webhooky doctor counts an event type's silence from its last event, or from the newest note
-- in webhooky.event_wanted, whichever is later: no event is recorded while no enabled webhook
-- wants the type, so a type wanted again after a pause must not be overdue at once. The note
-- was written by the statement that inserted or enabled a webhook, if it then saw no other
-- enabled webhook of the type, with the transaction's start time. So a transaction that
-- enabled a webhook while the type's only other one was still enabled, and committed after
-- that one was disabled, noted nothing: the type was unwanted from the disable's commit to its
-- own (for as long as it stayed open: a psql session, a migration tool), doctor counted that
-- pause as silence and warned of a dropped trigger. And a note's time was the transaction's
-- start, however long before its commit the webhook began to count.
-- The two triggers are now constraint triggers deferred to the commit: they look when the
-- transaction commits (and the webhook is still enabled for that event), and note the time
-- then (clock_timestamp()). Of two changes that cross, the one committing second sees the
-- other's commit, unless both commit at the same moment, when the pause lasts no longer (in
-- READ COMMITTED, the default; a REPEATABLE READ transaction sees what its snapshot saw).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0066_wanted_since_at_commit.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(66, 'wanted_since_at_commit'); END $$;

CREATE OR REPLACE FUNCTION webhooky.note_event_wanted_since() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- At the commit: the webhook still wants the event, and no other enabled webhook did.
    IF EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = NEW.id AND w.event = NEW.event AND w.enabled)
       AND NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id) THEN
        INSERT INTO webhooky.event_wanted AS n (event, webhook_id, wanted_since) VALUES (NEW.event, NEW.id, clock_timestamp())
        ON CONFLICT (event, webhook_id) DO UPDATE SET wanted_since = excluded.wanted_since;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.note_event_wanted_since() IS
    'Trigger (deferred to the commit of a transaction that inserted a webhook enabled, enabled one, or gave one another event while enabled): notes in webhooky.event_wanted, in a row of that webhook''s own, the time of the commit when the webhook then made its event type wanted while no other enabled webhook did.';

DROP TRIGGER note_event_wanted_since ON webhooky.webhooks;
DROP TRIGGER note_event_wanted_again ON webhooky.webhooks;
CREATE CONSTRAINT TRIGGER note_event_wanted_since AFTER INSERT ON webhooky.webhooks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION webhooky.note_event_wanted_since();
CREATE CONSTRAINT TRIGGER note_event_wanted_again AFTER UPDATE OF enabled, event ON webhooky.webhooks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.enabled AND (NOT OLD.enabled OR OLD.event IS DISTINCT FROM NEW.event))
    EXECUTE FUNCTION webhooky.note_event_wanted_since();

COMMENT ON COLUMN webhooky.event_wanted.wanted_since IS 'When it did: the commit of the change (before schema version 66, the start of its transaction).';

COMMIT;
