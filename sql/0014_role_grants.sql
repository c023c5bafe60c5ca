-- Webhooky schema, migration 0014: the roles' privileges become rows, so that a migration that
-- adds a function or changes a grant inserts a row instead of re-creating grant_roles whole.
--
-- webhooky.grant_roles() was re-created by 0006, 0008, 0010, 0011 and 0013, each time with every
-- grant written out again to change one. Now each statement is a row of webhooky.role_grants
-- (a GRANT or REVOKE with %I for the role), run in order for the roles that exist; the
-- row-level security policies stay in the function. The privileges are those of 0013, but admins
-- no longer read the two internal tables (account_locks and this one).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0014_role_grants.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(14, 'role_grants'); END $$;

CREATE TABLE webhooky.role_grants (
    position  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role_name name    NOT NULL CHECK (role_name IN ('webhooky_worker', 'webhooky_admin', 'webhooky_emitter', 'webhooky_tenant')),
    statement text    NOT NULL CHECK (statement ~ '^(GRANT|REVOKE) ' AND statement ~ '%I')
);
REVOKE ALL ON webhooky.role_grants FROM PUBLIC;
COMMENT ON TABLE webhooky.role_grants IS
    'What each group role may do: GRANT or REVOKE statements with %I for the role, run in order by webhooky.grant_roles() for the roles that exist. A migration that changes a privilege adds a row.';

INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_worker', 'GRANT USAGE ON SCHEMA webhooky TO %I'),
    ('webhooky_worker', 'GRANT SELECT ON webhooky.migrations, webhooky.event_types, webhooky.webhooks TO %I'),
    ('webhooky_worker', 'GRANT UPDATE (enabled, disabled_reason, disabled_at) ON webhooky.webhooks TO %I'),
    ('webhooky_worker', 'GRANT SELECT, UPDATE, DELETE ON webhooky.events TO %I'),
    ('webhooky_worker', 'GRANT SELECT, INSERT, UPDATE, DELETE ON webhooky.deliveries, webhooky.attempts, webhooky.webhook_health, webhooky.workers TO %I'),
    ('webhooky_worker', 'GRANT EXECUTE ON FUNCTION webhooky.prune(interval, interval, integer), webhooky.refresh_wanted_events() TO %I'),
    ('webhooky_admin', 'GRANT USAGE ON SCHEMA webhooky TO %I'),
    ('webhooky_admin', 'GRANT SELECT ON ALL TABLES IN SCHEMA webhooky TO %I'),
    -- The internal tables: nothing an admin needs (0013's lock rows, this table).
    ('webhooky_admin', 'REVOKE ALL ON webhooky.account_locks, webhooky.role_grants FROM %I'),
    ('webhooky_admin', 'GRANT INSERT, UPDATE, DELETE ON webhooky.webhooks, webhooky.tenants, webhooky.settings TO %I'),
    ('webhooky_admin', 'GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint), '
        || 'webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer), '
        || 'webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.prune(interval, interval, integer), '
        || 'webhooky.delete_webhook(bigint), webhooky.lock_account(text), webhooky.refresh_wanted_events() TO %I'),
    ('webhooky_emitter', 'GRANT USAGE ON SCHEMA webhooky TO %I'),
    ('webhooky_emitter', 'GRANT EXECUTE ON FUNCTION webhooky.emit(text, jsonb, text), webhooky.has_webhooks(text, text) TO %I'),
    ('webhooky_tenant', 'GRANT USAGE ON SCHEMA webhooky TO %I'),
    -- The schema version, which every webhooky command checks first.
    ('webhooky_tenant', 'GRANT SELECT ON webhooky.migrations, webhooky.event_types, webhooky.webhooks, webhooky.events, '
        || 'webhooky.deliveries, webhooky.attempts, webhooky.webhook_health, webhooky.health TO %I'),
    -- Named columns only (not id or revision), and no DELETE: table-wide INSERT let a tenant
    -- choose a deleted webhook's id, and UPDATE or DELETE on the table let it LOCK the table,
    -- which every emitting transaction reads. Tenants delete with webhooky.delete_webhook.
    ('webhooky_tenant', 'REVOKE INSERT, UPDATE, DELETE ON webhooky.webhooks FROM %I'),
    ('webhooky_tenant', 'GRANT INSERT (account_id, name, enabled, event, url, body, headers, secret, follow_redirects), '
        || 'UPDATE (account_id, name, enabled, event, url, body, headers, secret, follow_redirects) ON webhooky.webhooks TO %I'),
    ('webhooky_tenant', 'GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint), '
        || 'webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer), '
        || 'webhooky.new_secret(), webhooky.rotate_secret(bigint, interval), webhooky.delete_webhook(bigint), webhooky.lock_account(text) TO %I');

CREATE OR REPLACE FUNCTION webhooky.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tables text[] := ARRAY['webhooks', 'events', 'deliveries', 'attempts', 'webhook_health'];
    t text;
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT g.role_name, g.statement FROM webhooky.role_grants g
         WHERE EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = g.role_name) ORDER BY g.position
    LOOP
        EXECUTE format(grant_row.statement, grant_row.role_name);
    END LOOP;

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
COMMENT ON FUNCTION webhooky.grant_roles() IS
    'Gives the group roles that exist their privileges (webhooky.role_grants) and creates the row-level security policies. Run it after creating the roles by hand.';
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
