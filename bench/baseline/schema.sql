-- The baseline: a hand-written transactional outbox, in its own database.
--
-- The same four domain tables as sql/examples/ellity.sql (identical columns and indexes, no
-- Webhooky), an outbox table, and an AFTER UPDATE OF credit trigger that inserts one outbox row
-- per change (payload built from the same data as Webhooky's customer.credit_changed payload)
-- and calls pg_notify to wake the worker (bench/baseline/worker.py).

BEGIN;

CREATE SCHEMA ellity;

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

CREATE SCHEMA baseline;

-- One row per change. Rows are kept (state = 'done') rather than deleted, like Webhooky's
-- deliveries; the partial indexes keep the worker's queries cheap however many rows are done.
CREATE TABLE baseline.outbox (
    id              bigserial   PRIMARY KEY,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sending', 'done', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    processed_at    timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON baseline.outbox (id) WHERE state = 'pending';
CREATE INDEX outbox_sending ON baseline.outbox (locked_until) WHERE state = 'sending';

CREATE FUNCTION baseline.customer_credit_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO baseline.outbox (payload) VALUES (jsonb_build_object(
        'customer', jsonb_build_object(
            'id',     NEW.id,
            'email',  NEW.email,
            'credit', NEW.credit,
            'group',  (SELECT jsonb_build_object('id', g.id, 'name', g.name) FROM ellity.customer_groups g WHERE g.id = NEW.group_id),
            'tier',   (SELECT jsonb_build_object('id', t.id, 'name', t.name) FROM ellity.vip_tiers t WHERE t.id = NEW.tier_id)),
        'creditChange', jsonb_build_object('value', NEW.credit - OLD.credit, 'previous', OLD.credit),
        'account', jsonb_build_object('eshopId', NEW.eshop_id)));
    -- A wake-up only (the row is the work): identical payloads fold into one per transaction.
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_credit_changed
    AFTER UPDATE OF credit ON ellity.customers
    FOR EACH ROW WHEN (OLD.credit IS DISTINCT FROM NEW.credit)
    EXECUTE FUNCTION baseline.customer_credit_changed();

COMMIT;
