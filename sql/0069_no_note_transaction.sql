-- Webhooky schema, migration 0069: webhooky.event_wanted loses the column noted_in.
--
-- Migration 0067 marked each note with the transaction that wrote it, so that the commit could
-- retime a note its own statement had written. Since 0068 only the commit writes notes, and
-- nothing reads the column: it goes, and the commit's check no longer writes it.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0069_no_note_transaction.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(69, 'no_note_transaction'); END $$;

CREATE OR REPLACE FUNCTION webhooky.note_event_wanted_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = NEW.id AND w.event = NEW.event AND w.enabled)
       AND NOT EXISTS (SELECT 1 FROM webhooky.webhooks w
                        WHERE w.event = NEW.event AND w.enabled AND w.id <> NEW.id
                          AND NOT EXISTS (SELECT 1 FROM webhooky.event_wanting m
                                           WHERE m.webhook_id = w.id AND m.event = w.event AND m.xact = pg_current_xact_id())) THEN
        INSERT INTO webhooky.event_wanted AS n (event, webhook_id, wanted_since) VALUES (NEW.event, NEW.id, clock_timestamp())
        ON CONFLICT (event, webhook_id) DO UPDATE SET wanted_since = excluded.wanted_since;
    END IF;
    -- Marks of transactions that have ended (below every running one's), none another check is removing.
    DELETE FROM webhooky.event_wanting m
     WHERE m.ctid IN (SELECT f.ctid FROM webhooky.event_wanting f
                       WHERE f.xact < pg_snapshot_xmin(pg_current_snapshot()) FOR UPDATE SKIP LOCKED);
    RETURN NULL;
END
$$;
ALTER TABLE webhooky.event_wanted DROP COLUMN noted_in;

COMMIT;
