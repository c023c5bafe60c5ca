-- Webhooky schema, migration 0032: the health view's p50/p95 leave out attempts whose lease ran out.
--
-- When a worker stops or loses the database before it records an attempt's outcome, the lease
-- reap writes the attempt's row with 'lease expired: ...', no status, and the time from the
-- claim to the reap (a minute or more) as its duration. That is not how long the endpoint took
-- to answer, and a few such rows moved webhooky.health's p95_ms (and, for a quiet webhook, its
-- p50_ms) to the lease's length. They stay in webhooky.attempts, and in last_error while they
-- are the last attempt; the percentiles now count only attempts whose outcome their worker saw.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0032_health_timings.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(32, 'health_timings'); END $$;

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
             -- not the rows of attempts whose lease ran out (status NULL, 'lease expired: ...')
             percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms)
                 FILTER (WHERE t.status IS NOT NULL OR t.error IS NULL OR t.error NOT LIKE 'lease expired: %') AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms)
                 FILTER (WHERE t.status IS NOT NULL OR t.error IS NULL OR t.error NOT LIKE 'lease expired: %') AS p95_ms
        FROM webhooky.attempts t WHERE t.webhook_id = w.id AND t.started_at > now() - interval '24 hours') a ON true
  LEFT JOIN LATERAL (
      SELECT count(*) AS dead_24h FROM webhooky.deliveries d
       WHERE d.webhook_id = w.id AND d.state = 'dead' AND d.completed_at > now() - interval '24 hours') x ON true
  LEFT JOIN LATERAL (
      SELECT t.status, t.error, t.started_at FROM webhooky.attempts t
       WHERE t.webhook_id = w.id ORDER BY t.started_at DESC LIMIT 1) l ON true;
COMMENT ON VIEW webhooky.health IS
    'One row per webhook: enabled, pending and oldest pending age, succeeded and dead in the last 24 h, failures in a row, last status and error, p50/p95 duration (ms, last 24 h; attempts whose lease ran out are left out), why it was disabled.';

COMMIT;
