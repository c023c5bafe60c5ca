-- Benchmark data, identical in the Webhooky and the baseline database:
-- one e-shop, 5 customer groups, 3 VIP tiers and :customers customers (psql -v customers=N).
BEGIN;
INSERT INTO ellity.eshops (id, name) VALUES ('eshop-1', 'Bench shop');
INSERT INTO ellity.customer_groups (id, eshop_id, name)
SELECT g, 'eshop-1', 'Group ' || g FROM generate_series(1, 5) g;
INSERT INTO ellity.vip_tiers (id, eshop_id, name, min_credit) VALUES
    (1, 'eshop-1', 'Silver', 0), (2, 'eshop-1', 'Gold', 1000), (3, 'eshop-1', 'Platinum', 10000);
INSERT INTO ellity.customers (id, eshop_id, email, credit, group_id, tier_id)
SELECT i, 'eshop-1', 'customer' || i || '@example.cz', (i % 1000) * 10 + 0.50, 1 + i % 5, 1 + i % 3
  FROM generate_series(1, :customers) i;
COMMIT;
