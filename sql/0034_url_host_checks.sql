-- Webhooky schema, migration 0034: a URL whose host is left empty behind a user name or before
-- a port is refused when it is saved.
--
-- Since 0001 a webhook whose URL has no host is refused ("URL has no host"), but only when the
-- path, query or end of the URL follows the scheme at once (https:///x). https://user@/x,
-- https://:8080/x and https://#user#@/x were saved, and every delivery of them ended dead with
-- libcurl's "URL using bad/illegal format or missing URL". Now the host is looked for after any
-- user name (up to the last @) and before any port; a #variable# counts as a host, since its
-- value is known only when the event comes. The function keeps the fixed search_path of 0031.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0034_url_host_checks.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(34, 'url_host_checks'); END $$;

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
        RAISE EXCEPTION '%: URL has port %; a port is a number from 1 to 65535', label, left(port, 12)
            USING ERRCODE = 'check_violation', HINT = 'For example https://erp.example.com:8443/hooks; without a port, 443 for https and 80 for http.';
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
