-- Webhooky schema, migration 0011: tenants act on their own account only, and cannot stall
-- anyone else.
--
-- 1. webhooky.caller_account() gave NULL (no restriction, as for an admin) to a member of
--    webhooky_tenant without a row in webhooky.tenants, such as a tenant after
--    SET ROLE webhooky_tenant: send_test, redeliver, redeliver_webhook and rotate_secret then
--    acted on every account (another account's secret, events and deliveries). Such a role is
--    now refused.
-- 2. Tenants may INSERT and UPDATE named columns of webhooky.webhooks only: with the whole
--    table they could insert a deleted webhook's id (OVERRIDING SYSTEM VALUE) and read its
--    history, or set its revision; and UPDATE or DELETE on the table allowed LOCK TABLE ...
--    ACCESS EXCLUSIVE, which stalls every business transaction that emits an event. Tenants
--    delete a webhook with webhooky.delete_webhook(id) instead of DELETE.
-- 3. The lock that keeps concurrent inserts within max_webhooks_per_account had a key anyone
--    could compute and take (pg_advisory_lock), blocking another account's inserts; its key
--    now comes from a secret salt, and only webhooky.lock_account takes it.
-- 4. Deleting or re-enabling a webhook updates its deliveries and health: the trigger now runs
--    with the schema owner's rights (as an admin or a tenant it failed with "permission
--    denied").
-- 5. webhooky.send_test refuses a given payload over 1 MiB of JSON.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0011_tenant_safety.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(11, 'tenant_safety'); END $$;

CREATE OR REPLACE FUNCTION webhooky.caller_account() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller name := CASE WHEN current_setting('role') = 'none' THEN session_user ELSE current_setting('role') END;
    account text;
BEGIN
    SELECT t.account_id INTO account FROM webhooky.tenants t WHERE t.role_name = caller;
    IF account IS NOT NULL THEN
        RETURN account;
    END IF;
    -- A tenant's group without an account is no admin: it may act on no account at all.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_tenant') AND pg_has_role(caller, 'webhooky_tenant', 'MEMBER')
       AND NOT (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_admin') AND pg_has_role(caller, 'webhooky_admin', 'MEMBER')) THEN
        RAISE EXCEPTION 'role % is a member of webhooky_tenant but has no account in webhooky.tenants', quote_ident(caller)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Log in as the tenant''s own role (without SET ROLE), or have an admin add it: INSERT INTO webhooky.tenants (role_name, account_id) VALUES (...).';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION webhooky.caller_account() IS 'The account of the calling tenant role; NULL for any other role; an error for a member of webhooky_tenant without an account.';

ALTER FUNCTION webhooky.on_webhook_change() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION webhooky.delete_webhook(webhook_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller text := webhooky.caller_account();
BEGIN
    DELETE FROM webhooky.webhooks w WHERE w.id = delete_webhook.webhook_id AND (caller IS NULL OR w.account_id = caller);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhooky.delete_webhook: there is no webhook %', delete_webhook.webhook_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, name FROM webhooky.webhooks lists them.';
    END IF;
END
$$;
COMMENT ON FUNCTION webhooky.delete_webhook(bigint) IS
    'Deletes a webhook (a tenant''s own only); its unfinished deliveries end dead ("webhook deleted"). For tenants, who may not DELETE from the table.';
REVOKE EXECUTE ON FUNCTION webhooky.delete_webhook(bigint) FROM PUBLIC;

-- The salt of the per-account lock's key: readable by the schema's owner and webhooky_admin
-- (which may act on every account anyway), not by tenants or other roles.
CREATE TABLE webhooky.lock_salt (salt bigint NOT NULL);
INSERT INTO webhooky.lock_salt SELECT ('x' || left(md5(gen_random_uuid()::text), 16))::bit(64)::bigint;
REVOKE ALL ON webhooky.lock_salt FROM PUBLIC;
COMMENT ON TABLE webhooky.lock_salt IS 'A random number that makes the keys of webhooky.lock_account impossible to guess. Internal.';

CREATE FUNCTION webhooky.lock_account(account text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller text := webhooky.caller_account();
BEGIN
    IF caller IS NOT NULL AND lock_account.account IS DISTINCT FROM caller THEN
        RETURN;  -- not a tenant's to lock (a row for another account is refused anyway)
    END IF;
    PERFORM pg_advisory_xact_lock((SELECT s.salt FROM webhooky.lock_salt s) # hashtext(lock_account.account)::bigint);
END
$$;
COMMENT ON FUNCTION webhooky.lock_account(text) IS
    'Holds, until the transaction ends, the lock that serialises webhook inserts of one account (for max_webhooks_per_account); for a tenant, only its own account''s (another''s it leaves alone). Internal.';

CREATE OR REPLACE FUNCTION webhooky.check_webhook_limits() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    label text := format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END;
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
                USING ERRCODE = 'check_violation';
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
$$;

-- grant_roles as in 0010; tenants: named columns, no DELETE, delete_webhook.
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
            webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.prune(interval, interval, integer),
            webhooky.delete_webhook(bigint) TO webhooky_admin;
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
        -- Named columns only (not id or revision), and no DELETE: table-wide INSERT let a tenant
        -- choose a deleted webhook's id, and UPDATE or DELETE on the table let it LOCK the
        -- table, which every emitting transaction reads. Tenants delete with webhooky.delete_webhook.
        REVOKE INSERT, UPDATE, DELETE ON webhooky.webhooks FROM webhooky_tenant;
        GRANT INSERT (account_id, name, enabled, event, url, body, headers, secret, follow_redirects),
              UPDATE (account_id, name, enabled, event, url, body, headers, secret, follow_redirects)
           ON webhooky.webhooks TO webhooky_tenant;
        GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint),
            webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer),
            webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.delete_webhook(bigint) TO webhooky_tenant;
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
