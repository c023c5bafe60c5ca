-- Webhooky schema, migration 0026: webhooky.settings refuses what it cannot use.
--
-- Any name and any text were accepted. A misspelt name ('max_url_lenght') changed nothing and
-- said nothing; a value that is not a whole number ('4k', '64 KiB', '1e6') made every later save
-- of every webhook fail with PostgreSQL's bare 'invalid input syntax for type integer', because
-- the checks read every limit on every INSERT and UPDATE: admins and tenants could no longer add
-- or edit a webhook, and the worker's own UPDATE that disables a failing webhook failed too. A
-- row is now checked when it is saved (SQLSTATE 23514, as for a webhook): its name must be one of
-- webhooky.setting's, its value a whole number of 0 or more (at most 999999999). Rows saved
-- before are left as they are.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0026_settings_checks.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(26, 'settings_checks'); END $$;

CREATE FUNCTION webhooky.check_setting() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- The names webhooky.setting() knows (migration 0006).
    known text[] := ARRAY['max_body_length', 'max_header_value_length', 'max_headers', 'max_url_length', 'max_webhooks_per_account'];
    hint text := format('Settings: %s. For example: INSERT INTO webhooky.settings VALUES (''max_url_length'', ''4096'') ON CONFLICT (name) DO UPDATE SET value = excluded.value',
                        array_to_string(known, ', '));
BEGIN
    IF NOT NEW.name = ANY (known) THEN
        RAISE EXCEPTION 'webhooky.settings: there is no setting "%"', NEW.name
            USING ERRCODE = 'check_violation', HINT = hint;
    END IF;
    IF NEW.value !~ '^[0-9]{1,9}$' THEN
        RAISE EXCEPTION 'webhooky.settings: % must be a whole number of 0 or more, not "%"', NEW.name, NEW.value
            USING ERRCODE = 'check_violation', HINT = hint;
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION webhooky.check_setting() FROM PUBLIC;
COMMENT ON FUNCTION webhooky.check_setting() IS
    'Trigger: refuses a row of webhooky.settings whose name webhooky.setting() does not know or whose value is not a whole number.';
CREATE TRIGGER check_setting BEFORE INSERT OR UPDATE ON webhooky.settings
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_setting();

COMMIT;
