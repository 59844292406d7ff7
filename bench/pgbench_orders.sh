#!/bin/bash
# What PostgreSQL alone does with the one-statement write: pgbench, 16 clients, against the bench database.
set -e
# Usage: bench/pgbench_orders.sh [database], after `make bench-orders` seeded it (bench customers, store B0).
DB=${1:-courier_bench_orders}
PSQL="psql -h 127.0.0.1 -U postgres -d $DB -Atc"
CUSTOMERS=$($PSQL "select min(id)||' '||max(id) from accounts_user where email like 'bench%'")
read CMIN CMAX <<< "$CUSTOMERS"
STORE=$($PSQL "select store_id from inventory_product where sku like 'B0-%' limit 1")
PRODUCTS=$($PSQL "select min(id)||' '||max(id) from inventory_product where store_id='$STORE'")
read PMIN PMAX <<< "$PRODUCTS"
cat > ${TMPDIR:-/tmp}/courier-pgbench-place.sql <<SQL
\set customer random($CMIN, $CMAX)
\set first random($PMIN, $PMAX - 1)
\set second :first + 1
SELECT outcome FROM orders_place(:customer, 'pgbench-' || :client_id || '-' || random(), 'x', '$STORE', ARRAY[:first, :second]::bigint[], ARRAY[1, 2], 'Unter den Linden 1', 52.517, 13.389, 'tok_ok', '{}');
SQL
echo "SELECT 1;" > ${TMPDIR:-/tmp}/courier-pgbench-select1.sql
for run in 1 2 3; do
  pgbench -h 127.0.0.1 -U postgres -n -c 16 -j 2 -T 5 -f ${TMPDIR:-/tmp}/courier-pgbench-select1.sql $DB 2>/dev/null | grep -E "^tps" | sed "s/^/SELECT 1 run $run: /"
  pgbench -h 127.0.0.1 -U postgres -n -c 16 -j 2 -T 5 -f ${TMPDIR:-/tmp}/courier-pgbench-place.sql $DB 2>/dev/null | grep -E "^tps|latency average" | tr '\n' ' ' | sed "s/^/orders_place run $run: /"; echo
done
