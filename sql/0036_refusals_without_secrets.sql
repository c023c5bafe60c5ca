-- Webhooky schema, migration 0036: a webhook that is refused when it is saved is refused without
-- its secrets in the message.
--
-- 1. A NULL in a column that must have a value (UPDATE webhooky.webhooks SET enabled = NULL, an
--    INSERT with name or url NULL) was refused by PostgreSQL's NOT NULL constraint, whose DETAIL
--    is 'Failing row contains (...)': the whole row, with the signing secret, the previous one,
--    the header values (Authorization) and the URL with its API key, shown to the client and
--    written to the server's log (log_min_messages) even when the values came as bind
--    parameters. A trigger now refuses such a row first, naming the column (SQLSTATE 23502, as
--    before), with no DETAIL.
-- 2. A URL whose user name or password holds a '/', '?' or '#' that is not percent-encoded
--    ('https://api:k3y/part@erp.example/') was refused with 'URL has port k3y', quoting up to
--    12 characters of the password: the port as it reads when the authority ends at that
--    character, as it does for libcurl. The message no longer quotes the port, and the hint
--    says how to write such a user name or password.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0036_refusals_without_secrets.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(36, 'refusals_without_secrets'); END $$;

-- Refuses a NULL in a NOT NULL column of webhooky.webhooks before the constraint would, whose
-- message shows the whole row. Named to run after check_webhook, which sets updated_at and
-- revision of an UPDATE itself.
CREATE FUNCTION webhooky.check_webhook_required_columns() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label   text := format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END;
    row     jsonb := to_jsonb(NEW);
    missing text;
BEGIN
    SELECT a.attname INTO missing
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
       AND row -> a.attname::text = 'null'::jsonb
     ORDER BY a.attnum
     LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '%: % must not be NULL', label, missing
            USING ERRCODE = 'not_null_violation', COLUMN = missing, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Give it a value, or leave it out of the INSERT for its default (name '''', enabled true, headers ''{}'', follow_redirects false).';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION webhooky.check_webhook_required_columns() IS
    'Trigger: refuses a webhook with a NULL in a column that must have a value, naming the column and not the row (whose secrets PostgreSQL''s own message would show).';
REVOKE EXECUTE ON FUNCTION webhooky.check_webhook_required_columns() FROM PUBLIC;
CREATE TRIGGER check_webhook_required_columns BEFORE INSERT OR UPDATE ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_webhook_required_columns();

-- check_webhook_url as in 0034, but a port that is not a number is not quoted.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_url() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END;
    -- Up to the first / ? or #: a variable in the host leaves only what comes before it.
    host_and_port text := regexp_replace(regexp_replace(substring(NEW.url FROM '^[A-Za-z]+://([^/?#]*)'), '^.*@', ''), '^\[.*\]', '');
    port text := substring(host_and_port FROM ':([^:]*)$');
    -- The host with each variable standing for a value: empty only when the template's own
    -- text leaves it so (a variable's value cannot add an @, a : or a /, they are encoded).
    host text := regexp_replace(regexp_replace(
        substring(regexp_replace(NEW.url, webhooky.placeholder_pattern(), 'x', 'g') FROM '^[A-Za-z]+://([^/?#]*)'),
        '^.*@', ''), ':[^\]]*$', '');
    fragment text;
BEGIN
    IF host = '' OR host = '[]' THEN
        RAISE EXCEPTION '%: URL has no host', label
            USING ERRCODE = 'check_violation', HINT = 'Write the host after the scheme and any user@, e.g. https://erp.example.com/... or https://user@erp.example.com:8443/...';
    END IF;
    IF port <> '' AND (port !~ '^[0-9]{1,5}$' OR port::integer NOT BETWEEN 1 AND 65535) THEN
        -- Not quoted: when a user name or password holds a / ? or # (not percent-encoded), the
        -- "port" is the part of the password before it.
        RAISE EXCEPTION '%: URL has a port that is not a number from 1 to 65535', label
            USING ERRCODE = 'check_violation',
                  HINT = 'For example https://erp.example.com:8443/hooks; without a port, 443 for https and 80 for http. '
                         'A user name or password in the URL writes / ? # @ as %2F %3F %23 %40.';
    END IF;
    fragment := substring(regexp_replace(NEW.url, webhooky.placeholder_pattern(), '', 'g') FROM '#([A-Za-z0-9_.]{0,40})');
    IF fragment IS NOT NULL THEN
        -- Only a name-like start is shown: the rest of a URL may hold a key.
        RAISE NOTICE '%: the URL''s part from ''#%'' on is a fragment, which HTTP never sends', label, fragment
            USING HINT = 'A variable is written #name# (a closing # missing?); a literal # that should be sent is written %23.';
    END IF;
    RETURN NEW;
END
$$;

COMMIT;
