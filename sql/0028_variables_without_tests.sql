-- Webhooky schema, migration 0028: "Insert variable" lists what events offer, not what tests were
-- given.
--
-- webhooky.variables read the event type's sample and its most recent events, test events
-- included: the payload of webhooky.send_test(id, '{...}') is whatever the caller wrote, and one
-- with from_event => is another event type's payload under this one's name. Their names and
-- values were listed as the event's (the latest test's example first), for every admin, and the
-- doctor's variables check took them as names the event has. A tenant's role may send tests, so
-- any tenant could put names and examples of its choosing into every admin's list, or silence
-- the doctor about a misspelt variable. Test events are now left out, as the doctor's events
-- check already leaves them out. Nothing else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0028_variables_without_tests.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(28, 'variables_without_tests'); END $$;

-- As in migration 0012, without test events.
CREATE OR REPLACE FUNCTION webhooky.variables(event text, recent_events integer DEFAULT 100)
RETURNS TABLE (variable text, placeholder text, type text, example text, source text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    known text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = variables.event) THEN
        SELECT string_agg(t.name, ', ' ORDER BY t.name) INTO known FROM webhooky.event_types t;
        RAISE EXCEPTION 'webhooky.variables: unknown event %', quote_nullable(variables.event)
            USING ERRCODE = 'invalid_parameter_value', HINT = format('Known events: %s.', coalesce(known, 'none'));
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
$$;

COMMIT;
