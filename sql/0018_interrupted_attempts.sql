-- Webhooky schema, migration 0018: an attempt cut short by a worker's shutdown is not one of the
-- retry schedule's.
--
-- When a worker stops and its shutdown grace period ends with requests still in flight, it cuts
-- them short and records each as an attempt (it may have reached the endpoint), due again at once.
-- Until now such an attempt used one of the retry schedule's attempts, so that a delivery to a
-- slow endpoint could die sooner for each deploy that interrupted it. The worker now also moves
-- the delivery's retry_base on by one (as a redelivery moves it to all attempts made so far): the
-- attempt stays in webhooky.attempts and in deliveries.attempts, and the schedule counts only the
-- attempts after it. Only the column's comment changes here; the worker writes the new value.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0018_interrupted_attempts.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(18, 'interrupted_attempts'); END $$;

COMMENT ON COLUMN webhooky.deliveries.retry_base IS
    'Attempts that the current retry schedule does not count: those made before a redelivery started it, and those cut short by a worker''s shutdown.';

COMMIT;
