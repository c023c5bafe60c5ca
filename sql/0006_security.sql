-- Webhooky schema, migration 0006: safe by default.
--
--   * Secrets: webhooky.new_secret() draws 256 bits; webhooky.rotate_secret() replaces a
--     webhook's secret and keeps signing with the old one too for an overlap period.
--   * Redirects: a webhook may opt in (follow_redirects); the worker checks every hop.
--   * Limits on hostile input: sizes of URL, body and header templates, number of headers, and
--     webhooks per account, from webhooky.settings (each with a documented default).
--   * Tenants: a login role mapped to one account in webhooky.tenants, and a member of
--     webhooky_tenant, sees and edits only that account's webhooks, events, deliveries and
--     attempts (row-level security), and cannot create a webhook that fires for every account.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0006_security.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(6, 'security'); END $$;

-------------------------------------------------------------------------------
-- Secrets.
-------------------------------------------------------------------------------
ALTER TABLE webhooky.webhooks
    ADD COLUMN follow_redirects boolean NOT NULL DEFAULT false,
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz;
COMMENT ON COLUMN webhooky.webhooks.follow_redirects IS 'Follow up to 5 redirects (each hop checked like the first); default false: a 3xx answer is a failure.';
COMMENT ON COLUMN webhooky.webhooks.previous_secret IS 'The secret before the last rotation; requests are signed with both until previous_secret_expires_at.';

-- 256 random bits: three random UUIDs (366 random bits) hashed with SHA-256 (in core since 11).
CREATE OR REPLACE FUNCTION webhooky.new_secret() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'whsec_' || encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'base64')
$$;

CREATE FUNCTION webhooky.check_previous_secret() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.previous_secret IS NOT NULL
       AND (NEW.previous_secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' OR length(decode(substr(NEW.previous_secret, 7), 'base64')) NOT BETWEEN 24 AND 64) THEN
        RAISE EXCEPTION 'webhook %: previous_secret must be "whsec_" followed by 24 to 64 bytes in base64', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE EXCEPTION 'webhook %: previous_secret must be "whsec_" followed by 24 to 64 bytes in base64', NEW.id USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER check_webhook_previous_secret BEFORE INSERT OR UPDATE OF previous_secret ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_previous_secret();

-------------------------------------------------------------------------------
-- Tenants.
-------------------------------------------------------------------------------
CREATE TABLE webhooky.tenants (
    role_name  name PRIMARY KEY,
    account_id text NOT NULL
);
COMMENT ON TABLE webhooky.tenants IS 'Login roles scoped to one account (members of webhooky_tenant): they see and edit only that account''s rows.';

-- The account of the role that called (through SET ROLE, or the session's own role); NULL when
-- it is not a tenant. SECURITY DEFINER so that tenants need no access to webhooky.tenants; it
-- reads the caller from the `role` setting and session_user, which a function's rights do not change.
CREATE FUNCTION webhooky.caller_account() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.account_id FROM webhooky.tenants t
     WHERE t.role_name = CASE WHEN current_setting('role') = 'none' THEN session_user ELSE current_setting('role') END
$$;
COMMENT ON FUNCTION webhooky.caller_account() IS 'The account of the calling tenant role, or NULL for any other role.';

ALTER TABLE webhooky.webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooky.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooky.deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooky.attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooky.webhook_health ENABLE ROW LEVEL SECURITY;

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_tenant') THEN CREATE ROLE webhooky_tenant NOLOGIN; END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not create the role webhooky_tenant (that needs CREATEROLE); create it, then run SELECT webhooky.grant_roles()';
END
$roles$;

-- Policies name their roles, so they are created when the roles exist (grant_roles makes them).
CREATE OR REPLACE FUNCTION webhooky.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tables text[] := ARRAY['webhooks', 'events', 'deliveries', 'attempts', 'webhook_health'];
    t text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_worker') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_worker;
        GRANT SELECT ON webhooky.migrations, webhooky.event_types, webhooky.webhooks TO webhooky_worker;
        GRANT UPDATE (enabled, disabled_reason, disabled_at) ON webhooky.webhooks TO webhooky_worker;
        GRANT SELECT, UPDATE, DELETE ON webhooky.events TO webhooky_worker;
        GRANT SELECT, INSERT, UPDATE, DELETE ON webhooky.deliveries, webhooky.attempts, webhooky.webhook_health, webhooky.workers TO webhooky_worker;
        GRANT EXECUTE ON FUNCTION webhooky.prune(interval, interval, integer) TO webhooky_worker;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_admin') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_admin;
        GRANT SELECT ON ALL TABLES IN SCHEMA webhooky TO webhooky_admin;
        GRANT INSERT, UPDATE, DELETE ON webhooky.webhooks TO webhooky_admin;
        GRANT INSERT, UPDATE, DELETE ON webhooky.tenants, webhooky.settings TO webhooky_admin;
        GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint),
            webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer),
            webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.prune(interval, interval, integer) TO webhooky_admin;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_emitter') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_emitter;
        GRANT EXECUTE ON FUNCTION webhooky.emit(text, jsonb, text), webhooky.has_webhooks(text, text) TO webhooky_emitter;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_tenant') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_tenant;
        GRANT SELECT ON webhooky.event_types, webhooky.webhooks, webhooky.events, webhooky.deliveries,
            webhooky.attempts, webhooky.webhook_health, webhooky.health TO webhooky_tenant;
        GRANT INSERT, UPDATE, DELETE ON webhooky.webhooks TO webhooky_tenant;
        GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint),
            webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer),
            webhooky.new_secret(), webhooky.rotate_secret(bigint, interval) TO webhooky_tenant;
    END IF;

    -- Row-level security: workers and admins see every row; a tenant only its account's.
    FOREACH t IN ARRAY tables LOOP
        IF EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'webhooky' AND p.tablename = t AND p.policyname = 'everything') THEN
            EXECUTE format('DROP POLICY everything ON webhooky.%I', t);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'webhooky' AND p.tablename = t AND p.policyname = 'own_account') THEN
            EXECUTE format('DROP POLICY own_account ON webhooky.%I', t);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_worker') AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_admin') THEN
            EXECUTE format('CREATE POLICY everything ON webhooky.%I TO webhooky_worker, webhooky_admin USING (true) WITH CHECK (true)', t);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_tenant') THEN
        CREATE POLICY own_account ON webhooky.webhooks TO webhooky_tenant
            USING (account_id = (SELECT webhooky.caller_account())) WITH CHECK (account_id = (SELECT webhooky.caller_account()));
        CREATE POLICY own_account ON webhooky.events TO webhooky_tenant
            USING (account_id = (SELECT webhooky.caller_account()));
        CREATE POLICY own_account ON webhooky.deliveries TO webhooky_tenant
            USING (EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = webhook_id AND w.account_id = (SELECT webhooky.caller_account())));
        CREATE POLICY own_account ON webhooky.attempts TO webhooky_tenant
            USING (EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = webhook_id AND w.account_id = (SELECT webhooky.caller_account())));
        CREATE POLICY own_account ON webhooky.webhook_health TO webhooky_tenant
            USING (EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = webhook_id AND w.account_id = (SELECT webhooky.caller_account())));
    END IF;
END
$$;

-- The health view reads its tables with the reader's rights, so a tenant sees its own rows.
ALTER VIEW webhooky.health SET (security_invoker = true);

-------------------------------------------------------------------------------
-- Limits.
-------------------------------------------------------------------------------
CREATE TABLE webhooky.settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE webhooky.settings IS 'Limits on what a webhook may hold; a missing row means the default of webhooky.setting().';

CREATE FUNCTION webhooky.setting(name text) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT s.value::integer FROM webhooky.settings s WHERE s.name = setting.name),
                    CASE setting.name
                        WHEN 'max_url_length' THEN 2048
                        WHEN 'max_body_length' THEN 65536
                        WHEN 'max_headers' THEN 20
                        WHEN 'max_header_value_length' THEN 4096
                        WHEN 'max_webhooks_per_account' THEN 100
                    END)
$$;
COMMENT ON FUNCTION webhooky.setting(text) IS
    'A limit: max_url_length 2048, max_body_length 65536, max_headers 20, max_header_value_length 4096 (characters), max_webhooks_per_account 100, unless webhooky.settings says otherwise.';

CREATE FUNCTION webhooky.check_webhook_limits() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    label text := format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END;
    limit_value integer;
    existing integer;
    header record;
BEGIN
    limit_value := webhooky.setting('max_url_length');
    IF length(NEW.url) > limit_value THEN
        RAISE EXCEPTION '%: URL is % characters long; the limit is %', label, length(NEW.url), limit_value
            USING ERRCODE = 'check_violation', HINT = 'An admin can raise it: INSERT INTO webhooky.settings VALUES (''max_url_length'', ''4096'') ON CONFLICT (name) DO UPDATE SET value = excluded.value';
    END IF;
    limit_value := webhooky.setting('max_body_length');
    IF length(NEW.body) > limit_value THEN
        RAISE EXCEPTION '%: body is % characters long; the limit is %', label, length(NEW.body), limit_value
            USING ERRCODE = 'check_violation', HINT = 'Shorten the body template, or raise max_body_length in webhooky.settings.';
    END IF;
    limit_value := webhooky.setting('max_headers');
    IF (SELECT count(*) FROM jsonb_object_keys(NEW.headers)) > limit_value THEN
        RAISE EXCEPTION '%: % headers; the limit is %', label, (SELECT count(*) FROM jsonb_object_keys(NEW.headers)), limit_value
            USING ERRCODE = 'check_violation', HINT = 'Raise max_headers in webhooky.settings if you need more.';
    END IF;
    limit_value := webhooky.setting('max_header_value_length');
    FOR header IN SELECT h.key, h.value #>> '{}' AS value FROM jsonb_each(NEW.headers) h LOOP
        IF length(header.value) > limit_value THEN
            RAISE EXCEPTION '%: header "%" is % characters long; the limit is %', label, header.key, length(header.value), limit_value
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    IF NEW.account_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.account_id IS DISTINCT FROM OLD.account_id) THEN
        -- One writer per account at a time, so that concurrent inserts cannot pass the cap together.
        PERFORM pg_advisory_xact_lock(hashtext('webhooky.account:' || NEW.account_id));
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
CREATE TRIGGER check_webhook_limits BEFORE INSERT OR UPDATE ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_webhook_limits();

-------------------------------------------------------------------------------
-- Admin functions: tenants act on their own account only.
-------------------------------------------------------------------------------
CREATE FUNCTION webhooky.rotate_secret(webhook_id bigint, overlap interval DEFAULT '24 hours') RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target webhooky.webhooks;
    fresh text := webhooky.new_secret();
BEGIN
    SELECT * INTO target FROM webhooky.webhooks w WHERE w.id = rotate_secret.webhook_id FOR UPDATE;
    IF NOT FOUND OR (webhooky.caller_account() IS NOT NULL AND target.account_id IS DISTINCT FROM webhooky.caller_account()) THEN
        RAISE EXCEPTION 'webhooky.rotate_secret: there is no webhook %', rotate_secret.webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE webhooky.webhooks w
       SET previous_secret = CASE WHEN target.secret IS NULL THEN NULL ELSE target.secret END,
           previous_secret_expires_at = CASE WHEN target.secret IS NULL THEN NULL ELSE now() + rotate_secret.overlap END,
           secret = fresh
     WHERE w.id = rotate_secret.webhook_id;
    RETURN fresh;
END
$$;
COMMENT ON FUNCTION webhooky.rotate_secret(bigint, interval) IS
    'Gives a webhook a new signing secret and returns it; requests carry signatures with the old and the new one for the overlap (default 24 hours), so the receiver can switch in that time.';
REVOKE EXECUTE ON FUNCTION webhooky.rotate_secret(bigint, interval) FROM PUBLIC;

-- send_test, redeliver and redeliver_webhook act with the owner's rights: they check that a
-- tenant calls them only for its own account.
CREATE OR REPLACE FUNCTION webhooky.send_test(webhook_id bigint, payload jsonb DEFAULT NULL, from_event bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
    INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out, is_test)
    VALUES (target.event, target.account_id, body, ARRAY[target.id], true, true)
    RETURNING id INTO new_event_id;
    INSERT INTO webhooky.deliveries (event_id, webhook_id, is_test)
    VALUES (new_event_id, target.id, true)
    RETURNING id INTO new_delivery_id;
    PERFORM pg_notify('webhooky', '');
    RETURN new_delivery_id;
END
$$;

CREATE OR REPLACE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
    caller text := webhooky.caller_account();
BEGIN
    SELECT d.state INTO current FROM webhooky.deliveries d JOIN webhooky.webhooks w ON w.id = d.webhook_id
     WHERE d.id = redeliver.delivery_id AND (caller IS NULL OR w.account_id = caller);
    IF current IS NULL THEN
        RAISE EXCEPTION 'webhooky.redeliver: there is no delivery %', redeliver.delivery_id USING ERRCODE = 'no_data_found';
    END IF;
    IF current NOT IN ('succeeded', 'dead') THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is %; it will be sent without being redelivered', redeliver.delivery_id, current
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now()
     WHERE d.id = redeliver.delivery_id AND d.state IN ('succeeded', 'dead');
    PERFORM pg_notify('webhooky', '');
END
$$;

CREATE OR REPLACE FUNCTION webhooky.redeliver_webhook(webhook_id bigint, since timestamptz, until timestamptz DEFAULT now(), include_succeeded boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    count integer;
    caller text := webhooky.caller_account();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = redeliver_webhook.webhook_id AND (caller IS NULL OR w.account_id = caller)) THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: there is no webhook %', redeliver_webhook.webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now()
     WHERE d.webhook_id = redeliver_webhook.webhook_id
       AND d.created_at >= redeliver_webhook.since AND d.created_at < redeliver_webhook.until
       AND (d.state = 'dead' OR (redeliver_webhook.include_succeeded AND d.state = 'succeeded'));
    GET DIAGNOSTICS count = ROW_COUNT;
    IF count > 0 THEN
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN count;
END
$$;

DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
