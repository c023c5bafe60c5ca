-- Webhooky schema, migration 0044: a body's JSON error quotes none of its text, in any wording,
-- and names the right place on a long line.
--
-- Migration 0041 reworded PostgreSQL's JSON error details so that they quote no text of the
-- body, but:
-- * it passed any detail it did not recognise through as it was. A server whose lc_messages
--   is not English words them all differently ('Erwartete ..., aber "sk_live_..." gefunden'),
--   so there the refusal quoted the body's token again, a literal API key included;
-- * its pattern for 'Expected ..., but found "<token>".' was greedy: a string token that holds
--   ', but found "' left what came before that in the message ('expected ":", but found
--   ""sk_live_4eC39, found ...');
-- * it looked for PostgreSQL's context (the line up to the error, its last 50 bytes on a long
--   line) at its first place on the line: when the same text came earlier on that line (three
--   long strings that end alike), the character named was that of the earlier one;
-- * for a control character in a string (a tab), it named the character before it.
-- Now the detail is reworded only when it is one that PostgreSQL 15 writes, and reduced to
-- 'syntax error' otherwise; a context found more than once on its line is settled by parsing the
-- body up to each place (the error at the end of the body is at its last place).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0044_body_errors_exact_place.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(44, 'body_errors_exact_place'); END $$;

-- As in migration 0041, but only the details PostgreSQL 15 writes (src/common/jsonapi.c,
-- json_errdetail) are reworded; any other (another language, another version) is not shown.
CREATE OR REPLACE FUNCTION webhooky.json_error_reason(detail text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parts text[];
BEGIN
    IF detail IS NULL OR detail = '' THEN
        RETURN 'syntax error';
    END IF;
    -- What was expected is one of a fixed list, so the token is all that follows it.
    parts := regexp_match(detail, '^Expected (end of input|array element or "]"|"," or "]"|":"|JSON value|string or "}"|"," or "}"|string), but found "(.*)"\.$');
    IF parts IS NOT NULL THEN
        RETURN 'expected ' || parts[1] || ', found ' || webhooky.json_token_kind(parts[2]);
    END IF;
    parts := regexp_match(detail, '^Token "(.*)" is invalid\.$');
    IF parts IS NOT NULL AND parts[1] LIKE '"%' THEN
        RETURN 'found a string without its closing double quote';  -- the only invalid token that is one
    ELSIF parts IS NOT NULL THEN
        RETURN 'found ' || webhooky.json_token_kind(parts[1]);
    END IF;
    IF detail ~ '^Escape sequence "\\.*" is invalid\.$' THEN
        RETURN 'invalid escape sequence in a string';  -- not the character after the backslash, body text too
    END IF;
    IF detail ~ '^Character with value 0x[0-9a-f]{2} must be escaped\.$'
       OR detail IN ('The input string ended unexpectedly.', E'"\\u" must be followed by four hexadecimal digits.',
                     E'\\u0000 cannot be converted to text.',
                     'Unicode escape values cannot be used for code point values above 007F when the encoding is not UTF8.',
                     'Unicode high surrogate must not follow a high surrogate.', 'Unicode low surrogate must follow a high surrogate.') THEN
        RETURN lower(left(detail, 1)) || substr(rtrim(detail, '.'), 2);
    END IF;
    -- Worded otherwise (lc_messages in another language): it may quote the body.
    RETURN 'syntax error';
END
$$;
COMMENT ON FUNCTION webhooky.json_error_reason(text) IS
    'PostgreSQL''s JSON error detail, reworded without the token it quotes (which may be a literal secret of a body template); a detail in another wording is not shown (''syntax error'').';

-- The detail of PostgreSQL's JSON error for a text, or NULL when it is JSON.
CREATE FUNCTION webhooky.json_error_detail(document text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    detail text;
BEGIN
    PERFORM document::json;
    RETURN NULL;
EXCEPTION WHEN data_exception THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN coalesce(detail, '');
END
$$;
COMMENT ON FUNCTION webhooky.json_error_detail(text) IS
    'The detail of PostgreSQL''s JSON error for a text (NULL when it is JSON): body_json_error parses a body up to a place with it.';

-- As in migration 0041, but the line shown in PostgreSQL's context is looked for at every place
-- it occurs (it is the last 50 bytes up to the error on a long line, which the line may hold
-- more than once): the place is the first at which the body, cut just after it, fails with the
-- same detail (one character later for a control character, which the context leaves out). An
-- error at the end of the body (cut there, any earlier place fails the same way) is at the last.
CREATE OR REPLACE FUNCTION webhooky.body_json_error(template text, detail text, context text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reason text := webhooky.json_error_reason(detail);
    place text[] := regexp_match(context, '^JSON data, line ([0-9]+): (\.\.\.)?([^\n]*)');
    line_number integer;
    shown text;
    written text;
    replaced text;
    before text := '';
    at_end boolean := detail = 'The input string ended unexpectedly.' OR detail LIKE 'Token ""%';
    control boolean := detail ~ '^Character with value 0x[0-9a-f]{2} must be escaped\.$';
    found integer;
    candidate integer;
    last_found integer;
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
    IF shown <> '' AND position(shown IN substr(replaced, found + 1)) > 0 THEN
        -- More than one place: the body before the line, as PostgreSQL parsed it.
        IF line_number > 1 THEN
            before := regexp_replace(array_to_string((string_to_array(template, E'\n'))[1:line_number - 1], E'\n'),
                                     webhooky.placeholder_pattern(), '[]', 'g') || E'\n';
        END IF;
        candidate := found;
        found := NULL;
        WHILE candidate IS NOT NULL LOOP
            last_found := candidate;
            IF NOT at_end
               AND (webhooky.json_error_detail(before || left(replaced, candidate + length(shown) - 1)) = detail
                    OR (control AND webhooky.json_error_detail(before || left(replaced, candidate + length(shown))) = detail)) THEN
                found := candidate;
                EXIT;
            END IF;
            start := position(shown IN substr(replaced, candidate + 1));
            candidate := CASE WHEN start = 0 THEN NULL ELSE candidate + start END;
        END LOOP;
        -- At the end of the body: its last place. Otherwise none cut alike: the first, as before.
        found := coalesce(found, CASE WHEN at_end THEN last_found ELSE position(shown IN replaced) END);
    END IF;
    column_replaced := found + greatest(length(shown), 1) - 1;
    IF control THEN
        column_replaced := found + length(shown);  -- the character itself, which the context leaves out
    END IF;
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

COMMIT;
