-- Webhooky schema, migration 0027: webhooky.rotate_secret refuses an overlap that makes no sense.
--
-- A NULL overlap (webhooky.rotate_secret(2, NULL)) kept the old secret as previous_secret with no
-- end, which the worker takes as no overlap at all: the new secret alone signed from then on, so
-- the receiver rejected every request until it had it, the very thing rotate_secret is for
-- avoiding, and the old secret stayed in the row. A negative one ended the overlap before it began.
-- Both are now refused with what to pass (SQLSTATE 22023); 0 still replaces the secret at once.
-- Nothing else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0027_rotate_secret_overlap.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(27, 'rotate_secret_overlap'); END $$;

-- As in migration 0006, and the overlap checked first.
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

COMMIT;
