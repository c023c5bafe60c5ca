-- Webhooky schema, migration 0057: a refused INSERT of a webhook no longer names an id that no
-- webhook has.
--
-- The checks on a saved webhook (check_webhook, check_webhook_url, check_webhook_limits,
-- check_previous_secret, check_webhook_body_depth, check_webhook_required_columns) began their
-- refusals with 'webhook 17 "ERP": ...', 17 being only the value the identity sequence handed to
-- the refused row: no webhook 17 exists (the next INSERT that succeeds gets 18), and an admin who
-- looked for it found nothing. On INSERT a
-- refusal (and the notice about a URL's fragment) now names 'the new webhook "ERP"' ('the new
-- webhook' without a name); on UPDATE it names the row as before, 'webhook 17 "ERP"'. The hint
-- for a malformed previous_secret named webhooky.rotate_secret(17) on INSERT too: there it now
-- says webhooky.rotate_secret(id). The rest of every message is as before, and nothing more or
-- less is refused.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0057_new_webhook_refusals_name_no_id.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(57, 'new_webhook_refusals_name_no_id'); END $$;

-- How a refusal of a saved webhook names it. Every role may call it (as body_json_error): the
-- checks run with the rights of whoever saves a webhook, a tenant included.
CREATE FUNCTION webhooky.webhook_label(id bigint, name text, is_new boolean) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN is_new THEN 'the new webhook' ELSE format('webhook %s', id) END
           || CASE WHEN name <> '' THEN format(' "%s"', name) ELSE '' END
$$;
COMMENT ON FUNCTION webhooky.webhook_label(bigint, text, boolean) IS
    'How a refusal names a webhook being saved: ''webhook 17 "ERP"'' for a row that exists, ''the new webhook "ERP"'' for an INSERT (whose id no webhook has if it is refused). Internal.';

-- check_webhook_url as in 0053, naming a new webhook without its id.
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

-- check_webhook as in 0053, naming a new webhook without its id.
CREATE OR REPLACE FUNCTION webhooky.check_webhook() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label   text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
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
    IF NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = NEW.event) THEN
        SELECT string_agg(t.name, ', ' ORDER BY t.name) INTO known FROM webhooky.event_types t;
        RAISE EXCEPTION '%: unknown event %', label, quote_nullable(NEW.event)
            USING ERRCODE = 'check_violation',
                  HINT = format('Known events: %s. A DBA registers a new one with INSERT INTO webhooky.event_types.', coalesce(known, 'none'));
    END IF;

    IF NEW.url !~* '^https?://' THEN
        RAISE EXCEPTION '%: URL must start with http:// or https://', label
            USING ERRCODE = 'check_violation', HINT = 'For example https://erp.example.com/hooks/credit?id=#customer.id#';
    END IF;
    IF NEW.url ~* '^https?://([/?]|$)'
       OR (NEW.url ~* '^https?://#' AND NEW.url !~* ('^https?://' || webhooky.placeholder_pattern())) THEN
        RAISE EXCEPTION '%: URL has no host', label
            USING ERRCODE = 'check_violation', HINT = 'Write the host after the scheme, e.g. https://erp.example.com/...';
    END IF;
    IF NEW.url ~ '[^\x21-\x7E]' OR NEW.url ~ '["<>\\^`{|}]' THEN
        RAISE EXCEPTION '%: URL contains a space, a control or non-ASCII character, or one of " < > \ ^ ` { | }', label
            USING ERRCODE = 'check_violation', HINT = 'Percent-encode such characters (a space as %20); values of #variables# are encoded automatically.';
    END IF;

    IF jsonb_typeof(NEW.headers) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION '%: headers must be a JSON object', label
            USING ERRCODE = 'check_violation', HINT = 'For example {"Authorization": "Bearer #account.apiKey#"}';
    END IF;
    FOR header IN SELECT h.key, h.value FROM jsonb_each(NEW.headers) h LOOP
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

    IF NEW.body ~ '^[ \t\r\n]*$' THEN
        NEW.body := NULL;  -- only white space: no body, so the request is a GET
    END IF;
    IF NEW.body IS NOT NULL THEN
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

    IF NEW.secret = '' THEN
        NEW.secret := NULL;
    END IF;
    IF NEW.secret IS NOT NULL THEN
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

-- check_webhook_limits as in 0053, naming a new webhook without its id.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_limits() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
    limit_value integer;
    existing integer;
    header record;
    headers_changed boolean := true;
BEGIN
    -- An UPDATE is checked only for what it changes: a webhook written under a larger limit
    -- can still be disabled, renamed or moved to a shorter URL after the limit was lowered.
    limit_value := webhooky.setting('max_url_length');
    IF (TG_OP = 'INSERT' OR NEW.url IS DISTINCT FROM OLD.url) AND length(NEW.url) > limit_value THEN
        RAISE EXCEPTION '%: URL is % characters long; the limit is %', label, length(NEW.url), limit_value
            USING ERRCODE = 'check_violation', HINT = 'An admin can raise it: INSERT INTO webhooky.settings VALUES (''max_url_length'', ''4096'') ON CONFLICT (name) DO UPDATE SET value = excluded.value';
    END IF;
    limit_value := webhooky.setting('max_body_length');
    IF (TG_OP = 'INSERT' OR NEW.body IS DISTINCT FROM OLD.body) AND length(NEW.body) > limit_value THEN
        RAISE EXCEPTION '%: body is % characters long; the limit is %', label, length(NEW.body), limit_value
            USING ERRCODE = 'check_violation', HINT = 'Shorten the body template, or raise max_body_length in webhooky.settings.';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.headers IS NOT DISTINCT FROM OLD.headers THEN
        headers_changed := false;
    END IF;
    limit_value := webhooky.setting('max_headers');
    IF headers_changed AND (SELECT count(*) FROM jsonb_object_keys(NEW.headers)) > limit_value THEN
        RAISE EXCEPTION '%: % headers; the limit is %', label, (SELECT count(*) FROM jsonb_object_keys(NEW.headers)), limit_value
            USING ERRCODE = 'check_violation', HINT = 'Raise max_headers in webhooky.settings if you need more.';
    END IF;
    limit_value := webhooky.setting('max_header_value_length');
    FOR header IN SELECT h.key, h.value #>> '{}' AS value FROM jsonb_each(NEW.headers) h WHERE headers_changed LOOP
        IF length(header.value) > limit_value THEN
            RAISE EXCEPTION '%: header "%" is % characters long; the limit is %', label, header.key, length(header.value), limit_value
                USING ERRCODE = 'check_violation',
                      HINT = 'Shorten the value, or an admin raises the limit: INSERT INTO webhooky.settings VALUES (''max_header_value_length'', ''8192'') '
                             'ON CONFLICT (name) DO UPDATE SET value = excluded.value';
        END IF;
    END LOOP;
    IF NEW.account_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.account_id IS DISTINCT FROM OLD.account_id) THEN
        -- One writer per account at a time, so that concurrent inserts cannot pass the cap together
        -- (a lock whose key other roles cannot take: see webhooky.lock_account).
        PERFORM webhooky.lock_account(NEW.account_id);
        limit_value := webhooky.setting('max_webhooks_per_account');
        SELECT count(*) INTO existing FROM webhooky.webhooks w WHERE w.account_id = NEW.account_id AND w.id <> NEW.id;
        IF existing >= limit_value THEN
            RAISE EXCEPTION '%: account % already has % webhooks; the limit is %', label, quote_literal(NEW.account_id), existing, limit_value
                USING ERRCODE = 'check_violation', HINT = 'Delete unused webhooks, or ask an admin to raise max_webhooks_per_account in webhooky.settings.';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- check_previous_secret as in 0053, naming a new webhook without its id, in its message and its hint.
CREATE OR REPLACE FUNCTION webhooky.check_previous_secret() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
    rotation_hint text := format('It is the secret before the last rotation, which webhooky.rotate_secret(%s) sets; leave it NULL, '
                                 'or give it a secret in the form webhooky.new_secret() makes.',
                                 CASE WHEN TG_OP = 'INSERT' THEN 'id' ELSE NEW.id::text END);
BEGIN
    IF NEW.previous_secret IS NOT NULL
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

-- check_webhook_body_depth as in 0002 (search_path from 0031), naming a new webhook without its id.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_body_depth() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.body IS NOT NULL
       AND webhooky.json_depth(regexp_replace(NEW.body, webhooky.placeholder_pattern(), '[]', 'g')) > 512 THEN
        RAISE EXCEPTION '%: body is nested deeper than 512 levels', webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT')
            USING ERRCODE = 'check_violation', HINT = 'Flatten the body; the worker renders at most 512 levels.';
    END IF;
    RETURN NEW;
END
$$;

-- check_webhook_required_columns as in 0036, naming a new webhook without its id.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_required_columns() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label   text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
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

COMMIT;
