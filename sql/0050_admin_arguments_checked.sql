-- Webhooky schema, migration 0050: two admin functions refuse what they used to ignore or fail
-- on without a word of their own.
--
-- webhooky.send_test(id, payload, from_event => n) with both a payload and an event sent the
-- payload and ignored the event without a word: an admin who meant to test with the recorded
-- event's payload got a test of another one. It now says to give one of them.
-- webhooky.variables(event, recent_events) with a negative number failed with PostgreSQL's
-- 'LIMIT must not be negative' and a page of the function's SQL as context; it now says what
-- the argument is. NULL still means every recent event (of the last 10,000), as before.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0050_admin_arguments_checked.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(50, 'admin_arguments_checked'); END $$;

-- As in migration 0014, and a payload given twice over (as JSON and as an event) refused.
CREATE OR REPLACE FUNCTION webhooky.send_test(webhook_id bigint, payload jsonb DEFAULT NULL::jsonb, from_event bigint DEFAULT NULL::bigint)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    target webhooky.webhooks;
    body jsonb := send_test.payload;
    caller text := webhooky.caller_account();
    new_event_id bigint;
    new_delivery_id bigint;
BEGIN
    SELECT * INTO target FROM webhooky.webhooks w WHERE w.id = send_test.webhook_id;
    IF NOT FOUND OR (caller IS NOT NULL AND target.account_id IS DISTINCT FROM caller) THEN
        RAISE EXCEPTION 'webhooky.send_test: there is no webhook %', send_test.webhook_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, name FROM webhooky.webhooks lists them.';
    END IF;
    IF body IS NOT NULL AND send_test.from_event IS NOT NULL THEN
        RAISE EXCEPTION 'webhooky.send_test: give a payload or from_event, not both'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('webhooky.send_test(%s, from_event => %s) sends that event''s payload; webhooky.send_test(%s, ''{...}'') the one given.',
                                send_test.webhook_id, send_test.from_event, send_test.webhook_id);
    END IF;
    IF body IS NULL AND send_test.from_event IS NOT NULL THEN
        SELECT e.payload INTO body FROM webhooky.events e
         WHERE e.id = send_test.from_event AND (caller IS NULL OR e.account_id = caller);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'webhooky.send_test: there is no event %', send_test.from_event USING ERRCODE = 'no_data_found';
        END IF;
    ELSIF body IS NULL THEN
        SELECT t.sample INTO body FROM webhooky.event_types t WHERE t.name = target.event;
        IF body IS NULL THEN
            RAISE EXCEPTION 'webhooky.send_test: event type % has no sample payload', quote_literal(target.event)
                USING ERRCODE = 'no_data_found', HINT = 'Pass one: SELECT webhooky.send_test(id, ''{"customer": {...}}'').';
        END IF;
    END IF;
    IF jsonb_typeof(body) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'webhooky.send_test: the payload must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_test.payload IS NOT NULL AND octet_length(send_test.payload::text) > 1048576 THEN
        -- A tenant's test must not hand the worker payloads of any size.
        RAISE EXCEPTION 'webhooky.send_test: the payload is % bytes of JSON; at most 1 MiB', octet_length(send_test.payload::text)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out, is_test)
    VALUES (target.event, target.account_id, body, ARRAY[target.id], true, true)
    RETURNING id INTO new_event_id;
    INSERT INTO webhooky.deliveries (event_id, webhook_id, is_test)
    VALUES (new_event_id, target.id, true)
    RETURNING id INTO new_delivery_id;
    PERFORM pg_notify('webhooky', '');
    RETURN new_delivery_id;
END
$function$
;

-- As in migration 0028 (with 0031's search_path), and a negative recent_events refused first.
CREATE OR REPLACE FUNCTION webhooky.variables(event text, recent_events integer DEFAULT 100)
 RETURNS TABLE(variable text, placeholder text, type text, example text, source text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
    known text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = variables.event) THEN
        SELECT string_agg(t.name, ', ' ORDER BY t.name) INTO known FROM webhooky.event_types t;
        RAISE EXCEPTION 'webhooky.variables: unknown event %', quote_nullable(variables.event)
            USING ERRCODE = 'invalid_parameter_value', HINT = format('Known events: %s.', coalesce(known, 'none'));
    END IF;
    IF variables.recent_events < 0 THEN
        RAISE EXCEPTION 'webhooky.variables: recent_events must be 0 or more, not %', variables.recent_events
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'It is how many of the event''s most recent events are read besides its sample (default 100); 0 reads the sample only.';
    END IF;
    RETURN QUERY

        WITH RECURSIVE payloads AS (
            SELECT t.sample AS payload, 'sample' AS source, 0::bigint AS rank
              FROM webhooky.event_types t
             WHERE t.name = variables.event AND t.sample IS NOT NULL
            UNION ALL
            SELECT recent.payload, 'event ' || recent.id, recent.id
              FROM (SELECT e.id, e.payload
                      FROM (SELECT e.id, e.event, e.payload, e.is_test FROM webhooky.events e ORDER BY e.id DESC LIMIT 10000) e
                     WHERE e.event = variables.event AND NOT e.is_test  -- a test's payload is anyone's text
                     ORDER BY e.id DESC
                     LIMIT variables.recent_events) recent
        ), walk (path, value, source, rank) AS (
            SELECT ARRAY[member.key], member.value, p.source, p.rank
              FROM payloads p, jsonb_each(p.payload) member
            UNION ALL
            SELECT w.path || member.key, member.value, w.source, w.rank
              FROM walk w, jsonb_each(w.value) member
             WHERE jsonb_typeof(w.value) = 'object'
        )
        SELECT DISTINCT ON (array_to_string(w.path, '.'))
               array_to_string(w.path, '.'),
               '#' || array_to_string(w.path, '.') || '#',
               jsonb_typeof(w.value),
               CASE jsonb_typeof(w.value) WHEN 'string' THEN w.value #>> '{}' ELSE w.value::text END,
               w.source
          FROM walk w
         WHERE NOT EXISTS (SELECT 1 FROM unnest(w.path) segment WHERE segment !~ '^[A-Za-z_][A-Za-z0-9_]*$')
         ORDER BY array_to_string(w.path, '.'), (w.rank = 0), w.rank DESC;
END
$function$
;

COMMIT;
