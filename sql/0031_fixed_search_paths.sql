-- Webhooky schema, migration 0031: every function of the schema runs with a fixed search_path.
--
-- The functions that run with the caller's rights (the checks on webhooky.webhooks, tenants and
-- secrets, webhooky.variables, webhooky.new_secret, ...) used the caller's search_path. Where a
-- schema in it is writable by other roles (public in a database created before PostgreSQL 15, or
-- after GRANT CREATE ON SCHEMA public), such a role could create a function that PostgreSQL
-- prefers to the built-in one it stands for: public.format(text, bigint) is an exact match
-- where pg_catalog.format(text, VARIADIC "any") is not, so the next admin, or superuser, to save
-- a webhook ran that role's code with their own rights. Now each of them runs with
-- search_path = pg_catalog, pg_temp, as the owner-rights functions always did: no object outside
-- pg_catalog and the schema names the code writes out is found. None of them is on the path of
-- a business transaction (emit and the owner-rights functions had it already).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0031_fixed_search_paths.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(31, 'fixed_search_paths'); END $$;

ALTER FUNCTION webhooky.account_of_tenant() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.begin_migration(integer, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.check_previous_secret() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.check_tenant_account() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.check_webhook() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.check_webhook_body_depth() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.check_webhook_limits() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.check_webhook_url() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.clear_disabled_reason() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.event_bit(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.grant_roles() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.json_depth(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.new_secret() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.placeholder_pattern() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION webhooky.variables(text, integer) SET search_path = pg_catalog, pg_temp;

COMMIT;
