-- Webhooky schema, migration 0067: two webhooks that make their event type wanted again in one
-- transaction note it, as before migration 0066.
--
-- Migration 0066 moved the check "no other enabled webhook wants the type" to the commit, so
-- that a change crossing another (the type's only other webhook disabled while this one's
-- transaction was open) is judged by what was committed by then. But at the commit every
-- webhook the transaction enabled sees the others it enabled: a transaction that enabled two
-- webhooks of a type no webhook wanted (BEGIN; INSERT ...; INSERT ...; COMMIT, a set-up script)
-- noted nothing, where the first statement had noted it before, and doctor counted the pause as
-- silence.
-- Both checks run now: the statement's, as up to migration 0065, which writes the note and
-- marks it with the transaction (event_wanted.noted_in, the top-level transaction, so also
-- inside savepoints); and the commit's, which retimes a note its transaction wrote, or writes
-- one when it sees no other enabled webhook (a crossing), with the commit's time; a note its
-- transaction wrote for a webhook that no longer wants the event by then is removed.
-- (A transaction that inserted or enabled a webhook now has trigger events pending until its
-- commit, so an ALTER TABLE of webhooky.webhooks later in the same transaction is refused;
-- a migration that needs both does them in two.)
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0067_wanted_since_within_one_transaction.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(67, 'wanted_since_within_one_transaction'); END $$;

ALTER TABLE webhooky.event_wanted ADD COLUMN noted_in xid8;
COMMENT ON COLUMN webhooky.event_wanted.noted_in IS
    'The transaction that wrote the note (top-level), so that its commit can retime it; NULL for notes before schema version 67.';

-- The statement's check, as in migration 0048, and the note marked with its transaction.
CREATE OR REPLACE FUNCTION webhooky.note_event_wanted_since() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id) THEN
        INSERT INTO webhooky.event_wanted AS n (event, webhook_id, wanted_since, noted_in)
        VALUES (NEW.event, NEW.id, clock_timestamp(), pg_current_xact_id())
        ON CONFLICT (event, webhook_id) DO UPDATE SET wanted_since = excluded.wanted_since, noted_in = excluded.noted_in;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.note_event_wanted_since() IS
    'Trigger (after a webhook is inserted enabled, enabled, or given another event while enabled): notes in webhooky.event_wanted, in a row of that webhook''s own marked with the transaction, when it made its event type wanted while no other enabled webhook did; webhooky.note_event_wanted_at_commit retimes it at the commit.';

-- The commit's check.
CREATE FUNCTION webhooky.note_event_wanted_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = NEW.id AND w.event = NEW.event AND w.enabled) THEN
        IF EXISTS (SELECT 1 FROM webhooky.event_wanted n
                    WHERE n.event = NEW.event AND n.webhook_id = NEW.id AND n.noted_in = pg_current_xact_id())
           OR NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id) THEN
            INSERT INTO webhooky.event_wanted AS n (event, webhook_id, wanted_since, noted_in)
            VALUES (NEW.event, NEW.id, clock_timestamp(), pg_current_xact_id())
            ON CONFLICT (event, webhook_id) DO UPDATE SET wanted_since = excluded.wanted_since, noted_in = excluded.noted_in;
        END IF;
    ELSE
        DELETE FROM webhooky.event_wanted n
         WHERE n.event = NEW.event AND n.webhook_id = NEW.id AND n.noted_in = pg_current_xact_id();
    END IF;
    RETURN NULL;
END
$$;
-- Owner's rights: no role may fire it from a table of its own (see migration 0011).
REVOKE EXECUTE ON FUNCTION webhooky.note_event_wanted_at_commit() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.note_event_wanted_at_commit() IS
    'Trigger (deferred to the commit of a transaction that inserted a webhook enabled, enabled one, or gave one another event while enabled): when the webhook still wants the event, retimes the note its transaction wrote in webhooky.event_wanted to the commit, or writes one when no other enabled webhook of the type is seen then (a change that crossed this one disabled it); otherwise removes the note its transaction wrote.';

DROP TRIGGER note_event_wanted_since ON webhooky.webhooks;
DROP TRIGGER note_event_wanted_again ON webhooky.webhooks;
CREATE TRIGGER note_event_wanted_since AFTER INSERT ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION webhooky.note_event_wanted_since();
CREATE TRIGGER note_event_wanted_again AFTER UPDATE OF enabled, event ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled AND (NOT OLD.enabled OR OLD.event IS DISTINCT FROM NEW.event))
    EXECUTE FUNCTION webhooky.note_event_wanted_since();
CREATE CONSTRAINT TRIGGER note_event_wanted_at_commit AFTER INSERT ON webhooky.webhooks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION webhooky.note_event_wanted_at_commit();
CREATE CONSTRAINT TRIGGER note_event_wanted_again_at_commit AFTER UPDATE OF enabled, event ON webhooky.webhooks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.enabled AND (NOT OLD.enabled OR OLD.event IS DISTINCT FROM NEW.event))
    EXECUTE FUNCTION webhooky.note_event_wanted_at_commit();

COMMIT;
