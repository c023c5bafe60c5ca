-- Webhooky schema, migration 0007: the due index gains the delivery id.
--
-- A worker now claims each webhook's due deliveries after the last one it claimed, by
-- (next_attempt_at, id), instead of from the start of the index every time. Index entries of
-- deliveries already claimed stay in the index until VACUUM removes them, and while any
-- transaction in the database holds an old snapshot (a long report, an ANALYZE) PostgreSQL
-- cannot even mark them dead: a claim that starts from the beginning then reads every one of
-- them, and a large backlog drains slower and slower. Starting after the last claimed
-- delivery skips them. (The worker still looks from the start once per poll interval, which
-- finds deliveries that became due out of order.)
--
-- Building the index blocks writes to webhooky.deliveries while it runs (a second or so per
-- million rows); events emitted meanwhile wait, nothing is lost.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0007_claim_cursor.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(7, 'claim_cursor'); END $$;

CREATE INDEX deliveries_due_in_order ON webhooky.deliveries (webhook_id, next_attempt_at, id) WHERE state = 'pending';
DROP INDEX webhooky.deliveries_due_by_webhook;

COMMIT;
