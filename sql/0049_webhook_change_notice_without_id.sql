-- Webhooky schema, migration 0049: the NOTIFY of a webhook's change names no webhook.
--
-- Since migration 0046 every UPDATE or DELETE of a webhook sent NOTIFY webhooky 'webhook <id>',
-- so that workers take that webhook's deliveries out of their line. Any role may LISTEN on a
-- channel: a tenant listening saw the ids and the moments of other accounts' edits, deletes,
-- secret rotations and of the worker disabling their failing webhooks. The payload is now
-- 'webhook'; a worker that hears it compares the revisions of the webhooks it has in flight
-- with the database's (what it did with the id too: a notification is only a hint, since any
-- role may send one).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0049_webhook_change_notice_without_id.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(49, 'webhook_change_notice_without_id'); END $$;

-- As in migration 0046, without the id.
CREATE OR REPLACE FUNCTION webhooky.notify_webhook_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Sent at commit, once per transaction however many rows changed; a rollback sends none.
    PERFORM pg_notify('webhooky', 'webhook');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.notify_webhook_changed() IS
    'Trigger (after update or delete of a webhook): NOTIFY webhooky ''webhook'' (no id: any role may LISTEN), so that workers take the deliveries waiting in their line whose webhook changed back unsent.';

COMMIT;
