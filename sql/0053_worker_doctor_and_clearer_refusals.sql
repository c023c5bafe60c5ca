-- Webhooky schema, migration 0053: the workers' role may read webhooky.settings, and a webhook
-- that is refused when it is saved is told what to do.
--
-- 1. webhooky doctor run with a worker's login warned 'could not check: permission denied for
--    table settings' and so exited 1 whatever else it found: a health check with the worker's
--    credentials always failed. The settings are limits (no secrets), and a value that is not a
--    whole number stops every save of a webhook, which the worker's doctor should report too.
-- 2. A URL whose host is in brackets but is no IPv6 address (https://[zz::1]/x, https://[1.2.3.4]/,
--    https://[::1]x/, a '[' without its ']') was saved, and every delivery of it ended dead with
--    libcurl's 'URL using bad/illegal format or missing URL'. It is now refused when it is saved,
--    with a hint; checked on INSERT and when an UPDATE changes the URL, so a webhook saved before
--    can still be disabled (by the worker too), renamed or given a URL that works.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0053_worker_doctor_and_clearer_refusals.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(53, 'worker_doctor_and_clearer_refusals'); END $$;

INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_worker', 'GRANT SELECT ON webhooky.settings TO %I');
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

-- check_webhook_url as in 0036, and a host in brackets must be an IPv6 address.
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
    -- Host and port with each variable as a space (which the URL itself may not hold).
    authority text := regexp_replace(
        substring(regexp_replace(NEW.url, webhooky.placeholder_pattern(), ' ', 'g') FROM '^[A-Za-z]+://([^/?#]*)'), '^.*@', '');
    address text;
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
    -- Brackets hold an IPv6 address (libcurl refuses anything else, at every delivery). Checked
    -- only when the URL is new or changed: a webhook saved before stays editable. A variable
    -- inside the brackets is left to the delivery.
    IF authority LIKE '[%' AND (TG_OP = 'INSERT' OR NEW.url IS DISTINCT FROM OLD.url) THEN
        address := substring(authority FROM '^\[([^]]*)\](:[^:]*)?$');
        IF address IS NULL OR (address !~ ' ' AND NOT webhooky.is_ipv6_address(address)) THEN
            RAISE EXCEPTION '%: URL has a host in brackets that is not an IPv6 address', label
                USING ERRCODE = 'check_violation',
                      HINT = 'Brackets hold an IPv6 address, as in https://[2001:db8::1]:8443/hooks (groups of hexadecimal digits '
                             'separated by colons, :: for a run of zeros), and only a :port may follow them; '
                             'a host name or an IPv4 address is written without brackets.';
        END IF;
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

-- Whether text is an IPv6 address as a URL writes it in brackets (RFC 4291 text form, an IPv4
-- address in its last 32 bits, and a zone after %25), as libcurl accepts it. Every role may
-- call it: check_webhook_url runs with the rights of whoever saves a webhook.
CREATE FUNCTION webhooky.is_ipv6_address(address text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bare text := regexp_replace(address, '%(25)?[A-Za-z0-9._~-]+$', '');
BEGIN
    IF bare !~ '^[0-9A-Fa-f:.]+$' OR bare !~ ':' OR (bare ~ '[.]' AND bare !~ ':[0-9]{1,3}([.][0-9]{1,3}){3}$') THEN
        RETURN false;
    END IF;
    RETURN family(bare::inet) = 6;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION webhooky.is_ipv6_address(text) IS
    'Whether the text between a URL''s brackets is an IPv6 address libcurl accepts (a zone after %25 allowed). Internal.';

COMMIT;
