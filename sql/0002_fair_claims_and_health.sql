-- Webhooky schema, migration 0002: fair claims per webhook, and webhook health.
--
--   * Deliveries are claimed per webhook (a fair share each, never more than a webhook's
--     endpoint can take at once), so a slow or dead endpoint cannot hold back the others.
--     The due index is now (webhook_id, next_attempt_at); a disabled webhook's deliveries are
--     simply not claimed, so they no longer need parking at next_attempt_at = infinity.
--   * webhooky.webhook_health counts each webhook's consecutive failures; a webhook that keeps
--     failing (or answers 410 Gone) is disabled with a recorded reason.
--   * A body template nested deeper than 512 levels is refused when saved (the worker's limit).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0002_fair_claims_and_health.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(2, 'fair_claims_and_health'); END $$;

-- Fair claims -----------------------------------------------------------------------------
CREATE INDEX deliveries_due_by_webhook ON webhooky.deliveries (webhook_id, next_attempt_at) WHERE state = 'pending';
DROP INDEX webhooky.deliveries_due;

DROP TRIGGER on_webhook_enabled ON webhooky.webhooks;
-- Deliveries parked by 0001 while their webhook was disabled keep their place in line.
UPDATE webhooky.deliveries SET next_attempt_at = updated_at WHERE state = 'pending' AND next_attempt_at = 'infinity';
COMMENT ON COLUMN webhooky.deliveries.next_attempt_at IS 'When a pending delivery is due. A disabled webhook''s deliveries are not sent, whatever this says.';

-- Health ----------------------------------------------------------------------------------
ALTER TABLE webhooky.webhooks
    ADD COLUMN disabled_reason text,
    ADD COLUMN disabled_at timestamptz;
COMMENT ON COLUMN webhooky.webhooks.disabled_reason IS 'Why Webhooky disabled this webhook (it kept failing, or answered 410 Gone); cleared when it is enabled again.';

CREATE TABLE webhooky.webhook_health (
    webhook_id           bigint      PRIMARY KEY,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    last_success_at      timestamptz,
    last_attempt_at      timestamptz
);
COMMENT ON TABLE webhooky.webhook_health IS 'Per webhook: failed attempts in a row, since when, and the last success. Written by the worker.';

-- Enabling a webhook clears why it was disabled and starts its failure count afresh;
-- deleting one ends its unfinished deliveries (as before) and forgets its health.
CREATE OR REPLACE FUNCTION webhooky.on_webhook_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE webhooky.deliveries d
           SET state = 'dead', last_error = 'webhook deleted', completed_at = now(), updated_at = now(),
               claimed_by = NULL, lease_expires_at = NULL
         WHERE d.webhook_id = OLD.id AND d.state IN ('pending', 'sending');
        DELETE FROM webhooky.webhook_health h WHERE h.webhook_id = OLD.id;
        RETURN OLD;
    END IF;
    IF NEW.enabled AND NOT OLD.enabled THEN
        UPDATE webhooky.webhook_health h SET consecutive_failures = 0, failing_since = NULL WHERE h.webhook_id = NEW.id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER on_webhook_enabled AFTER UPDATE OF enabled ON webhooky.webhooks
    FOR EACH ROW WHEN (NEW.enabled AND NOT OLD.enabled) EXECUTE FUNCTION webhooky.on_webhook_change();

-- Clearing the reason belongs to the row itself, before it is saved.
CREATE FUNCTION webhooky.clear_disabled_reason() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.enabled THEN
        NEW.disabled_reason := NULL;
        NEW.disabled_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER clear_disabled_reason BEFORE INSERT OR UPDATE OF enabled ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.clear_disabled_reason();

-- Nesting depth --------------------------------------------------------------------------
-- The deepest nesting of brackets in a JSON text (strings skipped).
CREATE FUNCTION webhooky.json_depth(document text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    depth integer := 0;
    deepest integer := 0;
    bracket text;
BEGIN
    FOREACH bracket IN ARRAY string_to_array(
        regexp_replace(regexp_replace(document, '"(\\.|[^"\\])*"', '', 'g'), '[^][{}]', '', 'g'), NULL)
    LOOP
        IF bracket IN ('[', '{') THEN
            depth := depth + 1;
            deepest := greatest(deepest, depth);
        ELSE
            depth := depth - 1;
        END IF;
    END LOOP;
    RETURN deepest;
END
$$;
COMMENT ON FUNCTION webhooky.json_depth(text) IS 'The deepest nesting of [ ] and { } in a JSON text.';

CREATE FUNCTION webhooky.check_webhook_body_depth() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.body IS NOT NULL
       AND webhooky.json_depth(regexp_replace(NEW.body, webhooky.placeholder_pattern(), '[]', 'g')) > 512 THEN
        RAISE EXCEPTION '%: body is nested deeper than 512 levels',
                        format('webhook %s', NEW.id) || CASE WHEN NEW.name <> '' THEN format(' "%s"', NEW.name) ELSE '' END
            USING ERRCODE = 'check_violation', HINT = 'Flatten the body; the worker renders at most 512 levels.';
    END IF;
    RETURN NEW;
END
$$;
-- Fires after check_webhook (triggers of the same kind fire in name order).
CREATE TRIGGER check_webhook_body_depth BEFORE INSERT OR UPDATE ON webhooky.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooky.check_webhook_body_depth();

COMMIT;
