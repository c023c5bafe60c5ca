-- Webhooky schema, migration 0059: webhooky.rotate_secret refuses an overlap longer than 7 days.
--
-- Any overlap of 0 or more was taken: webhooky.rotate_secret(2, interval '100 years'), or a typo
-- such as '24 days' for '24 hours', kept the old secret (perhaps rotated because it leaked)
-- signing every request for that long. An overlap over 7 days is now refused with what was given,
-- the bound and what to pass (SQLSTATE 22023, as for a NULL or negative one); exactly 7 days is
-- taken. The function's comment names the bound. Nothing else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0059_rotate_secret_overlap_bound.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(59, 'rotate_secret_overlap_bound'); END $$;

-- As in migration 0027, and the overlap's upper bound checked after its lower one.
CREATE OR REPLACE FUNCTION webhooky.rotate_secret(webhook_id bigint, overlap interval DEFAULT '24 hours') RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target webhooky.webhooks;
    fresh text := webhooky.new_secret();
BEGIN
    IF rotate_secret.overlap IS NULL OR rotate_secret.overlap < interval '0' THEN
        RAISE EXCEPTION 'webhooky.rotate_secret: overlap must be an interval of 0 or more, not %', coalesce(rotate_secret.overlap::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'It says how long the old secret signs too (default 24 hours), e.g. webhooky.rotate_secret(2, interval ''1 hour''); 0 replaces it at once.';
    END IF;
    IF rotate_secret.overlap > interval '7 days' THEN
        RAISE EXCEPTION 'webhooky.rotate_secret: overlap must be at most 7 days, not %', rotate_secret.overlap
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The old secret keeps signing until the overlap ends, so a long one keeps the secret you are replacing (perhaps because it leaked) valid '
                      || 'that long; pass the time the receiver needs to switch, e.g. interval ''24 hours'' (the default), or 0 to replace it at once.';
    END IF;
    SELECT * INTO target FROM webhooky.webhooks w WHERE w.id = rotate_secret.webhook_id FOR UPDATE;
    IF NOT FOUND OR (webhooky.caller_account() IS NOT NULL AND target.account_id IS DISTINCT FROM webhooky.caller_account()) THEN
        RAISE EXCEPTION 'webhooky.rotate_secret: there is no webhook %', rotate_secret.webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE webhooky.webhooks w
       SET previous_secret = CASE WHEN target.secret IS NULL THEN NULL ELSE target.secret END,
           previous_secret_expires_at = CASE WHEN target.secret IS NULL THEN NULL ELSE now() + rotate_secret.overlap END,
           secret = fresh
     WHERE w.id = rotate_secret.webhook_id;
    RETURN fresh;
END
$$;
COMMENT ON FUNCTION webhooky.rotate_secret(bigint, interval) IS
    'Gives a webhook a new signing secret and returns it; requests carry signatures with the old and the new one for the overlap (default 24 hours, at most 7 days), so the receiver can switch in that time.';

COMMIT;
