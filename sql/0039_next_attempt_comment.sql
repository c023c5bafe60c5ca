-- Webhooky schema, migration 0039: webhooky.deliveries.next_attempt_at says what it holds.
--
-- Its comment still said 'infinity while its webhook is disabled', which stopped being true in
-- 0002: a disabled webhook's pending deliveries keep their time and are simply not claimed.
-- Comment only: no behaviour changes.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0039_next_attempt_comment.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(39, 'next_attempt_comment'); END $$;

COMMENT ON COLUMN webhooky.deliveries.next_attempt_at IS
    'When a pending delivery is due (its next retry, or now for a new or redelivered one). A disabled webhook''s pending deliveries keep theirs and are not claimed until it is enabled again.';

COMMIT;
