-- Webhooky schema, migration 0021: a tenant that names another account is told so.
--
-- A tenant role (webhooky.tenants) may only create and edit webhooks of its own account; row-level
-- security refuses the rest, with PostgreSQL's bare 'new row violates row-level security policy for
-- table "webhooks"', which says neither which account was wrong nor what to write instead. A
-- tenant's INSERT for another account, and its UPDATE that moves a webhook to another account or
-- to every account (account_id NULL), are now refused by a trigger that says so, before the
-- policy is reached. The policy still decides: this only words the refusal (same SQLSTATE, 42501).
-- An INSERT without an account still gets the tenant's own (account_of_tenant, 0012, fires first:
-- triggers fire in name order).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0021_tenant_account_messages.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(21, 'tenant_account_messages'); END $$;

CREATE FUNCTION webhooky.check_tenant_account() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    caller text := webhooky.caller_account();
    wanted text := CASE WHEN NEW.account_id IS NULL THEN 'every account (account_id NULL)'
                        ELSE format('account %s', quote_literal(NEW.account_id)) END;
BEGIN
    IF caller IS NULL OR NEW.account_id IS NOT DISTINCT FROM caller THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'a tenant of account % cannot create a webhook for %', quote_literal(caller), wanted
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Leave account_id out (it becomes %s), or ask an admin.', quote_literal(caller));
    END IF;
    RAISE EXCEPTION 'webhook %: a tenant of account % cannot move it to %', OLD.id, quote_literal(caller), wanted
        USING ERRCODE = 'insufficient_privilege',
              HINT = format('A tenant''s webhooks stay in its account (%s); only an admin can change account_id.', quote_literal(caller));
END
$$;
REVOKE EXECUTE ON FUNCTION webhooky.check_tenant_account() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.check_tenant_account() IS
    'Trigger: refuses, with a message, a tenant''s webhook for another account (row-level security would refuse it without one).';
CREATE TRIGGER account_owned_by_tenant BEFORE INSERT OR UPDATE OF account_id ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_tenant_account();

COMMIT;
