-- Webhooky schema, migration 0012: friendlier answers for two common mistakes.
--
-- 1. webhooky.variables('a misspelt event') returned no rows, where emit, wanted_condition and
--    the webhook checks all say "unknown event": it now says so too, with the known events.
-- 2. A tenant's webhook without account_id was refused by row-level security with
--    PostgreSQL's bare message; it now gets the tenant's own account (the only one it may
--    have; NULL would mean every account).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0012_friendlier_mistakes.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(12, 'friendlier_mistakes'); END $$;

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
                      FROM (SELECT e.id, e.event, e.payload FROM webhooky.events e ORDER BY e.id DESC LIMIT 10000) e
                     WHERE e.event = variables.event
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

-- Before check_webhook_limits (triggers fire in name order), which counts the account's webhooks.
CREATE FUNCTION webhooky.account_of_tenant() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.account_id IS NULL THEN
        NEW.account_id := webhooky.caller_account();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER account_of_tenant BEFORE INSERT ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.account_id IS NULL) EXECUTE FUNCTION webhooky.account_of_tenant();

COMMIT;
