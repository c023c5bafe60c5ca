-- Webhooky schema, migration 0047: the workers' role may read webhooky.event_pace.
--
-- webhooky doctor run with a worker's role checked the pace of events as an admin's did, until
-- migration 0042 made the check read webhooky.event_pace, which only webhooky_admin could read:
-- the check then said 'could not check: permission denied for table event_pace'. The workers
-- write it (through webhooky.prune) and read every event anyway.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0047_workers_read_event_pace.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(47, 'workers_read_event_pace'); END $$;

INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_worker', 'GRANT SELECT ON webhooky.event_pace TO %I');
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
