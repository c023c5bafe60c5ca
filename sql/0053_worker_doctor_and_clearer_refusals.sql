-- Webhooky schema, migration 0053: the workers' role may read webhooky.settings, and a webhook
-- that is refused when it is saved is told what to do.
--
-- 1. webhooky doctor run with a worker's login warned 'could not check: permission denied for
--    table settings' and so exited 1 whatever else it found: a health check with the worker's
--    credentials always failed. The settings are limits (no secrets), and a value that is not a
--    whole number stops every save of a webhook, which the worker's doctor should report too.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0053_worker_doctor_and_clearer_refusals.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(53, 'worker_doctor_and_clearer_refusals'); END $$;

INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_worker', 'GRANT SELECT ON webhooky.settings TO %I');
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
