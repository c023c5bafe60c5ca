-- Webhooky schema, migration 0035: every function of the schema says what it does.
--
-- The README promises a COMMENT ON for every function and view (\df+ webhooky.* lists them);
-- the trigger functions on webhooky.webhooks had none. Comments only: no behaviour changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0035_trigger_function_comments.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(35, 'trigger_function_comments'); END $$;

COMMENT ON FUNCTION webhooky.check_webhook() IS
    'Trigger (before insert or update of a webhook): refuses an unknown event, a URL without http(s):// and a host or with unencoded characters, headers that are not an object of valid names and string values (or are set by Webhooky or HTTP), a body that is not JSON with #placeholders#, a malformed secret; empties a blank body and secret; on update moves updated_at and revision on.';
COMMENT ON FUNCTION webhooky.check_webhook_url() IS
    'Trigger (before insert or update of a webhook''s URL): refuses a URL whose host is empty (also behind a user@ or before a :port) and a port that is not 1-65535; points out a #fragment, which HTTP never sends.';
COMMENT ON FUNCTION webhooky.check_webhook_body_depth() IS
    'Trigger (before insert or update of a webhook): refuses a body template nested deeper than 512 levels of [ ] and { }.';
COMMENT ON FUNCTION webhooky.check_webhook_limits() IS
    'Trigger (before insert or update of a webhook): the limits of webhooky.settings on URL, body, header count and header length (checked only for what an update changes), and on webhooks per account.';
COMMENT ON FUNCTION webhooky.check_previous_secret() IS
    'Trigger (before insert or update of previous_secret): refuses one that is not "whsec_" and 24 to 64 bytes in base64.';
COMMENT ON FUNCTION webhooky.clear_disabled_reason() IS
    'Trigger (before insert or update of enabled): an enabled webhook has no disabled_reason or disabled_at.';
COMMENT ON FUNCTION webhooky.account_of_tenant() IS
    'Trigger (before insert of a webhook without account_id): a tenant''s new webhook gets the tenant''s account.';
COMMENT ON FUNCTION webhooky.note_wanted_event() IS
    'Trigger (after a webhook is inserted or enabled, or its event changes): sets the event''s bit in webhooky.wanted_events, so that the triggers of that event run.';
COMMENT ON FUNCTION webhooky.on_webhook_change() IS
    'Trigger: a deleted webhook''s unfinished deliveries end dead (''webhook deleted'') and its health row goes; a webhook enabled again starts with no failures and wakes the workers for its waiting deliveries.';

COMMIT;
