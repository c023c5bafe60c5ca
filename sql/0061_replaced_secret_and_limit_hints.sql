-- Webhooky schema, migration 0061: a plain UPDATE of a webhook's secret replaces it at once, and
-- a refusal for a limit says who can raise it.
--
-- After webhooky.rotate_secret(id), UPDATE webhooky.webhooks SET secret = webhooky.new_secret()
-- (or SET secret = NULL) kept the secret from before the rotation in previous_secret, so it went
-- on signing every request until the overlap ended, although admin.md says such an UPDATE
-- replaces the secret at once, with no overlap; that is what one does when the old secret has
-- leaked. A tenant's role could not even clear previous_secret by hand (it may not update that
-- column). An UPDATE that changes secret and sets neither previous_secret nor
-- previous_secret_expires_at now clears both (trigger end_overlap_on_replaced_secret);
-- rotate_secret, which sets them, keeps its overlap.
--
-- The limits' refusals told whoever saved the webhook to "raise max_body_length in
-- webhooky.settings" or "Raise max_headers in webhooky.settings", which a tenant's role may not
-- even read. Each now says what the writer can do and that an admin raises the limit, with the
-- statement (as the URL's and a header value's did): check_webhook_limits as in 0057 otherwise.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0061_replaced_secret_and_limit_hints.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(61, 'replaced_secret_and_limit_hints'); END $$;

CREATE OR REPLACE FUNCTION webhooky.end_overlap_on_replaced_secret() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.previous_secret := NULL;
    NEW.previous_secret_expires_at := NULL;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION webhooky.end_overlap_on_replaced_secret() IS
    'Trigger (before update of secret): a secret replaced without previous_secret (not by webhooky.rotate_secret) ends the overlap of the last rotation: the old secret stops signing at once.';

CREATE TRIGGER end_overlap_on_replaced_secret BEFORE UPDATE OF secret ON webhooky.webhooks
    FOR EACH ROW
    WHEN (NEW.secret IS DISTINCT FROM OLD.secret AND OLD.previous_secret IS NOT NULL
          AND NEW.previous_secret IS NOT DISTINCT FROM OLD.previous_secret
          AND NEW.previous_secret_expires_at IS NOT DISTINCT FROM OLD.previous_secret_expires_at)
    EXECUTE FUNCTION webhooky.end_overlap_on_replaced_secret();

-- check_webhook_limits as in 0057, with hints that say who raises a limit.
CREATE OR REPLACE FUNCTION webhooky.check_webhook_limits() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    label text := webhooky.webhook_label(NEW.id, NEW.name, TG_OP = 'INSERT');
    limit_value integer;
    existing integer;
    header record;
    headers_changed boolean := true;
    -- A limit's hint: what the writer can do (%s), then the statement by which an admin doubles it.
    raise_hint text := '%s, or an admin raises the limit: INSERT INTO webhooky.settings VALUES (%L, %L) ON CONFLICT (name) DO UPDATE SET value = excluded.value';
BEGIN
    -- An UPDATE is checked only for what it changes: a webhook written under a larger limit
    -- can still be disabled, renamed or moved to a shorter URL after the limit was lowered.
    limit_value := webhooky.setting('max_url_length');
    IF (TG_OP = 'INSERT' OR NEW.url IS DISTINCT FROM OLD.url) AND length(NEW.url) > limit_value THEN
        RAISE EXCEPTION '%: URL is % characters long; the limit is %', label, length(NEW.url), limit_value
            USING ERRCODE = 'check_violation', HINT = format(raise_hint, 'Shorten the URL', 'max_url_length', (limit_value::bigint * 2)::text);
    END IF;
    limit_value := webhooky.setting('max_body_length');
    IF (TG_OP = 'INSERT' OR NEW.body IS DISTINCT FROM OLD.body) AND length(NEW.body) > limit_value THEN
        RAISE EXCEPTION '%: body is % characters long; the limit is %', label, length(NEW.body), limit_value
            USING ERRCODE = 'check_violation', HINT = format(raise_hint, 'Shorten the body template', 'max_body_length', (limit_value::bigint * 2)::text);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.headers IS NOT DISTINCT FROM OLD.headers THEN
        headers_changed := false;
    END IF;
    limit_value := webhooky.setting('max_headers');
    IF headers_changed AND (SELECT count(*) FROM jsonb_object_keys(NEW.headers)) > limit_value THEN
        RAISE EXCEPTION '%: % headers; the limit is %', label, (SELECT count(*) FROM jsonb_object_keys(NEW.headers)), limit_value
            USING ERRCODE = 'check_violation', HINT = format(raise_hint, 'Send fewer headers', 'max_headers', (limit_value::bigint * 2)::text);
    END IF;
    limit_value := webhooky.setting('max_header_value_length');
    FOR header IN SELECT h.key, h.value #>> '{}' AS value FROM jsonb_each(NEW.headers) h WHERE headers_changed LOOP
        IF length(header.value) > limit_value THEN
            RAISE EXCEPTION '%: header "%" is % characters long; the limit is %', label, header.key, length(header.value), limit_value
                USING ERRCODE = 'check_violation',
                      HINT = format(raise_hint, 'Shorten the value', 'max_header_value_length', (limit_value::bigint * 2)::text);
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
