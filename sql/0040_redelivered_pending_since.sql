-- Webhooky schema, migration 0040: a redelivered delivery waits from its redelivery.
--
-- webhooky.health's oldest_pending_age (OLDEST in webhooky status) counted a pending delivery's
-- wait from its created_at: right after webhooky.redeliver or redeliver_webhook of deliveries
-- made days ago it showed days, while doctor's backlog check (from next_attempt_at) showed
-- none. A delivery now has pending_since, set when a redelivery makes it pending again (NULL:
-- pending since it was created), and the view counts from it. Adding the column rewrites
-- nothing (no default).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0040_redelivered_pending_since.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(40, 'redelivered_pending_since'); END $$;

ALTER TABLE webhooky.deliveries ADD COLUMN pending_since timestamptz;
COMMENT ON COLUMN webhooky.deliveries.pending_since IS
    'When a redelivery made the delivery pending again; NULL: pending since created_at. webhooky.health counts its wait from it.';

-- As in migration 0037, and the delivery waits from now.
CREATE OR REPLACE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
    its_webhook bigint;
    webhook_exists boolean;
    webhook_account text;
    event_account text;
    caller text := webhooky.caller_account();
BEGIN
    -- The webhook's row first (a share lock, as in a move's order: webhook, then deliveries):
    -- a move to another account that is under way commits before what follows reads the
    -- webhook's account, or waits until this transaction ends and then ends the delivery.
    PERFORM 1 FROM webhooky.webhooks w
     WHERE w.id = (SELECT d.webhook_id FROM webhooky.deliveries d WHERE d.id = redeliver.delivery_id)
       AND (caller IS NULL OR w.account_id = caller)  -- a tenant holds no lock of another account
       FOR SHARE OF w;
    SELECT d.state, d.webhook_id, w.id IS NOT NULL, w.account_id,
           (SELECT e.account_id FROM webhooky.events e WHERE e.id = d.event_id)
      INTO current, its_webhook, webhook_exists, webhook_account, event_account
      FROM webhooky.deliveries d LEFT JOIN webhooky.webhooks w ON w.id = d.webhook_id
     WHERE d.id = redeliver.delivery_id
       AND (caller IS NULL OR (w.account_id = caller
                               AND EXISTS (SELECT 1 FROM webhooky.events e WHERE e.id = d.event_id AND e.account_id = caller)))
       FOR UPDATE OF d;  -- held until the end: a prune or a worker cannot change it in between
    IF current IS NULL THEN
        RAISE EXCEPTION 'webhooky.redeliver: there is no delivery %', redeliver.delivery_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT webhook_exists THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % was for webhook %, which has been deleted: there is nothing to send it to',
                        redeliver.delivery_id, its_webhook
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Send the event again through another webhook with SELECT webhooky.send_test(WEBHOOK_ID, from_event => EVENT_ID) (its event id: SELECT event_id FROM webhooky.deliveries WHERE id = %s).', redeliver.delivery_id);
    END IF;
    IF webhook_account IS NOT NULL AND event_account IS DISTINCT FROM webhook_account THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is of an event of account %, and webhook % now fires for account % only: it would send one account''s data to another''s URL',
                        redeliver.delivery_id, coalesce(quote_literal(event_account), 'NULL (every account)'), its_webhook, quote_literal(webhook_account)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Send the event through a webhook of its own account with SELECT webhooky.send_test(WEBHOOK_ID, from_event => EVENT_ID) (its event id: SELECT event_id FROM webhooky.deliveries WHERE id = %s).', redeliver.delivery_id);
    END IF;
    IF current NOT IN ('succeeded', 'dead') THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is %; it will be sent without being redelivered', redeliver.delivery_id, current
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now(),
           pending_since = now()
     WHERE d.id = redeliver.delivery_id AND d.state IN ('succeeded', 'dead');
    PERFORM pg_notify('webhooky', '');
END
$$;
COMMENT ON FUNCTION webhooky.redeliver(bigint) IS
    'Sends a succeeded or dead delivery again with a fresh retry schedule; receivers see the same webhook-id.';

-- As in migration 0037, and the delivery waits from now.
CREATE OR REPLACE FUNCTION webhooky.redeliver_webhook(webhook_id bigint, since timestamptz, until timestamptz DEFAULT now(), include_succeeded boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    count integer;
    caller text := webhooky.caller_account();
BEGIN
    IF redeliver_webhook.since IS NULL OR redeliver_webhook.until IS NULL THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: since and until must not be NULL'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'They bound when the deliveries to send again were created, e.g. webhooky.redeliver_webhook(1, now() - interval ''3 days''); until defaults to now().';
    END IF;
    IF redeliver_webhook.since >= redeliver_webhook.until THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: since must be before until (the deliveries created in [since, until) are sent again)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('since is %s, until %s: swapped?', redeliver_webhook.since, redeliver_webhook.until);
    END IF;
    -- The webhook's row locked (share), as in webhooky.redeliver: a move to another account
    -- that is under way commits first, and the UPDATE below reads the account it moved to.
    PERFORM 1 FROM webhooky.webhooks w
     WHERE w.id = redeliver_webhook.webhook_id AND (caller IS NULL OR w.account_id = caller)
       FOR SHARE OF w;
    IF NOT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.id = redeliver_webhook.webhook_id AND (caller IS NULL OR w.account_id = caller)) THEN
        RAISE EXCEPTION 'webhooky.redeliver_webhook: there is no webhook %', redeliver_webhook.webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now(),
           pending_since = now()
     WHERE d.webhook_id = redeliver_webhook.webhook_id
       AND d.created_at >= redeliver_webhook.since AND d.created_at < redeliver_webhook.until
       AND (d.state = 'dead' OR (redeliver_webhook.include_succeeded AND d.state = 'succeeded'))
       -- only the deliveries of events of the account the webhook fires for now (for a tenant,
       -- its own): not another account's data to a URL its new owner chose
       AND EXISTS (SELECT 1 FROM webhooky.webhooks w JOIN webhooky.events e ON e.id = d.event_id
                    WHERE w.id = d.webhook_id AND (w.account_id IS NULL OR e.account_id = w.account_id)
                      AND (caller IS NULL OR e.account_id = caller));
    GET DIAGNOSTICS count = ROW_COUNT;
    IF count > 0 THEN
        PERFORM pg_notify('webhooky', '');
    END IF;
    RETURN count;
END
$$;
COMMENT ON FUNCTION webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean) IS
    'Sends again the dead (or, with include_succeeded, all finished) deliveries of a webhook created in [since, until); returns how many.';

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
             min(coalesce(d.pending_since, d.created_at)) FILTER (WHERE d.state = 'pending') AS oldest
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
    'One row per webhook: enabled, pending and oldest pending age (a redelivered delivery waits from its redelivery), succeeded and dead in the last 24 h, failures in a row, last status and error, p50/p95 duration (ms, last 24 h; attempts whose lease ran out are left out), why it was disabled.';

COMMIT;
