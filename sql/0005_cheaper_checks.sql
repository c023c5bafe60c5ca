-- Webhooky schema, migration 0005: a cheaper webhooky.has_webhooks.
--
-- As a LANGUAGE sql function with SECURITY DEFINER and a fixed search_path it cannot be
-- inlined, so PostgreSQL planned its query on every call; in PL/pgSQL the plan is cached for
-- the session. A trigger that checks has_webhooks before building its payload now pays a few
-- microseconds when no webhook wants the event.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0005_cheaper_checks.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(5, 'cheaper_checks'); END $$;

CREATE OR REPLACE FUNCTION webhooky.has_webhooks(event text, account_id text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM webhooky.webhooks w
                    WHERE w.event = has_webhooks.event AND w.enabled
                      AND (w.account_id IS NULL OR w.account_id = has_webhooks.account_id));
END
$$;

COMMIT;
