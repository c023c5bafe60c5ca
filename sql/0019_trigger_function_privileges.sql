-- Webhooky schema, migration 0019: the owner-rights trigger functions serve webhooky.webhooks only.
--
-- webhooky.on_webhook_change (SECURITY DEFINER since 0011) and webhooky.note_wanted_event (since
-- 0008) kept PostgreSQL's default EXECUTE for PUBLIC. Creating a trigger needs nothing more than
-- that and a table of one's own, which every role has (a temporary table): a tenant's role, an
-- application's role or any other login could attach on_webhook_change to a table with an id
-- column and delete a row whose id is another account's webhook, and the function, acting with
-- the schema owner's rights, ended that webhook's unfinished deliveries dead ("webhook deleted")
-- and deleted its health row; an update of enabled reset its failure count. note_wanted_event
-- could set any event's bit in webhooky.wanted_events. No role needs to call either: a trigger
-- fires without its invoker's EXECUTE privilege, which is checked only when the trigger is created.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0019_trigger_function_privileges.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(19, 'trigger_function_privileges'); END $$;

REVOKE EXECUTE ON FUNCTION webhooky.on_webhook_change(), webhooky.note_wanted_event() FROM PUBLIC;

COMMIT;
