-- Webhooky schema, migration 0068: webhooks that make their event type wanted again together,
-- in one statement or one transaction, note it, also when another transaction crossed theirs.
--
-- The note in webhooky.event_wanted is written when a webhook makes its type wanted while no
-- other enabled webhook wanted it. Whether to write it was judged by looking at the other
-- enabled webhooks; those enabled by the same statement or transaction counted as others, so
-- `UPDATE webhooky.webhooks SET enabled = true WHERE event = 't'` (re-enabling a type's
-- webhooks after an incident), a multi-row INSERT, or two inserts in a transaction that crossed
-- the disabling of the type's last webhook noted nothing, and doctor counted the pause as
-- silence ("has a trigger been dropped?"). This was so since migration 0045; 0067 fixed only two
-- statements in one transaction.
-- Now a BEFORE trigger marks each webhook a transaction makes wanting its event
-- (webhooky.event_wanting: webhook, event, transaction), before any row's check runs; the check,
-- deferred to the commit as since 0066, leaves the webhooks its own transaction marked out of
-- the others. Marks of finished transactions are removed by the next check (skipping any
-- another is removing). The check at the statement (0067) is no longer needed and goes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0068_wanted_since_of_many_at_once.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(68, 'wanted_since_of_many_at_once'); END $$;

CREATE TABLE webhooky.event_wanting (
    webhook_id bigint NOT NULL,
    event      text   NOT NULL,
    xact       xid8   NOT NULL,
    PRIMARY KEY (webhook_id, event, xact)
);
REVOKE ALL ON webhooky.event_wanting FROM PUBLIC;
COMMENT ON TABLE webhooky.event_wanting IS
    'Webhooks a transaction makes want their event type (inserted enabled, enabled, or given another event while enabled), so that the check at its commit (webhooky.note_event_wanted_at_commit) does not count them as other webhooks wanting the type. Written by a trigger; marks of finished transactions are removed at the next check.';
COMMENT ON COLUMN webhooky.event_wanting.webhook_id IS 'The webhook (no foreign key: short-lived).';
COMMENT ON COLUMN webhooky.event_wanting.event IS 'The event type it wants.';
COMMENT ON COLUMN webhooky.event_wanting.xact IS 'The transaction (top-level) that made it want the type.';

CREATE FUNCTION webhooky.mark_event_wanting() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO webhooky.event_wanting (webhook_id, event, xact) VALUES (NEW.id, NEW.event, pg_current_xact_id())
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
-- Owner's rights: no role may fire it from a table of its own (see migration 0011).
REVOKE EXECUTE ON FUNCTION webhooky.mark_event_wanting() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.mark_event_wanting() IS
    'Trigger (before a webhook is inserted enabled, enabled, or given another event while enabled): marks it in webhooky.event_wanting as made wanting its event type by this transaction.';

CREATE OR REPLACE FUNCTION webhooky.note_event_wanted_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = NEW.id AND w.event = NEW.event AND w.enabled)
       AND NOT EXISTS (SELECT 1 FROM webhooky.webhooks w
                        WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id
                          AND NOT EXISTS (SELECT 1 FROM webhooky.event_wanting m
                                           WHERE m.webhook_id = w.id AND m.event = w.event AND m.xact = pg_current_xact_id())) THEN
        INSERT INTO webhooky.event_wanted AS n (event, webhook_id, wanted_since, noted_in)
        VALUES (NEW.event, NEW.id, clock_timestamp(), pg_current_xact_id())
        ON CONFLICT (event, webhook_id) DO UPDATE SET wanted_since = excluded.wanted_since, noted_in = excluded.noted_in;
    END IF;
    -- Marks of transactions that have ended (below every running one's), none another check is removing.
    DELETE FROM webhooky.event_wanting m
     WHERE m.ctid IN (SELECT f.ctid FROM webhooky.event_wanting f
                       WHERE f.xact < pg_snapshot_xmin(pg_current_snapshot()) FOR UPDATE SKIP LOCKED);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.note_event_wanted_at_commit() IS
    'Trigger (deferred to the commit of a transaction that inserted a webhook enabled, enabled one, or gave one another event while enabled): notes in webhooky.event_wanted, in a row of that webhook''s own, the time of the commit when the webhook still wants its event type and no other enabled webhook does (those this transaction made wanting it, in webhooky.event_wanting, left out); removes the marks of finished transactions.';

DROP TRIGGER note_event_wanted_since ON webhooky.webhooks;
DROP TRIGGER note_event_wanted_again ON webhooky.webhooks;
DROP FUNCTION webhooky.note_event_wanted_since();
CREATE TRIGGER mark_event_wanting BEFORE INSERT ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION webhooky.mark_event_wanting();
CREATE TRIGGER mark_event_wanting_again BEFORE UPDATE OF enabled, event ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled AND (NOT OLD.enabled OR OLD.event IS DISTINCT FROM NEW.event))
    EXECUTE FUNCTION webhooky.mark_event_wanting();

COMMENT ON COLUMN webhooky.event_wanted.noted_in IS
    'The transaction that wrote the note (top-level); NULL for notes before schema version 67.';

COMMIT;
