-- Webhooky schema, migration 0004: the admin's and the DBA's tools.
--
--   * webhooky.send_test(webhook): a test delivery with the event type's sample payload (or a
--     given payload, or a past event's), sent by the worker like any other, even while the
--     webhook is disabled; deliveries.is_test marks it.
--   * webhooky.redeliver(delivery) and webhooky.redeliver_webhook(webhook, since, ...): send
--     again with a fresh retry schedule, keeping the webhook-id.
--   * webhooky.health: one row per webhook.
--   * webhooky.prune(...): retention, in small batches (the worker runs it; so can you).
--   * Roles webhooky_worker, webhooky_admin, webhooky_emitter, with least privilege.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0004_admin.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(4, 'admin'); END $$;

ALTER TABLE webhooky.events ADD COLUMN is_test boolean NOT NULL DEFAULT false;
ALTER TABLE webhooky.deliveries
    ADD COLUMN is_test boolean NOT NULL DEFAULT false,
    ADD COLUMN retry_base integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN webhooky.deliveries.is_test IS 'A test delivery (webhooky.send_test); sent even while its webhook is disabled.';
COMMENT ON COLUMN webhooky.deliveries.retry_base IS 'Attempts made before the current retry schedule began (a redelivery starts a fresh one).';
CREATE INDEX deliveries_pending_tests ON webhooky.deliveries (webhook_id) WHERE state = 'pending' AND is_test;
CREATE INDEX deliveries_dead ON webhooky.deliveries (webhook_id, completed_at) WHERE state = 'dead';

ALTER TABLE webhooky.attempts ADD COLUMN webhook_id bigint;
UPDATE webhooky.attempts a SET webhook_id = d.webhook_id FROM webhooky.deliveries d WHERE d.id = a.delivery_id;
CREATE INDEX attempts_webhook_time ON webhooky.attempts (webhook_id, started_at);

-------------------------------------------------------------------------------
-- Send a test.
-------------------------------------------------------------------------------
CREATE FUNCTION webhooky.send_test(webhook_id bigint, payload jsonb DEFAULT NULL, from_event bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target webhooky.webhooks;
    body jsonb := send_test.payload;
    new_event_id bigint;
    new_delivery_id bigint;
BEGIN
    SELECT * INTO target FROM webhooky.webhooks w WHERE w.id = send_test.webhook_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhooky.send_test: there is no webhook %', send_test.webhook_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, name FROM webhooky.webhooks lists them.';
    END IF;
    IF body IS NULL AND send_test.from_event IS NOT NULL THEN
        SELECT e.payload INTO body FROM webhooky.events e WHERE e.id = send_test.from_event;
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
COMMENT ON FUNCTION webhooky.send_test(bigint, jsonb, bigint) IS
    'Queues a test delivery of a webhook (sample payload, or the given one, or a past event''s) and returns its delivery id; the worker sends it even if the webhook is disabled.';

-------------------------------------------------------------------------------
-- Redeliver.
-------------------------------------------------------------------------------
CREATE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
BEGIN
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now()
     WHERE d.id = redeliver.delivery_id AND d.state IN ('succeeded', 'dead');
    IF NOT FOUND THEN
        SELECT d.state INTO current FROM webhooky.deliveries d WHERE d.id = redeliver.delivery_id;
        IF current IS NULL THEN
            RAISE EXCEPTION 'webhooky.redeliver: there is no delivery %', redeliver.delivery_id USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is %; it will be sent without being redelivered', redeliver.delivery_id, current
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM pg_notify('webhooky', '');
END
$$;
COMMENT ON FUNCTION webhooky.redeliver(bigint) IS
    'Sends a succeeded or dead delivery again with a fresh retry schedule; receivers see the same webhook-id.';

CREATE FUNCTION webhooky.redeliver_webhook(webhook_id bigint, since timestamptz, until timestamptz DEFAULT now(), include_succeeded boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    count integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = redeliver_webhook.webhook_id) THEN
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
COMMENT ON FUNCTION webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean) IS
    'Sends again the dead (or, with include_succeeded, all finished) deliveries of a webhook created in [since, until); returns how many.';

-------------------------------------------------------------------------------
-- Health: one row per webhook.
-------------------------------------------------------------------------------
CREATE VIEW webhooky.health AS
SELECT w.id AS webhook_id, w.name, w.account_id, w.event, w.enabled, w.disabled_reason,
       coalesce(p.pending, 0) + coalesce(u.waiting, 0) AS pending,
       coalesce(p.sending, 0) AS sending,
       now() - least(p.oldest, u.oldest) AS oldest_pending_age,
       coalesce(a.succeeded_24h, 0) AS succeeded_24h,
       coalesce(x.dead_24h, 0) AS dead_24h,
       coalesce(h.consecutive_failures, 0) AS consecutive_failures,
       h.failing_since, h.last_success_at,
       l.status AS last_status, l.error AS last_error, l.started_at AS last_attempt_at,
       round(a.p50_ms::numeric, 1) AS p50_ms, round(a.p95_ms::numeric, 1) AS p95_ms
  FROM webhooky.webhooks w
  LEFT JOIN webhooky.webhook_health h ON h.webhook_id = w.id
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE d.state = 'pending') AS pending, count(*) FILTER (WHERE d.state = 'sending') AS sending,
             min(d.created_at) FILTER (WHERE d.state = 'pending') AS oldest
        FROM webhooky.deliveries d WHERE d.webhook_id = w.id AND d.state IN ('pending', 'sending')) p ON true
  LEFT JOIN LATERAL (
      SELECT count(*) AS waiting, min(e.created_at) AS oldest
        FROM webhooky.events e WHERE NOT e.fanned_out AND w.id = ANY (e.webhook_ids)) u ON true
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE t.status BETWEEN 200 AND 299) AS succeeded_24h,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms) AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) AS p95_ms
        FROM webhooky.attempts t WHERE t.webhook_id = w.id AND t.started_at > now() - interval '24 hours') a ON true
  LEFT JOIN LATERAL (
      SELECT count(*) AS dead_24h FROM webhooky.deliveries d
       WHERE d.webhook_id = w.id AND d.state = 'dead' AND d.completed_at > now() - interval '24 hours') x ON true
  LEFT JOIN LATERAL (
      SELECT t.status, t.error, t.started_at FROM webhooky.attempts t
       WHERE t.webhook_id = w.id ORDER BY t.started_at DESC LIMIT 1) l ON true;
COMMENT ON VIEW webhooky.health IS
    'One row per webhook: enabled, pending and oldest pending age, succeeded and dead in the last 24 h, failures in a row, last status and error, p50/p95 duration (ms, last 24 h), why it was disabled.';

-------------------------------------------------------------------------------
-- Retention.
-------------------------------------------------------------------------------
CREATE FUNCTION webhooky.prune(succeeded_after interval DEFAULT '7 days', dead_after interval DEFAULT '30 days', batch_size integer DEFAULT 1000)
RETURNS TABLE (deliveries bigint, attempts bigint, events bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH doomed AS (
        SELECT d.id, d.event_id
          FROM webhooky.deliveries d
         WHERE (d.state = 'succeeded' AND d.completed_at < now() - prune.succeeded_after)
            OR (d.state = 'dead' AND d.completed_at < now() - prune.dead_after)
         ORDER BY d.id
         LIMIT prune.batch_size
           FOR UPDATE SKIP LOCKED
    ), gone_attempts AS (
        DELETE FROM webhooky.attempts a USING doomed WHERE a.delivery_id = doomed.id RETURNING 1
    ), gone_deliveries AS (
        DELETE FROM webhooky.deliveries d USING doomed WHERE d.id = doomed.id RETURNING d.event_id
    ), orphans AS (
        -- Events with no delivery left: those of this batch, and old ones no webhook kept.
        SELECT e.id FROM webhooky.events e
         WHERE e.id IN (SELECT event_id FROM gone_deliveries)
           AND NOT EXISTS (SELECT 1 FROM webhooky.deliveries d WHERE d.event_id = e.id AND d.id NOT IN (SELECT id FROM doomed))
        UNION
        (SELECT e.id FROM webhooky.events e
          WHERE e.fanned_out AND e.created_at < now() - prune.dead_after
            AND NOT EXISTS (SELECT 1 FROM webhooky.deliveries d WHERE d.event_id = e.id)
          ORDER BY e.id LIMIT prune.batch_size)
    ), gone_events AS (
        DELETE FROM webhooky.events e USING orphans WHERE e.id = orphans.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone_deliveries), (SELECT count(*) FROM gone_attempts), (SELECT count(*) FROM gone_events)
$$;
COMMENT ON FUNCTION webhooky.prune(interval, interval, integer) IS
    'Deletes one batch of history: succeeded deliveries older than 7 days and dead ones older than 30 (by completion), their attempts, and events left without deliveries. Call until it returns zeros; the worker does so every few minutes.';

-------------------------------------------------------------------------------
-- Roles: least privilege.
-------------------------------------------------------------------------------
-- Grants the privileges of the three group roles (when they exist). Run again after creating
-- them by hand if the migration could not.
CREATE FUNCTION webhooky.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
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
        GRANT EXECUTE ON FUNCTION webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint),
            webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.variables(text, integer),
            webhooky.new_secret(), webhooky.prune(interval, interval, integer) TO webhooky_admin;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_emitter') THEN
        GRANT USAGE ON SCHEMA webhooky TO webhooky_emitter;
        GRANT EXECUTE ON FUNCTION webhooky.emit(text, jsonb, text), webhooky.has_webhooks(text, text) TO webhooky_emitter;
    END IF;
END
$$;
COMMENT ON FUNCTION webhooky.grant_roles() IS 'Grants webhooky_worker, webhooky_admin and webhooky_emitter their privileges (only those that exist).';

-- Functions that act with the owner's rights are not for everyone.
REVOKE EXECUTE ON FUNCTION webhooky.emit(text, jsonb, text), webhooky.has_webhooks(text, text),
    webhooky.send_test(bigint, jsonb, bigint), webhooky.redeliver(bigint),
    webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean), webhooky.prune(interval, interval, integer)
    FROM PUBLIC;

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_worker') THEN CREATE ROLE webhooky_worker NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_admin') THEN CREATE ROLE webhooky_admin NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_emitter') THEN CREATE ROLE webhooky_emitter NOLOGIN; END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not create the roles webhooky_worker, webhooky_admin and webhooky_emitter (that needs CREATEROLE); create them, then run SELECT webhooky.grant_roles()';
END
$roles$;
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
