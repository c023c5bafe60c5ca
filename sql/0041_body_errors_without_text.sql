-- Webhooky schema, migration 0041: a body that is not JSON is refused without quoting it.
--
-- check_webhook refused such a body with PostgreSQL's own JSON error: its message quoted the
-- offending token ('but found ""sk_live_4eC39""') and its DETAIL the line up to it, so a literal
-- API key or password written in a body template reached the client and the server's log. The
-- refusal now says where (line and character of the webhook's own body, placeholders counted as
-- written) and what kind of thing was found there (a string, a number, a word), never the text.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0041_body_errors_without_text.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(41, 'body_errors_without_text'); END $$;

-- What PostgreSQL's JSON parser found, said without the text itself.
CREATE FUNCTION webhooky.json_token_kind(token text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN token IN ('{', '}', '[', ']', ',', ':', 'true', 'false', 'null') THEN '"' || token || '"'
        WHEN token LIKE '"%' THEN 'a string'
        WHEN token ~ '^-?[0-9]' THEN 'a number'
        WHEN token LIKE '''%' THEN 'text in single quotes (JSON strings take double quotes)'
        WHEN token = '' THEN 'nothing'
        ELSE 'a word that is not JSON (text takes double quotes)'
    END
$$;
COMMENT ON FUNCTION webhooky.json_token_kind(text) IS
    'What kind of JSON token a text is (a string, a number, a word), or the token itself when it is punctuation or true/false/null: refusals say what was found without quoting a body''s text.';

-- PostgreSQL's JSON error detail (PG_EXCEPTION_DETAIL) without the text it quotes.
CREATE FUNCTION webhooky.json_error_reason(detail text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parts text[];
BEGIN
    IF detail IS NULL OR detail = '' THEN
        RETURN 'syntax error';
    END IF;
    parts := regexp_match(detail, '^(Expected .*), but found "(.*)"\.$');
    IF parts IS NOT NULL THEN
        RETURN 'e' || substr(parts[1], 2) || ', found ' || webhooky.json_token_kind(parts[2]);
    END IF;
    parts := regexp_match(detail, '^Token "(.*)" is invalid\.$');
    IF parts IS NOT NULL THEN
        RETURN 'found ' || webhooky.json_token_kind(parts[1]);
    END IF;
    -- The others quote no text of the body (an escape sequence is a backslash and one character).
    RETURN lower(left(detail, 1)) || substr(rtrim(detail, '.'), 2);
END
$$;
COMMENT ON FUNCTION webhooky.json_error_reason(text) IS
    'PostgreSQL''s JSON error detail, reworded without the token it quotes (which may be a literal secret of a body template).';

-- Why a body template is not JSON, and where: ' at line N, character C: <reason>'. PostgreSQL's
-- parser reads the template with each placeholder replaced by [] and says where it stopped in
-- its error context ('JSON data, line N: <the line up to the token>'); C is counted in the
-- template as written: the last character of the offending token, or the first of the
-- placeholder it falls in. The reason is json_error_reason's (a placeholder found where it may
-- not stand is called one).
CREATE FUNCTION webhooky.body_json_error(template text, detail text, context text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reason text := webhooky.json_error_reason(detail);
    place text[] := regexp_match(context, '^JSON data, line ([0-9]+): (\.\.\.)?([^\n]*)');
    line_number integer;
    shown text;
    written text;
    replaced text;
    found integer;
    column_replaced integer;
    shift integer := 0;
    n integer := 1;
    start integer;
BEGIN
    IF place IS NULL THEN
        RETURN ': ' || reason;
    END IF;
    line_number := place[1]::integer;
    written := split_part(template, E'\n', line_number);
    replaced := regexp_replace(written, webhooky.placeholder_pattern(), '[]', 'g');
    shown := place[3];
    -- PostgreSQL adds '...' when the line goes on after the token.
    IF shown LIKE '%...' AND position(left(shown, -3) IN replaced) > 0 THEN
        shown := left(shown, -3);
    END IF;
    found := position(shown IN replaced);
    IF found = 0 THEN
        RETURN format(' at line %s: %s', line_number, reason);
    END IF;
    column_replaced := found + greatest(length(shown), 1) - 1;
    LOOP
        start := regexp_instr(written, webhooky.placeholder_pattern(), 1, n);
        EXIT WHEN start = 0 OR start - shift > column_replaced;
        IF column_replaced <= start - shift + 1 THEN  -- on the [] that stands for this placeholder
            RETURN format(' at line %s, character %s: %s', line_number, start, replace(reason, 'found "["', 'found a placeholder'));
        END IF;
        shift := shift + length(regexp_substr(written, webhooky.placeholder_pattern(), 1, n)) - 2;
        n := n + 1;
    END LOOP;
    RETURN format(' at line %s, character %s: %s', line_number, column_replaced + shift, reason);
END
$$;
COMMENT ON FUNCTION webhooky.body_json_error(text, text, text) IS
    'Why and where a body template is not JSON (line and character as written), from PostgreSQL''s JSON error detail and context, without quoting the template''s text.';

-- As in migration 0001 (search_path from 0031), but a body that is not JSON is refused with the
-- place and the kind of token found, and no DETAIL quoting the body.
CREATE OR REPLACE FUNCTION webhooky.check_webhook() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label   text := format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END;
    header  record;
    detail  text;
    context text;
    known   text;
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
                USING ERRCODE = 'check_violation';
        END IF;
        IF (header.value #>> '{}') ~ '[\x01-\x08\x0A-\x1F\x7F]' THEN
            RAISE EXCEPTION '%: header "%" contains a line break or control character', label, header.key
                USING ERRCODE = 'check_violation';
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
                USING ERRCODE = 'check_violation', HINT = 'Generate one with: UPDATE webhooky.webhooks SET secret = webhooky.new_secret() WHERE id = ...';
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
        USING ERRCODE = 'check_violation', HINT = 'Generate one with: UPDATE webhooky.webhooks SET secret = webhooky.new_secret() WHERE id = ...';
END
$$;

COMMIT;
