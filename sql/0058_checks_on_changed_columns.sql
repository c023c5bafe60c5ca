-- Webhooky schema, migration 0058: a webhook that today's checks would refuse can still be
-- paused, renamed or otherwise edited; what an UPDATE changes is checked in full.
--
-- check_webhook, check_webhook_url, check_webhook_body_depth and check_previous_secret checked
-- the whole row on every UPDATE, also the columns the UPDATE left alone. A webhook saved before
-- a check existed (a body nested deeper than 512 levels before 0002, a URL such as
-- https://user@/x before 0034) or that reached the table without the checks (a data-only
-- restore with --disable-triggers, a logical replica) could not be changed at all:
-- UPDATE webhooky.webhooks SET enabled = false WHERE id = 7 failed with a refusal about its body
-- or URL, and so did the worker's own UPDATE that disables a failing webhook. check_webhook_url
-- (a trigger of UPDATE OF url) also refused SET url = url, which tools that write every column
-- send. Each check now reads, on UPDATE, only the columns whose value changes (NEW.col IS
-- DISTINCT FROM OLD.col): check_webhook the event, URL, headers, body and secret each on its
-- own; check_webhook_url the URL (its note on a fragment too); check_webhook_body_depth the
-- body; check_previous_secret previous_secret. This is what check_webhook_limits has done since
-- 0009 and what 0053 did for a host in brackets; both stay as they are.
-- check_webhook_required_columns stays as well: a NOT NULL column was never NULL before, so a
-- NULL there is always a change. An INSERT is checked as before, and a changed column is
-- refused with the same message and hint as before.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0058_checks_on_changed_columns.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(58, 'checks_on_changed_columns'); END $$;

-- check_webhook as in 0057; on UPDATE each part checks only a column that changes.
CREATE OR REPLACE FUNCTION webhooky.check_webhook() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label   text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
    -- What this check reads that the statement writes: all of it on INSERT, on UPDATE only a
    -- column whose value changes.
    event_changed   boolean := TG_OP = 'INSERT' OR NEW.event IS DISTINCT FROM OLD.event;
    url_changed     boolean := TG_OP = 'INSERT' OR NEW.url IS DISTINCT FROM OLD.url;
    headers_changed boolean := TG_OP = 'INSERT' OR NEW.headers IS DISTINCT FROM OLD.headers;
    body_changed    boolean := TG_OP = 'INSERT' OR NEW.body IS DISTINCT FROM OLD.body;
    secret_changed  boolean := TG_OP = 'INSERT' OR NEW.secret IS DISTINCT FROM OLD.secret;
    header  record;
    detail  text;
    context text;
    known   text;
    -- What to do about a malformed secret, in the words of the statement that wrote it.
    secret_hint text := CASE WHEN TG_OP = 'INSERT'
        THEN 'Write webhooky.new_secret() as its value, e.g. INSERT INTO webhooky.webhooks (name, event, url, secret) '
             'VALUES (..., webhooky.new_secret()), or leave secret out (NULL) for unsigned requests.'
        ELSE format('Generate one with: UPDATE webhooky.webhooks SET secret = webhooky.new_secret() WHERE id = %s; '
                    '(or SET secret = NULL for unsigned requests)', NEW.id) END;
BEGIN
    IF event_changed AND NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = NEW.event) THEN
        SELECT string_agg(t.name, ', ' ORDER BY t.name) INTO known FROM webhooky.event_types t;
        RAISE EXCEPTION '%: unknown event %', label, quote_nullable(NEW.event)
            USING ERRCODE = 'check_violation',
                  HINT = format('Known events: %s. A DBA registers a new one with INSERT INTO webhooky.event_types.', coalesce(known, 'none'));
    END IF;

    IF url_changed AND NEW.url !~* '^https?://' THEN
        RAISE EXCEPTION '%: URL must start with http:// or https://', label
            USING ERRCODE = 'check_violation', HINT = 'For example https://erp.example.com/hooks/credit?id=#customer.id#';
    END IF;
    IF url_changed AND (NEW.url ~* '^https?://([/?]|$)'
       OR (NEW.url ~* '^https?://#' AND NEW.url !~* ('^https?://' || webhooky.placeholder_pattern()))) THEN
        RAISE EXCEPTION '%: URL has no host', label
            USING ERRCODE = 'check_violation', HINT = 'Write the host after the scheme, e.g. https://erp.example.com/...';
    END IF;
    IF url_changed AND (NEW.url ~ '[^\x21-\x7E]' OR NEW.url ~ '["<>\\^`{|}]') THEN
        RAISE EXCEPTION '%: URL contains a space, a control or non-ASCII character, or one of " < > \ ^ ` { | }', label
            USING ERRCODE = 'check_violation', HINT = 'Percent-encode such characters (a space as %20); values of #variables# are encoded automatically.';
    END IF;

    IF headers_changed AND jsonb_typeof(NEW.headers) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION '%: headers must be a JSON object', label
            USING ERRCODE = 'check_violation', HINT = 'For example {"Authorization": "Bearer #account.apiKey#"}';
    END IF;
    FOR header IN SELECT h.key, h.value FROM jsonb_each(NEW.headers) h WHERE headers_changed LOOP
        IF jsonb_typeof(header.value) <> 'string' THEN
            RAISE EXCEPTION '%: header "%" must have a string value, not a JSON %', label, header.key, jsonb_typeof(header.value)
                USING ERRCODE = 'check_violation', HINT = 'Write the value in double quotes, e.g. {"X-Shop": "#account.eshopId#"}';
        END IF;
        IF header.key !~ '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$' THEN
            RAISE EXCEPTION '%: "%" is not a valid HTTP header name', label, header.key
                USING ERRCODE = 'check_violation', HINT = 'Header names hold letters, digits and !#$%&''*+-.^_`|~ only.';
        END IF;
        IF lower(header.key) IN ('host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te',
                                 'trailer', 'expect', 'webhook-id', 'webhook-timestamp', 'webhook-signature') THEN
            RAISE EXCEPTION '%: header "%" is set by Webhooky or by HTTP itself and cannot be configured', label, header.key
                USING ERRCODE = 'check_violation',
                      HINT = 'Leave it out of headers: Webhooky sends webhook-id, webhook-timestamp and webhook-signature itself '
                             '(set secret for a signature), and Host, Content-Length and the connection headers come from the URL '
                             'and the body. Other names, such as Authorization or X-Shop, are yours to set.';
        END IF;
        IF (header.value #>> '{}') ~ '[\x01-\x08\x0A-\x1F\x7F]' THEN
            RAISE EXCEPTION '%: header "%" contains a line break or control character', label, header.key
                USING ERRCODE = 'check_violation',
                      HINT = 'Write the value on one line, without control characters (a tab is allowed), '
                             'e.g. {"Authorization": "Bearer #account.apiKey#"}.';
        END IF;
    END LOOP;

    IF body_changed AND NEW.body ~ '^[ \t\r\n]*$' THEN
        NEW.body := NULL;  -- only white space: no body, so the request is a GET
    END IF;
    IF body_changed AND NEW.body IS NOT NULL THEN
        BEGIN
            -- Every placeholder counts as one JSON value; inside a string it is text. The worker's
            -- template engine applies the very same rule.
            PERFORM regexp_replace(NEW.body, webhooky.placeholder_pattern(), '[]', 'g')::json;
        EXCEPTION WHEN data_exception THEN
            GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
            RAISE EXCEPTION '%: body is not valid JSON%', label, webhooky.body_json_error(NEW.body, detail, context)
                USING ERRCODE = 'check_violation',
                      HINT = 'Write the body as JSON. A #placeholder# may stand inside a string ("#customer.email#") or alone as a value (#customer.credit#).';
        END;
    END IF;

    IF secret_changed AND NEW.secret = '' THEN
        NEW.secret := NULL;
    END IF;
    IF secret_changed AND NEW.secret IS NOT NULL THEN
        IF NEW.secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' OR length(decode(substr(NEW.secret, 7), 'base64')) NOT BETWEEN 24 AND 64 THEN
            RAISE EXCEPTION '%: secret must be "whsec_" followed by 24 to 64 bytes in base64', label
                USING ERRCODE = 'check_violation', HINT = secret_hint;
        END IF;
    END IF;

    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
EXCEPTION WHEN invalid_parameter_value THEN
    -- decode() of malformed base64
    RAISE EXCEPTION '%: secret must be "whsec_" followed by 24 to 64 bytes in base64', label
        USING ERRCODE = 'check_violation', HINT = secret_hint;
END
$$;

-- check_webhook_url as in 0057; on UPDATE only a URL that changes (the host in brackets already so).
CREATE OR REPLACE FUNCTION webhooky.check_webhook_url() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
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
    IF TG_OP = 'UPDATE' AND NEW.url IS NOT DISTINCT FROM OLD.url THEN
        RETURN NEW;  -- UPDATE OF url fires also for SET url = url: nothing new to check
    END IF;
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
    -- Brackets hold an IPv6 address (libcurl refuses anything else, at every delivery). A
    -- variable inside the brackets is left to the delivery.
    IF authority LIKE '[%' THEN
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

-- check_webhook_body_depth as in 0057; on UPDATE only a body that changes.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_body_depth() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.body IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.body IS DISTINCT FROM OLD.body)
       AND webhooky.json_depth(regexp_replace(NEW.body, webhooky.placeholder_pattern(), '[]', 'g')) > 512 THEN
        RAISE EXCEPTION '%: body is nested deeper than 512 levels', webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT')
            USING ERRCODE = 'check_violation', HINT = 'Flatten the body; the worker renders at most 512 levels.';
    END IF;
    RETURN NEW;
END
$$;

-- check_previous_secret as in 0057; on UPDATE only a previous_secret that changes.
CREATE OR REPLACE FUNCTION webhooky.check_previous_secret() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
    rotation_hint text := format('It is the secret before the last rotation, which webhooky.rotate_secret(%s) sets; leave it NULL, '
                                 'or give it a secret in the form webhooky.new_secret() makes.',
                                 CASE WHEN TG_OP = 'INSERT' THEN 'id' ELSE NEW.id::text END);
BEGIN
    IF NEW.previous_secret IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.previous_secret IS DISTINCT FROM OLD.previous_secret)
       AND (NEW.previous_secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' OR length(decode(substr(NEW.previous_secret, 7), 'base64')) NOT BETWEEN 24 AND 64) THEN
        RAISE EXCEPTION '%: previous_secret must be "whsec_" followed by 24 to 64 bytes in base64', label
            USING ERRCODE = 'check_violation', HINT = rotation_hint;
    END IF;
    RETURN NEW;
EXCEPTION WHEN invalid_parameter_value THEN
    -- decode() of malformed base64
    RAISE EXCEPTION '%: previous_secret must be "whsec_" followed by 24 to 64 bytes in base64', label
        USING ERRCODE = 'check_violation', HINT = rotation_hint;
END
$$;

COMMENT ON FUNCTION webhooky.check_webhook() IS
    'Trigger (before insert or update of a webhook): refuses an unknown event, a URL without http(s):// and a host or with unencoded characters, headers that are not an object of valid names and string values (or are set by Webhooky or HTTP), a body that is not JSON with #placeholders#, a malformed secret; empties a blank body and secret; on update checks only the columns that change, and moves updated_at and revision on.';
COMMENT ON FUNCTION webhooky.check_webhook_url() IS
    'Trigger (before insert or update of a webhook''s URL): refuses a URL whose host is empty (also behind a user@ or before a :port), a host in brackets that is no IPv6 address, and a port that is not 1-65535; points out a #fragment, which HTTP never sends. On update only a URL that changes.';
COMMENT ON FUNCTION webhooky.check_webhook_body_depth() IS
    'Trigger (before insert or update of a webhook): refuses a body template nested deeper than 512 levels of [ ] and { } (on update only a body that changes).';
COMMENT ON FUNCTION webhooky.check_previous_secret() IS
    'Trigger (before insert or update of previous_secret): refuses one that is not "whsec_" and 24 to 64 bytes in base64 (on update only one that changes).';

COMMIT;
