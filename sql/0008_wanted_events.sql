-- Webhooky schema, migration 0008: a nearly free "may any webhook want this event?" for
-- triggers.
--
-- webhooky.wanted_events is a sequence used as a set of 63 bits: bit webhooky.event_bit(e) is
-- set while an enabled webhook may want event e. A trigger's WHEN clause reads it with the
-- built-in pg_sequence_last_value and compares with a constant: no query, no call of a SQL or
-- PL/pgSQL function, nothing to compute when the statement starts (each would cost several
-- to tens of microseconds per statement, about as much as the trigger it saves). So a table
-- whose events no webhook wants pays almost nothing for its trigger:
--
--   SELECT webhooky.wanted_condition('order.paid');
--   -> coalesce(pg_sequence_last_value('webhooky.wanted_events'), '-1'::bigint) & '9007199254740992'::bigint <> 0
--
--   CREATE TRIGGER order_paid AFTER UPDATE OF paid_at ON shop.orders FOR EACH ROW
--       WHEN (OLD.paid_at IS NULL AND NEW.paid_at IS NOT NULL
--             AND coalesce(pg_sequence_last_value('webhooky.wanted_events'), '-1'::bigint) & '9007199254740992'::bigint <> 0)
--       EXECUTE FUNCTION shop.order_paid();
--
-- The bit comes from the MD5 of the event's name, so it is the same on every server and
-- version. The condition only filters: webhooky.emit still decides exactly which webhooks
-- get the event.
--
-- Why a bit is never missing when it is needed:
--   * enabling a webhook (INSERT, UPDATE of enabled or event) sets its event's bit at once,
--     before the transaction commits; sequences are not transactional, so a rollback leaves
--     the bit set, which costs time, never an event;
--   * only webhooky.refresh_wanted_events() clears bits, holding a SHARE lock on
--     webhooky.webhooks (no webhook changes meanwhile), and only the bits that no committed
--     enabled webhook needs. Workers call it with their heartbeat (every 5 s); it never waits
--     for the lock (it tries again next time);
--   * a sequence that was reset reads as NULL, and the coalesce then wants every event.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0008_wanted_events.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(8, 'wanted_events'); END $$;

CREATE SEQUENCE webhooky.wanted_events AS bigint MINVALUE 0 NO CYCLE;
COMMENT ON SEQUENCE webhooky.wanted_events IS
    'A 63-bit set, not a counter: bit webhooky.event_bit(e) is set while an enabled webhook may want event e. Read by triggers'' WHEN clauses (webhooky.wanted_condition); set by webhook changes, cleared by webhooky.refresh_wanted_events(). Do not reset it.';
-- Every role that changes a business table evaluates the WHEN clause: it must never fail.
GRANT SELECT ON SEQUENCE webhooky.wanted_events TO PUBLIC;

CREATE FUNCTION webhooky.event_bit(event text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 1::bigint << (('x' || left(md5(event), 15))::bit(60)::bigint % 63)::integer;
COMMENT ON FUNCTION webhooky.event_bit(text) IS 'The bit of webhooky.wanted_events that stands for the event: from the MD5 of its name (63 bits: events may share one).';

CREATE FUNCTION webhooky.wanted_condition(event text) RETURNS text
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.event_types t WHERE t.name = wanted_condition.event) THEN
        -- A trigger tested on a misspelt name would never run, silently.
        RAISE EXCEPTION 'webhooky.wanted_condition: unknown event %', quote_nullable(wanted_condition.event)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Register the event first: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...).';
    END IF;
    RETURN format('coalesce(pg_sequence_last_value(''webhooky.wanted_events''), ''-1''::bigint) & ''%s''::bigint <> 0', webhooky.event_bit(wanted_condition.event));
END
$$;
COMMENT ON FUNCTION webhooky.wanted_condition(text) IS
    'The condition to add to a trigger''s WHEN clause so that the trigger does not run while no enabled webhook wants the event (its bit, a constant, is webhooky.event_bit(event)). webhooky doctor checks that triggers test the bits of the events they emit.';

-- Sets the bit of a webhook that is enabled now (its transaction may still roll back).
CREATE FUNCTION webhooky.note_wanted_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bit bigint := webhooky.event_bit(NEW.event);
BEGIN
    -- NULL (a reset sequence) already wants every event: leave it so.
    IF pg_sequence_last_value('webhooky.wanted_events') & bit = 0 THEN
        -- Read, OR, write: one transaction at a time (the lock is held until this one ends, so
        -- that neither an error nor a cancel can leave it held).
        PERFORM pg_advisory_xact_lock(hashtext('webhooky.wanted_events'));
        PERFORM setval('webhooky.wanted_events', pg_sequence_last_value('webhooky.wanted_events') | bit, true)
          WHERE pg_sequence_last_value('webhooky.wanted_events') IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER note_wanted_event AFTER INSERT OR UPDATE OF enabled, event ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION webhooky.note_wanted_event();

CREATE FUNCTION webhooky.refresh_wanted_events() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current bigint := pg_sequence_last_value('webhooky.wanted_events');
    needed bigint;
BEGIN
    SELECT coalesce(bit_or(webhooky.event_bit(w.event)), 0) INTO needed FROM webhooky.webhooks w WHERE w.enabled;
    IF current = needed THEN
        RETURN current;
    END IF;
    -- Only what other transactions committed may clear a bit: not this transaction's own
    -- changes (it may still roll back), and not a snapshot older than the lock below.
    IF pg_current_xact_id_if_assigned() IS NOT NULL OR current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN current;
    END IF;
    BEGIN
        -- No webhook can be enabled while this is held, and none is being enabled right now
        -- (its transaction would hold ROW EXCLUSIVE until it ends).
        LOCK TABLE webhooky.webhooks IN SHARE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN current;  -- a webhook is being changed: the next refresh will do it
    END;
    SELECT coalesce(bit_or(webhooky.event_bit(w.event)), 0) INTO needed FROM webhooky.webhooks w WHERE w.enabled;
    PERFORM setval('webhooky.wanted_events', needed, true);
    RETURN needed;
END
$$;
COMMENT ON FUNCTION webhooky.refresh_wanted_events() IS
    'Sets webhooky.wanted_events to the bits enabled webhooks need (clearing those of disabled or deleted webhooks; after a restore, setting missing ones); returns the set. Workers call it every 5 s; it never waits for a lock, and does nothing in a transaction that has written or that is not READ COMMITTED.';
-- It holds a lock that blocks every change to webhooks: not for everyone.
REVOKE EXECUTE ON FUNCTION webhooky.refresh_wanted_events() FROM PUBLIC;

-- grant_roles as in 0006, and the workers' and admins' right to refresh.
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

DO $$ BEGIN
    PERFORM setval('webhooky.wanted_events', coalesce(bit_or(webhooky.event_bit(w.event)), 0), true) FROM webhooky.webhooks w WHERE w.enabled;
END $$;

COMMIT;
