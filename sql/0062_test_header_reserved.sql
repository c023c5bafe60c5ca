-- Webhooky schema, migration 0062: a webhook cannot configure the webhooky-test header, and a
-- limit's hint suggests a value that lets the row in.
--
-- Test deliveries carry `webhooky-test: true` (README, "What a receiver gets": answer 2xx and
-- apply nothing). A webhook could configure that header itself ({"Webhooky-Test": "true"}, left
-- over from trying an endpoint, or set by a tenant), and then every real event looked like a
-- test to its receiver, which acknowledged and dropped it while the delivery showed succeeded.
-- A webhook's headers may no longer name it (check_webhook_test_header, a trigger of its own);
-- the worker leaves such a header of a row saved before out of real deliveries. send_test's
-- comment says it sends the header.
--
-- The limits' hints suggested twice the limit, which changes nothing for a limit of 0, can be
-- less than the row needs (a 200,003-character body against 65,536 was told 131,072, then
-- 262,144), and above 499,999,999 is a value webhooky.settings refuses (at most 9 digits). They
-- now suggest what the row needs, at least double the limit, at most 999,999,999
-- (webhooky.raised_limit); check_webhook_limits as in 0061 otherwise.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0062_test_header_reserved.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(62, 'test_header_reserved'); END $$;

CREATE OR REPLACE FUNCTION webhooky.check_webhook_test_header() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text;
BEGIN
    -- Headers written again as they were (a whole row saved by an ORM) are no change.
    IF TG_OP = 'UPDATE' AND NEW.headers IS NOT DISTINCT FROM OLD.headers THEN
        RETURN NEW;
    END IF;
    SELECT h.key INTO name FROM jsonb_object_keys(NEW.headers) h(key) WHERE lower(h.key) = 'webhooky-test' LIMIT 1;
    IF name IS NOT NULL THEN
        RAISE EXCEPTION '%: header "%" is set by Webhooky on test deliveries and cannot be configured',
                        webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT'), name
            USING ERRCODE = 'check_violation',
                  HINT = format('Leave it out of headers (headers - %L): Webhooky sends webhooky-test: true with each test delivery '
                                '(webhooky.send_test) and never with a real one, so that the receiver can tell them apart.', name);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION webhooky.check_webhook_test_header() IS
    'Trigger (before insert or update of headers): refuses a webhooky-test header, which Webhooky sends on test deliveries only.';

-- Fires only when the headers are written, and refuses only when they change, so that a row
-- saved before can still be paused or renamed.
CREATE TRIGGER check_webhook_test_header BEFORE INSERT OR UPDATE OF headers ON webhooky.webhooks
    FOR EACH ROW
    WHEN (jsonb_typeof(NEW.headers) = 'object')
    EXECUTE FUNCTION webhooky.check_webhook_test_header();

-- The value a limit's hint suggests: what the row needs, at least double the limit (at least 1),
-- at most 999,999,999 (the most webhooky.settings takes), as text.
CREATE OR REPLACE FUNCTION webhooky.raised_limit(current_limit integer, needed integer) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT least(greatest(current_limit::bigint * 2, coalesce(needed, 0)::bigint, 1), 999999999)::text
$$;
-- A tenant's refusal calls it too (where a DBA revoked EXECUTE from PUBLIC by default).
GRANT EXECUTE ON FUNCTION webhooky.raised_limit(integer, integer) TO PUBLIC;
COMMENT ON FUNCTION webhooky.raised_limit(integer, integer) IS
    'The value a limit''s refusal suggests: what the row needs, at least double the limit, at most 999999999.';

COMMENT ON FUNCTION webhooky.send_test(bigint, jsonb, bigint) IS
    'Queues a test delivery of a webhook (sample payload, or the given one, or a past event''s) and returns its delivery id; the worker sends it even if the webhook is disabled, with the header webhooky-test: true.';

-- check_webhook_limits as in 0061; its hints suggest webhooky.raised_limit.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_limits() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
    limit_value integer;
    existing integer;
    header record;
    headers_changed boolean := true;
    -- A limit's hint: what the writer can do (%s), then the statement by which an admin raises it
    -- to what this row needs, at least double (webhooky.raised_limit).
    raise_hint text := '%s, or an admin raises the limit: INSERT INTO webhooky.settings VALUES (%L, %L) ON CONFLICT (name) DO UPDATE SET value = excluded.value';
BEGIN
    -- An UPDATE is checked only for what it changes: a webhook written under a larger limit
    -- can still be disabled, renamed or moved to a shorter URL after the limit was lowered.
    limit_value := webhooky.setting('max_url_length');
    IF (TG_OP = 'INSERT' OR NEW.url IS DISTINCT FROM OLD.url) AND length(NEW.url) > limit_value THEN
        RAISE EXCEPTION '%: URL is % characters long; the limit is %', label, length(NEW.url), limit_value
            USING ERRCODE = 'check_violation', HINT = format(raise_hint, 'Shorten the URL', 'max_url_length', webhooky.raised_limit(limit_value, length(NEW.url)));
    END IF;
    limit_value := webhooky.setting('max_body_length');
    IF (TG_OP = 'INSERT' OR NEW.body IS DISTINCT FROM OLD.body) AND length(NEW.body) > limit_value THEN
        RAISE EXCEPTION '%: body is % characters long; the limit is %', label, length(NEW.body), limit_value
            USING ERRCODE = 'check_violation', HINT = format(raise_hint, 'Shorten the body template', 'max_body_length', webhooky.raised_limit(limit_value, length(NEW.body)));
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.headers IS NOT DISTINCT FROM OLD.headers THEN
        headers_changed := false;
    END IF;
    limit_value := webhooky.setting('max_headers');
    IF headers_changed AND (SELECT count(*) FROM jsonb_object_keys(NEW.headers)) > limit_value THEN
        RAISE EXCEPTION '%: % headers; the limit is %', label, (SELECT count(*) FROM jsonb_object_keys(NEW.headers)), limit_value
            USING ERRCODE = 'check_violation', HINT = format(raise_hint, 'Send fewer headers', 'max_headers', webhooky.raised_limit(limit_value, (SELECT count(*) FROM jsonb_object_keys(NEW.headers))::integer));
    END IF;
    limit_value := webhooky.setting('max_header_value_length');
    FOR header IN SELECT h.key, h.value #>> '{}' AS value FROM jsonb_each(NEW.headers) h WHERE headers_changed LOOP
        IF length(header.value) > limit_value THEN
            RAISE EXCEPTION '%: header "%" is % characters long; the limit is %', label, header.key, length(header.value), limit_value
                USING ERRCODE = 'check_violation',
                      HINT = format(raise_hint, 'Shorten the value', 'max_header_value_length', webhooky.raised_limit(limit_value, length(header.value)));
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

COMMIT;
