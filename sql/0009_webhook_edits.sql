-- Webhooky schema, migration 0009: a webhook's limits apply to what a change writes, and
-- redeliver holds the delivery it checked.
--
-- 1. webhooky.check_webhook_limits checked every UPDATE of a webhook against today's limits,
--    also the fields the UPDATE left alone. A webhook written under a larger limit (an admin
--    lowered max_url_length, or it was created before 0006) could not be changed at all, and
--    the worker's own UPDATE that disables it (after 410 Gone, or failing for too long) failed
--    too, taking the whole outcome statement with it: the delivery stayed 'sending', was sent
--    again when its lease ran out, and again, for ever. An UPDATE now checks only the url,
--    body and headers it changes; an INSERT checks everything, as before.
-- 2. webhooky.redeliver read a delivery's state and then updated it: a prune that deleted the
--    delivery in between made it return without redelivering anything. It now locks the row
--    when it reads it.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0009_webhook_edits.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(9, 'webhook_edits'); END $$;

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
        -- One writer per account at a time, so that concurrent inserts cannot pass the cap together.
        PERFORM pg_advisory_xact_lock(hashtext('webhooky.account:' || NEW.account_id));
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

CREATE OR REPLACE FUNCTION webhooky.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current text;
    caller text := webhooky.caller_account();
BEGIN
    SELECT d.state INTO current FROM webhooky.deliveries d JOIN webhooky.webhooks w ON w.id = d.webhook_id
     WHERE d.id = redeliver.delivery_id AND (caller IS NULL OR w.account_id = caller)
       FOR UPDATE OF d;  -- held until the end: a prune or a worker cannot change it in between
    IF current IS NULL THEN
        RAISE EXCEPTION 'webhooky.redeliver: there is no delivery %', redeliver.delivery_id USING ERRCODE = 'no_data_found';
    END IF;
    IF current NOT IN ('succeeded', 'dead') THEN
        RAISE EXCEPTION 'webhooky.redeliver: delivery % is %; it will be sent without being redelivered', redeliver.delivery_id, current
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE webhooky.deliveries d
       SET state = 'pending', next_attempt_at = now(), retry_base = d.attempts, completed_at = NULL, updated_at = now()
     WHERE d.id = redeliver.delivery_id AND d.state IN ('succeeded', 'dead');
    PERFORM pg_notify('webhooky', '');
END
$$;

COMMIT;
