-- Webhooky schema, migration 0013: the per-account insert lock becomes a row lock nobody else
-- can take.
--
-- 0011 salted the advisory lock's key, but pg_locks shows every advisory lock's key to every
-- role: a tenant could read its own key, work out the salt, and block another account's
-- webhook inserts again; and webhooky.lock_account was executable by every role. The lock is
-- now a row of webhooky.account_locks, a table only the schema's owner may touch, locked
-- FOR UPDATE by lock_account, which only admins and tenants (for their own account) may call
-- (the limit check on webhook inserts calls it).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0013_account_locks.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(13, 'account_locks'); END $$;

CREATE TABLE webhooky.account_locks (account_id text PRIMARY KEY);
REVOKE ALL ON webhooky.account_locks FROM PUBLIC;
COMMENT ON TABLE webhooky.account_locks IS 'One row per account that has had a webhook inserted; locked FOR UPDATE by webhooky.lock_account. Internal.';
DROP TABLE webhooky.lock_salt;

CREATE OR REPLACE FUNCTION webhooky.lock_account(account text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller text := webhooky.caller_account();
BEGIN
    IF caller IS NOT NULL AND lock_account.account IS DISTINCT FROM caller THEN
        RETURN;  -- not a tenant's to lock (a row for another account is refused anyway)
    END IF;
    INSERT INTO webhooky.account_locks (account_id) VALUES (lock_account.account) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM webhooky.account_locks l WHERE l.account_id = lock_account.account FOR UPDATE;
END
$$;
COMMENT ON FUNCTION webhooky.lock_account(text) IS
    'Holds, until the transaction ends, the lock that serialises webhook inserts of one account (for max_webhooks_per_account); for a tenant, only its own account''s (another''s it leaves alone). Internal.';
REVOKE EXECUTE ON FUNCTION webhooky.lock_account(text) FROM PUBLIC;

-- grant_roles as in 0011, and lock_account for admins and tenants.
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
            webhooky.delete_webhook(bigint), webhooky.lock_account(text) TO webhooky_admin;
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
            webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.delete_webhook(bigint),
            webhooky.lock_account(text) TO webhooky_tenant;
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
