-- Webhooky schema, migration 0022: the follow_redirects comment says that 301 and 302 keep the POST.
--
-- The worker used to turn a webhook's POST into a GET without body on a 301 or 302 (libcurl's
-- defaults), so a webhook whose endpoint moved, from http to https most often, reached its new
-- URL as a GET without its message, which the receiver may answer 200 to: the message was lost
-- while the delivery counted as succeeded. It now keeps the POST and its body on 301 and 302 too
-- (RFC 9110 only allows the change to GET); only a 303 ("see other": the request was handled)
-- is followed with a GET without body. Comment only: the behaviour is the worker's.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0022_redirects_keep_the_post.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(22, 'redirects_keep_the_post'); END $$;

COMMENT ON COLUMN webhooky.webhooks.follow_redirects IS
    'Follow up to 5 redirects, each hop checked like the first, never from https to http; from a hop to another origin '
    'on, no hop gets the custom headers but Content-Type (they stay with the URL''s origin); the signature headers go '
    'along. 301, 302, 307 and 308 keep the POST and its body; 303 turns it into a GET without body. '
    'Default false: a 3xx answer is a failure.';

COMMIT;
