-- Webhooky schema, migration 0063: the health view's oldest pending age counts claims whose
-- lease ran out.
--
-- A worker that dies (SIGKILL, a lost machine) leaves its claims `sending` until a worker takes
-- them back when their lease has run out. Meanwhile `webhooky status` counted them in PENDING
-- but not in OLDEST, which said "-" when nothing else waited: the deliveries looked in hand
-- while no one was sending them. oldest_pending_age now counts a `sending` delivery whose lease
-- has run out as waiting since it became pending; the view is otherwise as in 0056.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0063_oldest_counts_stranded_claims.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(63, 'oldest_counts_stranded_claims'); END $$;

-- As in migration 0056, with claims whose lease ran out in `oldest`.
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
             -- a claim whose lease ran out (its worker died, and no worker has taken it back
             -- yet) waits like a pending one
             min(coalesce(d.pending_since, d.created_at)) FILTER (WHERE d.state = 'pending' OR d.lease_expires_at <= now()) AS oldest
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
    'One row per webhook: enabled, pending and oldest pending age (a redelivered delivery waits from its redelivery; a claim whose lease ran out counts as waiting), succeeded and dead in the last 24 h, failures in a row, last status, error and error code, p50/p95 duration (ms, last 24 h; attempts whose lease ran out are left out), why it was disabled.';

COMMIT;
