-- Reference domain: an Ellity-style loyalty schema (e-shops, customer groups, VIP tiers,
-- customers with a credit balance) and the two triggers that fire Webhooky's seed events.
--
-- Install after the Webhooky schema:
--   psql -X -v ON_ERROR_STOP=1 -f sql/examples/ellity.sql
--
-- The triggers show how any table gets webhooks: build a JSON payload from the row and call
-- webhooky.emit(event, payload, account_id) in the same transaction as the change.

BEGIN;

CREATE SCHEMA ellity;
COMMENT ON SCHEMA ellity IS 'Webhooky''s reference domain: an Ellity-style loyalty programme.';

CREATE TABLE ellity.eshops (
    id   text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE ellity.customer_groups (
    id       bigint PRIMARY KEY,
    eshop_id text   NOT NULL REFERENCES ellity.eshops,
    name     text   NOT NULL
);

CREATE TABLE ellity.vip_tiers (
    id         bigint        PRIMARY KEY,
    eshop_id   text          NOT NULL REFERENCES ellity.eshops,
    name       text          NOT NULL,
    min_credit numeric(14,2) NOT NULL DEFAULT 0
);

CREATE TABLE ellity.customers (
    id       bigint        PRIMARY KEY,
    eshop_id text          NOT NULL REFERENCES ellity.eshops,
    email    text          NOT NULL,
    credit   numeric(16,2) NOT NULL DEFAULT 0,
    group_id bigint        REFERENCES ellity.customer_groups,
    tier_id  bigint        REFERENCES ellity.vip_tiers
);
CREATE INDEX customers_eshop ON ellity.customers (eshop_id);

-- The payload of both events: every seed variable, as it is at this moment.
--   customer.id, customer.email, customer.credit, customer.group.{id,name},
--   customer.tier.{id,name}, creditChange.value (new - old credit), account.eshopId
-- (PL/pgSQL rather than LANGUAGE sql: its query plans are cached for the session, which
-- matters in a trigger that runs on every update.) Each function has a fixed search_path: it
-- finds only built-ins and the schemas it names, never a function that another role put in a
-- schema of the caller's search_path (public.jsonb_build_object(text, bigint) would otherwise
-- be taken for the built-in, and run with the rights of whoever updates a customer).
CREATE FUNCTION ellity.customer_event_payload(new_row ellity.customers, old_row ellity.customers) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jsonb_build_object(
        'customer', jsonb_build_object(
            'id',     new_row.id,
            'email',  new_row.email,
            'credit', new_row.credit,
            'group',  (SELECT jsonb_build_object('id', g.id, 'name', g.name) FROM ellity.customer_groups g WHERE g.id = new_row.group_id),
            'tier',   (SELECT jsonb_build_object('id', t.id, 'name', t.name) FROM ellity.vip_tiers t WHERE t.id = new_row.tier_id)),
        'creditChange', jsonb_build_object('value', new_row.credit - old_row.credit, 'previous', old_row.credit),
        'account', jsonb_build_object('eshopId', new_row.eshop_id));
END
$$;

-- customer.credit_changed: fired by every update that changes a customer's credit.
CREATE FUNCTION ellity.customer_credit_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM webhooky.emit('customer.credit_changed', ellity.customer_event_payload(NEW, OLD), NEW.eshop_id);
    RETURN NULL;
END
$$;
-- The second condition is SELECT webhooky.wanted_condition('customer.credit_changed'): while
-- no enabled webhook wants the event, the trigger does not even run (sql/0008_wanted_events.sql).
CREATE TRIGGER customer_credit_changed
    AFTER UPDATE OF credit ON ellity.customers
    FOR EACH ROW WHEN (OLD.credit IS DISTINCT FROM NEW.credit
        AND coalesce(pg_sequence_last_value('webhooky.wanted_events'), '-1'::bigint) & '34359738368'::bigint <> 0)
    EXECUTE FUNCTION ellity.customer_credit_changed();

-- customer.tier_changed: fired when a customer moves to another VIP tier.
CREATE FUNCTION ellity.customer_tier_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM webhooky.emit(
        'customer.tier_changed',
        ellity.customer_event_payload(NEW, OLD)
            || jsonb_build_object('previousTier',
                   (SELECT jsonb_build_object('id', t.id, 'name', t.name) FROM ellity.vip_tiers t WHERE t.id = OLD.tier_id)),
        NEW.eshop_id);
    RETURN NULL;
END
$$;
-- The second condition is SELECT webhooky.wanted_condition('customer.tier_changed').
CREATE TRIGGER customer_tier_changed
    AFTER UPDATE OF tier_id ON ellity.customers
    FOR EACH ROW WHEN (OLD.tier_id IS DISTINCT FROM NEW.tier_id
        AND coalesce(pg_sequence_last_value('webhooky.wanted_events'), '-1'::bigint) & '4294967296'::bigint <> 0)
    EXECUTE FUNCTION ellity.customer_tier_changed();

COMMIT;
