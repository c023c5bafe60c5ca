-- Webhooky schema, migration 0056: a delivery carries the code of its last failure.
--
-- Migration 0054 gave every failed attempt an error_code, but admins look at
-- webhooky.deliveries (what gave up today, and why) and at webhooky.health: there the last
-- failure was only a message for people, and "dead deliveries by cause" could only be asked of
-- its wording. webhooky.deliveries gets last_error_code beside last_error: the code of the
-- last attempt (as in attempts.error_code; NULL after a success or an answer with an HTTP
-- status), or the code of what else ended the delivery: webhook_deleted (its webhook was
-- deleted), webhook_moved (its webhook was given to another account), event_deleted (its event
-- row was gone when it was claimed). The worker's outcome statement and lease reap write it;
-- the triggers that end deliveries when their webhook is deleted or moved write theirs here.
-- Whatever leaves last_error as it is (a redelivery, enabling a webhook) leaves the code too.
--
-- The health view told the rows the lease reap writes from answers by their error text: it now
-- reads their code, and the text only for a row without one (as the worker does), and shows
-- the last attempt's code as last_error_code.
--
-- Existing deliveries get a code only where it is exact: the texts only Webhooky writes
-- ('webhook deleted', 'webhook moved to another account: ...', 'event deleted',
-- 'lease expired: ...', 'no answer: the worker stopped ...'), or else the code of the attempts
-- row that wrote last_error (the delivery's last attempt, with the same error and status).
-- Others keep NULL. That UPDATE writes every delivery with a last_error (the dead ones kept for
-- retention too) while the ALTER TABLE's lock holds webhooky.deliveries: workers' writes and
-- admins' reads of it (status, the health view) wait until the migration commits. On a large
-- table, migrate at a quiet moment.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0056_delivery_error_codes.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(56, 'delivery_error_codes'); END $$;

ALTER TABLE webhooky.deliveries ADD COLUMN last_error_code text;

COMMENT ON COLUMN webhooky.deliveries.last_error IS 'Why the last attempt failed, or what else ended the delivery (see last_error_code); NULL after a success.';
COMMENT ON COLUMN webhooky.deliveries.last_error_code IS
    'Why the last attempt failed, as a code: one of webhooky.attempts.error_code''s (timeout, dns_failure, connect_failure, tls_failure, '
    'connection_broken, other, redirect_refused, too_many_redirects, invalid_url, address_not_allowed, invalid_request, interrupted, lease_expired); '
    'NULL after a success or an answer with an HTTP status (see last_status). Or what else ended the delivery dead: '
    'webhook_deleted (its webhook was deleted), webhook_moved (its webhook was given to another account, and the event is of another), '
    'event_deleted (its event row was gone when a worker claimed it). NULL also for failures recorded before migration 0056 '
    'whose code was not known exactly.';

UPDATE webhooky.deliveries d
   SET last_error_code = CASE
           WHEN d.last_error = 'webhook deleted' THEN 'webhook_deleted'
           WHEN d.last_error = 'webhook moved to another account: this event is not of its account' THEN 'webhook_moved'
           WHEN d.last_error = 'event deleted' THEN 'event_deleted'
           WHEN d.last_status IS NULL AND d.last_error LIKE 'lease expired: %' THEN 'lease_expired'
           WHEN d.last_status IS NULL AND d.last_error LIKE 'no answer: the worker stopped%' THEN 'interrupted'
           ELSE (SELECT a.error_code FROM webhooky.attempts a
                  WHERE a.delivery_id = d.id AND a.attempt = d.attempts AND a.error = d.last_error
                    AND a.status IS NOT DISTINCT FROM d.last_status AND a.error_code IS NOT NULL
                  ORDER BY a.id DESC LIMIT 1) END
 WHERE d.last_error IS NOT NULL;

-- As in migration 0051, with the code.
CREATE OR REPLACE FUNCTION webhooky.on_webhook_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE webhooky.deliveries d
           SET state = 'dead', last_error = 'webhook deleted', last_error_code = 'webhook_deleted', completed_at = now(), updated_at = now(),
               claimed_by = NULL, lease_expires_at = NULL
         WHERE d.webhook_id = OLD.id AND d.state IN ('pending', 'sending');
        DELETE FROM webhooky.webhook_health h WHERE h.webhook_id = OLD.id;
        RETURN OLD;
    END IF;
    IF NEW.enabled AND NOT OLD.enabled THEN
        UPDATE webhooky.webhook_health h SET consecutive_failures = 0, failing_since = NULL WHERE h.webhook_id = NEW.id;
        -- Its waiting deliveries are due again, also those waiting for a retry: workers look for
        -- them at once.
        UPDATE webhooky.deliveries d SET next_attempt_at = now(), updated_at = now()
         WHERE d.webhook_id = NEW.id AND d.state = 'pending' AND d.next_attempt_at > now();
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION webhooky.on_webhook_change() IS
    'Trigger: a deleted webhook''s unfinished deliveries end dead (''webhook deleted'', code webhook_deleted) and its health row goes; a webhook enabled again starts with no failures, and its waiting deliveries, those waiting for a retry too, are due at once and wake the workers.';

-- As in migration 0030, with the code.
CREATE OR REPLACE FUNCTION webhooky.on_webhook_account_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The events first: a fan-out that holds them is waited for, and the deliveries it made
    -- are then seen by the next statement.
    UPDATE webhooky.events e SET webhook_ids = array_remove(e.webhook_ids, NEW.id)
     WHERE NOT e.fanned_out AND NEW.id = ANY (e.webhook_ids) AND e.account_id IS DISTINCT FROM NEW.account_id;
    UPDATE webhooky.deliveries d
       SET state = 'dead', last_error = 'webhook moved to another account: this event is not of its account', last_error_code = 'webhook_moved',
           completed_at = now(), updated_at = now(), claimed_by = NULL, lease_expires_at = NULL
     WHERE d.webhook_id = NEW.id AND d.state IN ('pending', 'sending')
       AND EXISTS (SELECT FROM webhooky.events e WHERE e.id = d.event_id AND e.account_id IS DISTINCT FROM NEW.account_id);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION webhooky.on_webhook_account_change() IS
    'Trigger: a webhook given to an account ends its unfinished deliveries of other accounts'' events (code webhook_moved) and leaves their unsent events.';

-- As in migration 0040: the lease reap's rows by their code (by their text when they have
-- none), and the last attempt's code at the end (a view can only gain columns there).
CREATE OR REPLACE VIEW webhooky.health WITH (security_invoker = true) AS
SELECT w.id AS webhook_id, w.name, w.account_id, w.event, w.enabled, w.disabled_reason,
       coalesce(p.pending, 0) + coalesce(u.waiting, 0) AS pending,
       coalesce(p.sending, 0) AS sending,
       now() - least(p.oldest, u.oldest) AS oldest_pending_age,
       coalesce(a.succeeded_24h, 0) AS succeeded_24h,
       coalesce(x.dead_24h, 0) AS dead_24h,
       coalesce(h.consecutive_failures, 0) AS consecutive_failures,
       h.failing_since, h.last_success_at,
       l.status AS last_status, l.error AS last_error, l.started_at AS last_attempt_at,
       round(a.p50_ms::numeric, 1) AS p50_ms, round(a.p95_ms::numeric, 1) AS p95_ms,
       l.error_code AS last_error_code
  FROM webhooky.webhooks w
  LEFT JOIN webhooky.webhook_health h ON h.webhook_id = w.id
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE d.state = 'pending') AS pending, count(*) FILTER (WHERE d.state = 'sending') AS sending,
             min(coalesce(d.pending_since, d.created_at)) FILTER (WHERE d.state = 'pending') AS oldest
        FROM webhooky.deliveries d WHERE d.webhook_id = w.id AND d.state IN ('pending', 'sending')) p ON true
  LEFT JOIN LATERAL (
      SELECT count(*) AS waiting, min(e.created_at) AS oldest
        FROM webhooky.events e WHERE NOT e.fanned_out AND w.id = ANY (e.webhook_ids)) u ON true
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE t.status BETWEEN 200 AND 299) AS succeeded_24h,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms) FILTER (WHERE NOT t.lease_expiry) AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) FILTER (WHERE NOT t.lease_expiry) AS p95_ms
        FROM (SELECT t.status, t.duration_ms,
                     -- the rows of attempts whose lease ran out: by the code, or, for a row
                     -- without one (before 0054), by the text (no status, 'lease expired: ...')
                     coalesce(t.error_code = 'lease_expired', t.status IS NULL AND coalesce(t.error LIKE 'lease expired: %', false)) AS lease_expiry
                FROM webhooky.attempts t WHERE t.webhook_id = w.id AND t.started_at > now() - interval '24 hours') t) a ON true
  LEFT JOIN LATERAL (
      SELECT count(*) AS dead_24h FROM webhooky.deliveries d
       WHERE d.webhook_id = w.id AND d.state = 'dead' AND d.completed_at > now() - interval '24 hours') x ON true
  LEFT JOIN LATERAL (
      SELECT t.status, t.error, t.error_code, t.started_at FROM webhooky.attempts t
       WHERE t.webhook_id = w.id ORDER BY t.started_at DESC LIMIT 1) l ON true;
COMMENT ON VIEW webhooky.health IS
    'One row per webhook: enabled, pending and oldest pending age (a redelivered delivery waits from its redelivery), succeeded and dead in the last 24 h, failures in a row, last status, error and error code, p50/p95 duration (ms, last 24 h; attempts whose lease ran out are left out), why it was disabled.';

COMMIT;
