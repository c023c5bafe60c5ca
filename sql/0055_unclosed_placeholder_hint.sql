-- Webhooky schema, migration 0055: a placeholder missing its closing '#' is pointed out in a
-- body's refusal.
--
-- A body such as {"c": #customer.credit} (the closing '#' forgotten on a placeholder standing
-- alone as a value) was refused with 'found a word that is not JSON (text takes double quotes)':
-- the place was right, but nothing suggested the likely cause, while a URL's fragment of that
-- kind gets a note in webhooky preview. When the word found is a '#' followed by a variable name
-- (the placeholder grammar without its closing '#') and, closed, it would stand where a JSON
-- value may, the refusal now ends with "; '#customer.credit' looks like a variable missing its
-- closing '#': write #customer.credit#". It quotes only that name, which is what the admin meant
-- as a variable. Every other refusal is worded as before, and nothing more or less is refused.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0055_unclosed_placeholder_hint.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(55, 'unclosed_placeholder_hint'); END $$;

-- The name after the '#' at a place of a body template (line and character as written) when it
-- reads as a placeholder missing its closing '#': a variable name follows the '#', and the body
-- up to that place, with a value after it, parses to its end (a value may stand there). NULL
-- otherwise (no name, or a key's or a comma's place).
CREATE FUNCTION webhooky.unclosed_placeholder(template text, line_number integer, at_character integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    written text := split_part(template, E'\n', line_number);
    name text := substring(substr(written, at_character) FROM '^#([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)');
    before text;
BEGIN
    IF name IS NULL THEN
        RETURN NULL;
    END IF;
    before := array_to_string((string_to_array(template, E'\n'))[1:line_number - 1] || left(written, at_character - 1), E'\n');
    IF coalesce(webhooky.json_error_detail(regexp_replace(before, webhooky.placeholder_pattern(), '[]', 'g') || '[]'),
                'The input string ended unexpectedly.') <> 'The input string ended unexpectedly.' THEN
        RETURN NULL;  -- closed, it would still be refused there (a key, after a value)
    END IF;
    RETURN name;
END
$$;
COMMENT ON FUNCTION webhooky.unclosed_placeholder(text, integer, integer) IS
    'The variable name after a ''#'' at a place of a body template (line, character) when it reads as a placeholder missing its closing ''#'' where a value may stand; NULL otherwise. Internal: body_json_error''s note.';

-- As in migration 0044, and a '#' found where a value may stand, followed by a variable name,
-- is named as a placeholder missing its closing '#'.
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
    unclosed text;
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
    IF detail = 'Token "#" is invalid.' THEN
        unclosed := webhooky.unclosed_placeholder(template, line_number, column_replaced + shift);
    END IF;
    RETURN format(' at line %s, character %s: %s', line_number, column_replaced + shift, reason)
        || CASE WHEN unclosed IS NULL THEN ''
                ELSE format('; ''#%s'' looks like a variable missing its closing ''#'': write #%s#', unclosed, unclosed) END;
END
$$;
COMMENT ON FUNCTION webhooky.body_json_error(text, text, text) IS
    'Why and where a body template is not JSON (line and character as written), from PostgreSQL''s JSON error detail and context, without quoting the template''s text (but for the name of a placeholder missing its closing ''#'').';

COMMIT;
