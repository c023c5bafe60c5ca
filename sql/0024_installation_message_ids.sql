-- Webhooky schema, migration 0024: webhook-id is unique across installations, not only within one.
--
-- A delivery's webhook-id was msg_ and its id. The Standard Webhooks header is meant to be unique
-- across all messages, and receivers de-duplicate on it; but two installations count from 1 each:
-- staging and production sending to one receiver, two shops' databases, or a schema installed
-- again after DROP SCHEMA, hand out msg_1, msg_2, ... again, and a receiver that remembers ids
-- for a while drops real messages as repeats. Each installation now draws a random prefix once,
-- here: a delivery created from now on has the webhook-id msg_<10 hex digits>_<its id>
-- (msg_3f9a2c71d0_12345). Deliveries created before keep msg_<id>, on every retry: webhook-id
-- stays stable across retries. A worker of an older version that still runs until it is
-- restarted sends the deliveries it creates meanwhile with msg_<id>; if one of them is retried
-- by a worker of this version, its webhook-id changes once (restart the workers soon after the
-- migration, or stop them for it). webhooky.message_id(delivery_id) gives a delivery's id, as
-- the worker writes it; a copy of the database (pg_dump, a replica) keeps the prefix, as it
-- keeps the delivery ids.
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0024_installation_message_ids.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(24, 'installation_message_ids'); END $$;

CREATE TABLE webhooky.installation (
    only_row          boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    message_id_prefix text    NOT NULL CHECK (message_id_prefix ~ '^msg_[0-9a-f]{10}_$'),
    prefixed_from     bigint  NOT NULL
);
REVOKE ALL ON webhooky.installation FROM PUBLIC;
COMMENT ON TABLE webhooky.installation IS
    'This installation''s webhook-id prefix, drawn once, and the first delivery id that carries it (older deliveries keep msg_<id>). One row; see webhooky.message_id().';

INSERT INTO webhooky.installation (message_id_prefix, prefixed_from)
SELECT 'msg_' || substr(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 1, 10) || '_',
       -- The next id the deliveries' sequence hands out (1 on a new installation).
       CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
  FROM webhooky.deliveries_id_seq s;

CREATE FUNCTION webhooky.message_id(delivery_id bigint) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN message_id.delivery_id >= i.prefixed_from THEN i.message_id_prefix ELSE 'msg_' END || message_id.delivery_id
      FROM webhooky.installation i
$$;
COMMENT ON FUNCTION webhooky.message_id(bigint) IS
    'The webhook-id header of a delivery''s requests (the same on every retry): msg_<installation prefix>_<id>, or msg_<id> for deliveries created before schema version 24.';

INSERT INTO webhooky.role_grants (role_name, statement) VALUES
    ('webhooky_worker', 'GRANT SELECT ON webhooky.installation TO %I');
DO $$ BEGIN PERFORM webhooky.grant_roles(); END $$;

COMMIT;
