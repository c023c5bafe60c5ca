-- pgbench script of the flood, steady and cost scenarios (run with -D customers=N):
-- one customer's credit changes, one single-statement transaction.
\set id random(1, :customers)
UPDATE ellity.customers SET credit = credit + 1 WHERE id = :id;
