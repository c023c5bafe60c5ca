-- Webhooky schema, migration 0001: the core.
--
-- Apply with `webhooky migrate` (which applies only what is missing), or by hand:
--   psql -X -v ON_ERROR_STOP=1 -f sql/0001_core.sql
-- Every statement runs in one transaction: either all of it is installed or nothing.

BEGIN;

-- Refuse to run twice, with a message that says what to do instead.
DO $guard$
BEGIN
    -- (Nested so that the inner query is planned only when the table exists.)
    IF to_regclass('webhooky.migrations') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM webhooky.migrations WHERE version = 1) THEN
            RAISE EXCEPTION 'Webhooky migration 0001 (core) is already applied to this database'
                USING HINT = 'Run "webhooky migrate" to apply only the migrations that are missing.';
        END IF;
    END IF;
END
$guard$;

CREATE SCHEMA IF NOT EXISTS webhooky;
COMMENT ON SCHEMA webhooky IS 'Webhooky: HTTP webhooks sent when data changes (https://github.com/webhooky).';

-- Which migrations are applied. Each migration records itself here first thing.
CREATE TABLE webhooky.migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE webhooky.migrations IS 'Applied Webhooky schema migrations; the highest version is the schema version.';
INSERT INTO webhooky.migrations (version, name) VALUES (1, 'core');

-- Later migrations call this first: it checks the order and records the migration.
CREATE FUNCTION webhooky.begin_migration(version integer, name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current integer;
BEGIN
    LOCK TABLE webhooky.migrations IN EXCLUSIVE MODE;
    SELECT max(m.version) INTO current FROM webhooky.migrations m;
    IF current >= begin_migration.version THEN
        RAISE EXCEPTION 'Webhooky migration % (%) is already applied to this database', lpad(begin_migration.version::text, 4, '0'), begin_migration.name
            USING HINT = 'Run "webhooky migrate" to apply only the migrations that are missing.';
    END IF;
    IF current <> begin_migration.version - 1 THEN
        RAISE EXCEPTION 'Webhooky migration % (%) needs migration % first; this database is at version %',
            lpad(begin_migration.version::text, 4, '0'), begin_migration.name, lpad((begin_migration.version - 1)::text, 4, '0'), current
            USING HINT = 'Apply the migrations in order, or run "webhooky migrate".';
    END IF;
    INSERT INTO webhooky.migrations (version, name) VALUES (begin_migration.version, begin_migration.name);
END
$$;
COMMENT ON FUNCTION webhooky.begin_migration(integer, text) IS 'Called first by every migration after 0001: checks the order and records it.';

-------------------------------------------------------------------------------
-- Events a webhook can be triggered by.
-------------------------------------------------------------------------------
CREATE TABLE webhooky.event_types (
    name        text  PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$'),
    description text,
    sample      jsonb CHECK (sample IS NULL OR jsonb_typeof(sample) = 'object')
);
COMMENT ON TABLE webhooky.event_types IS 'Events a webhook can be triggered by; a DBA adds rows for new events. sample is an example payload.';

INSERT INTO webhooky.event_types (name, description, sample) VALUES
('customer.credit_changed',
 'A customer''s credit balance changed; creditChange.value is new minus old.',
 '{"customer": {"id": 1001, "email": "jan.novak@example.cz", "credit": 1250.50,
                "group": {"id": 3, "name": "Wholesale"}, "tier": {"id": 2, "name": "Gold"}},
   "creditChange": {"value": 250.50, "previous": 1000.00},
   "account": {"eshopId": "eshop-42"}}'),
('customer.tier_changed',
 'A customer moved to another VIP tier; previousTier is where they came from.',
 '{"customer": {"id": 1001, "email": "jan.novak@example.cz", "credit": 1250.50,
                "group": {"id": 3, "name": "Wholesale"}, "tier": {"id": 3, "name": "Platinum"}},
   "previousTier": {"id": 2, "name": "Gold"},
   "creditChange": {"value": 0},
   "account": {"eshopId": "eshop-42"}}');

-------------------------------------------------------------------------------
-- Webhooks: configuration is rows.
-------------------------------------------------------------------------------
CREATE TABLE webhooky.webhooks (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id text,
    name       text        NOT NULL DEFAULT '',
    enabled    boolean     NOT NULL DEFAULT true,
    event      text        NOT NULL REFERENCES webhooky.event_types (name) ON UPDATE CASCADE,
    url        text        NOT NULL,
    body       text,
    headers    jsonb       NOT NULL DEFAULT '{}',
    secret     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    revision   integer     NOT NULL DEFAULT 1
);
CREATE INDEX webhooks_event ON webhooky.webhooks (event) WHERE enabled;
COMMENT ON TABLE webhooky.webhooks IS 'Webhooks: which event, which URL, what body and headers. Edit with plain SQL; every row is checked when saved.';
COMMENT ON COLUMN webhooky.webhooks.account_id IS 'The account (e-shop) whose events fire this webhook; NULL fires for every account.';
COMMENT ON COLUMN webhooky.webhooks.enabled IS 'A disabled webhook sends nothing; its pending deliveries wait until it is enabled again.';
COMMENT ON COLUMN webhooky.webhooks.url IS 'http:// or https:// URL template; #variables# are percent-encoded.';
COMMENT ON COLUMN webhooky.webhooks.body IS 'JSON body template; NULL or empty sends GET, otherwise POST.';
COMMENT ON COLUMN webhooky.webhooks.headers IS 'Custom headers: a JSON object of "Name": "value template".';
COMMENT ON COLUMN webhooky.webhooks.secret IS 'Standard Webhooks signing secret (whsec_...); NULL sends unsigned requests.';
COMMENT ON COLUMN webhooky.webhooks.revision IS 'Incremented on every change; the worker re-reads a webhook when it changes.';

-- The placeholder grammar, shared by the checks below and by the worker's template engine.
CREATE FUNCTION webhooky.placeholder_pattern() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '#[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*#' $$;
COMMENT ON FUNCTION webhooky.placeholder_pattern() IS 'Regular expression of a #name# placeholder.';

-- Generates a signing secret in the Standard Webhooks format: whsec_ + base64 of 32 random bytes.
CREATE FUNCTION webhooky.new_secret() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64')
$$;
COMMENT ON FUNCTION webhooky.new_secret() IS 'A new random signing secret (whsec_ + base64), for webhooks.secret.';

-- Checks a webhook when it is saved, so that a bad URL, body or header is refused with a
-- message that names the webhook and says what is wrong.
CREATE FUNCTION webhooky.check_webhook() RETURNS trigger
LANGUAGE plpgsql AS $$
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
            RAISE EXCEPTION '%: body is not valid JSON: %', label, coalesce(nullif(detail, ''), 'syntax error')
                USING ERRCODE = 'check_violation',
                      DETAIL = coalesce(substring(context from 'JSON data, (line \d+: [^\n]*)'), ''),
                      HINT = 'Write the body as JSON. A #placeholder# may stand inside a string ("#customer.email#") or alone as a value (#customer.credit#); in the detail, placeholders are shown as [].';
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
CREATE TRIGGER check_webhook BEFORE INSERT OR UPDATE ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_webhook();

-------------------------------------------------------------------------------
-- Events and deliveries: the transactional outbox.
-------------------------------------------------------------------------------
CREATE TABLE webhooky.events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event      text        NOT NULL,
    account_id text,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE webhooky.events IS 'Events recorded by webhooky.emit (only those some webhook wanted); deliveries refer to them.';

-- One row per (event, webhook). States (enforced by the CHECK below):
--   pending    waiting for its first attempt or between retries (next_attempt_at says when;
--              ''infinity'' while its webhook is disabled)
--   sending    claimed by a worker (claimed_by) until lease_expires_at; if the worker dies the
--              lease runs out and the delivery is pending again
--   succeeded  the endpoint answered 2xx
--   dead       Webhooky gave up (retries exhausted, or the request cannot be made); redeliver by SQL
CREATE TABLE webhooky.deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint      NOT NULL,
    webhook_id       bigint      NOT NULL,
    state            text        NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'sending', 'succeeded', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    claimed_by       text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE INDEX deliveries_due ON webhooky.deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_leased ON webhooky.deliveries (lease_expires_at) WHERE state = 'sending';
COMMENT ON TABLE webhooky.deliveries IS 'One row per (event, webhook): state pending | sending | succeeded | dead, attempts and the last outcome.';
COMMENT ON COLUMN webhooky.deliveries.attempts IS 'Attempts started so far (each is a row in webhooky.attempts once its outcome is known).';
COMMENT ON COLUMN webhooky.deliveries.next_attempt_at IS 'When a pending delivery is due; infinity while its webhook is disabled.';
COMMENT ON COLUMN webhooky.deliveries.last_status IS 'HTTP status of the last attempt; NULL when it got no response.';
COMMENT ON COLUMN webhooky.deliveries.last_error IS 'Why the last attempt failed; NULL after a success.';

CREATE TABLE webhooky.attempts (
    id            bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint           NOT NULL,
    attempt       integer          NOT NULL,
    started_at    timestamptz      NOT NULL,
    duration_ms   double precision NOT NULL,
    status        integer,
    error         text,
    response_body text,
    worker        text             NOT NULL
);
CREATE INDEX attempts_delivery ON webhooky.attempts (delivery_id);
COMMENT ON TABLE webhooky.attempts IS 'Every HTTP attempt: when, how long, the status or the error, and the first 4 KiB of the response body.';

-- A disabled webhook's pending deliveries wait (next_attempt_at = infinity) and resume when it
-- is enabled again; a deleted webhook's unfinished deliveries end dead.
CREATE FUNCTION webhooky.on_webhook_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE webhooky.deliveries d
           SET state = 'dead', last_error = 'webhook deleted', completed_at = now(), updated_at = now(),
               claimed_by = NULL, lease_expires_at = NULL
         WHERE d.webhook_id = OLD.id AND d.state IN ('pending', 'sending');
        RETURN OLD;
    END IF;
    IF OLD.enabled AND NOT NEW.enabled THEN
        UPDATE webhooky.deliveries d SET next_attempt_at = 'infinity', updated_at = now()
         WHERE d.webhook_id = NEW.id AND d.state = 'pending';
    ELSIF NOT OLD.enabled AND NEW.enabled THEN
        UPDATE webhooky.deliveries d SET next_attempt_at = now(), updated_at = now()
         WHERE d.webhook_id = NEW.id AND d.state = 'pending' AND d.next_attempt_at = 'infinity';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER on_webhook_enabled AFTER UPDATE OF enabled ON webhooky.webhooks
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled) EXECUTE FUNCTION webhooky.on_webhook_change();
CREATE TRIGGER on_webhook_deleted AFTER DELETE ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.on_webhook_change();

-------------------------------------------------------------------------------
-- The one function a trigger calls.
-------------------------------------------------------------------------------
CREATE FUNCTION webhooky.emit(event text, payload jsonb, account_id text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    webhook_ids bigint[];
    new_event_id bigint;
BEGIN
    IF jsonb_typeof(emit.payload) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'webhooky.emit(%): payload must be a JSON object, not %', quote_nullable(emit.event), coalesce(jsonb_typeof(emit.payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Build it with jsonb_build_object(''customer'', jsonb_build_object(''id'', NEW.id, ...)).';
    END IF;
    SELECT array_agg(w.id) INTO webhook_ids
      FROM webhooky.webhooks w
     WHERE w.event = emit.event AND w.enabled AND (w.account_id IS NULL OR w.account_id = emit.account_id);
    IF webhook_ids IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = emit.event) THEN
            RAISE EXCEPTION 'webhooky.emit: unknown event %', quote_nullable(emit.event)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Register the event first: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...).';
        END IF;
        RETURN NULL;  -- no webhook wants it: nothing is recorded
    END IF;
    INSERT INTO webhooky.events (event, account_id, payload)
    VALUES (emit.event, emit.account_id, emit.payload)
    RETURNING id INTO new_event_id;
    INSERT INTO webhooky.deliveries (event_id, webhook_id)
    SELECT new_event_id, unnest(webhook_ids);
    -- Identical notifications in one transaction are folded into one: at most one per transaction.
    PERFORM pg_notify('webhooky', '');
    RETURN new_event_id;
END
$$;
COMMENT ON FUNCTION webhooky.emit(text, jsonb, text) IS
    'Records an event in the caller''s transaction and wakes the worker; every enabled webhook of the event whose account_id is NULL or equal gets one delivery. Returns the event id, or NULL when no webhook wants the event.';

CREATE FUNCTION webhooky.has_webhooks(event text, account_id text DEFAULT NULL) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM webhooky.webhooks w
                    WHERE w.event = $1 AND w.enabled AND (w.account_id IS NULL OR w.account_id = $2))
$$;
COMMENT ON FUNCTION webhooky.has_webhooks(text, text) IS
    'True when some enabled webhook wants this event for this account. A trigger may call it first to skip building a payload nobody wants.';

-------------------------------------------------------------------------------
-- "Insert variable": the variables an event offers.
-------------------------------------------------------------------------------
CREATE FUNCTION webhooky.variables(event text, recent_events integer DEFAULT 100)
RETURNS TABLE (variable text, placeholder text, type text, example text, source text)
LANGUAGE sql STABLE AS $$
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
     ORDER BY array_to_string(w.path, '.'), (w.rank = 0), w.rank DESC
$$;
COMMENT ON FUNCTION webhooky.variables(text, integer) IS
    'Insert variable: every #variable# an event offers (name, placeholder to paste, JSON type, an example value), from the event type''s sample and its most recent events.';

COMMIT;
