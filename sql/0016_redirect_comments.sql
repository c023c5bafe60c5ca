-- Webhooky schema, migration 0016: the column comments say what a redirect carries.
--
-- Since the worker follows redirects itself (hop by hop), a webhook's own headers stay with the
-- origin of its URL: from a hop to another origin (scheme, host or port) on, no hop gets them but
-- Content-Type, nor any Authorization or Cookie, while the Standard Webhooks headers (webhook-id,
-- webhook-timestamp, webhook-signature) go along. A 307 or 308 keeps the POST and its body; a
-- 301, 302 or 303 turns it into a GET without body (libcurl's defaults). An https URL never
-- continues over http. The comments `\d+ webhooky.webhooks` shows said none of this. Comments
-- only: nothing else changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0016_redirect_comments.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(16, 'redirect_comments'); END $$;

COMMENT ON COLUMN webhooky.webhooks.follow_redirects IS
    'Follow up to 5 redirects, each hop checked like the first, never from https to http; from a hop to another origin '
    'on, no hop gets the custom headers but Content-Type (they stay with the URL''s origin); the signature headers go '
    'along. 307 and 308 keep the POST and its body; 301, 302 and 303 turn it into a GET without body. '
    'Default false: a 3xx answer is a failure.';
COMMENT ON COLUMN webhooky.webhooks.headers IS
    'Custom headers: a JSON object of "Name": "value template"; all but Content-Type are sent only to the URL''s origin (see follow_redirects).';

-- And one comment that still described how migration 0001 parked a disabled webhook's deliveries
-- (0002 stopped doing that: they are simply not claimed while it is disabled).
COMMENT ON COLUMN webhooky.deliveries.next_attempt_at IS
    'When a pending delivery is due; while its webhook is disabled it is not sent, and goes out once the webhook is enabled again.';

COMMIT;
