-- Webhooky schema, migration 0010: a URL's port is checked when a webhook is saved, a URL
-- fragment is pointed out, and tenants may read the schema version.
--
-- 1. A URL's port, when written out, must be a number from 1 to 65535 (libcurl refuses any
--    other, and every delivery ended dead with "URL using bad/illegal format").
-- 2. A '#' in a URL that does not make a #variable# starts a fragment, which HTTP never sends
--    (most likely a variable missing its closing '#'): still allowed, a '#' being literal
--    text as the template rules say, but saving one raises a NOTICE.
-- 3. webhooky_tenant may read webhooky.migrations (version numbers only): every webhooky
--    command checks the schema version first, and failed for a tenant's role.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0010_url_checks_and_tenant_commands.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(10, 'url_checks_and_tenant_commands'); END $$;

-- Checks a webhook's URL as it is saved (with check_webhook from 0001).
CREATE FUNCTION webhooky.check_webhook_url() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    label text := format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END;
    -- Up to the first / ? or #: a variable in the host leaves only what comes before it.
    host_and_port text := regexp_replace(regexp_replace(substring(NEW.url FROM '^[A-Za-z]+://([^/?#]*)'), '^.*@', ''), '^\[.*\]', '');
    port text := substring(host_and_port FROM ':([^:]*)$');
    fragment text;
BEGIN
    IF port <> '' AND (port !~ '^[0-9]{1,5}$' OR port::integer NOT BETWEEN 1 AND 65535) THEN
        RAISE EXCEPTION '%: URL has port %; a port is a number from 1 to 65535', label, left(port, 12)
            USING ERRCODE = 'check_violation', HINT = 'For example https://erp.example.com:8443/hooks; without a port, 443 for https and 80 for http.';
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
CREATE TRIGGER check_webhook_url BEFORE INSERT OR UPDATE OF url ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_webhook_url();

-- grant_roles as in 0008, and the schema version for tenants.
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
        GRANT EXECUTE ON FUNCTION webhooky.refresh_wanted_events() TO webhooky_worker;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_admin') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_admin;
        GRANT SELECT ON ALL TABLES IN SCHEMA webhooky TO webhooky_admin;
        GRANT INSERT, UPDATE, DELETE ON webhooky.webhooks TO webhooky_admin;
        GRANT INSERT, UPDATE, DELETE ON webhooky.tenants, webhooky.settings TO webhooky_admin;
        GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint),
            webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer),
            webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.prune(interval, interval, integer) TO webhooky_admin;
        GRANT EXECUTE ON FUNCTION webhooky.refresh_wanted_events() TO webhooky_admin;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_emitter') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_emitter;
        GRANT EXECUTE ON FUNCTION webhooky.emit(text, jsonb, text), webhooky.has_webhooks(text, text) TO webhooky_emitter;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_tenant') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_tenant;
        -- The schema version, which every webhooky command checks first.
        GRANT SELECT ON webhooky.migrations TO webhooky_tenant;
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
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
