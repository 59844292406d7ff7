"""The operations dashboard (the admin's home) on a million orders: query plans and page time.

    BENCH_DATABASE_URL=... BENCH_REDIS_URL=... .venv/bin/python bench/dashboard.py [--orders 1000000] [--reseed]

Seeds with SQL `generate_series` (the ORM would take an hour for this): 30 days of orders, ~1,400 in the last hour,
a payment for each, the saga's timeline steps (reserve, commit, assign) for each order that got that far, 200
drivers. Then prints EXPLAIN (ANALYZE, BUFFERS) of every dashboard query and the median time of the whole page
(GET /admin/ through Django's test client, in this process) next to a same-run baseline (GET /healthz).
The database is kept between runs (seeding takes minutes): `--reseed` starts over.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # this script's folder would shadow the project's `common` and `tracking` packages

from bench.common import configure  # noqa: E402

SEED = """
INSERT INTO accounts_user (password, last_login, is_superuser, email, name, is_staff, is_active, date_joined)
SELECT '!', NULL, false, 'bench-' || i || '@example.com', 'Bench User ' || i, i = 1, true, now()
  FROM generate_series(1, 1200) i;

INSERT INTO inventory_store (id, name, address, lat, lng, is_active, created_at)
VALUES ('00000000-0000-4000-8000-000000000001', 'Bench Store', 'Alexanderplatz 1', 52.5219, 13.4132, true, now());

INSERT INTO delivery_driver (user_id, status, created_at, status_changed_at)
SELECT u.id, (ARRAY['offline', 'available', 'busy'])[1 + u.id %% 3], now(), now()
  FROM accounts_user u WHERE u.email LIKE 'bench-%%' ORDER BY u.id LIMIT 200;

-- Order i was placed i * spacing ago: the newest first, 30 days in all. The 300 newest are still moving;
-- of the rest 5 %% were cancelled (payment declined, gateway down, no driver), the others delivered.
CREATE TEMP TABLE seed AS
SELECT i, md5('order-' || i)::uuid AS id,
       now() - make_interval(secs => i * (30 * 86400.0 / %(orders)s)) AS created_at,
       CASE WHEN i <= 60 THEN 'reserved' WHEN i <= 120 THEN 'paid' WHEN i <= 220 THEN 'assigned'
            WHEN i <= 300 THEN 'picked_up' WHEN i %% 20 = 0 THEN 'cancelled' ELSE 'delivered' END AS status,
       CASE WHEN i <= 300 OR i %% 20 <> 0 THEN NULL
            ELSE (ARRAY['payment_declined', 'payment_failed', 'no_driver', 'customer'])[1 + (i / 20) %% 4] END AS reason
  FROM generate_series(1, %(orders)s) i;

INSERT INTO orders_order (id, customer_id, store_id, status, cancel_reason, total, currency, delivery_address,
                          delivery_lat, delivery_lng, payment_token, awaiting_driver,
                          created_at, updated_at)
SELECT s.id, (SELECT min(id) FROM accounts_user) + s.i %% 1000, '00000000-0000-4000-8000-000000000001', s.status,
       s.reason, 2250, 'EUR', 'Torstrasse ' || s.i %% 200, 52.53, 13.40, 'tok_ok',
       s.status IN ('paid', 'assigned'), s.created_at,
       s.created_at + interval '20 minutes' * (s.status IN ('delivered', 'cancelled'))::int
  FROM seed s;

INSERT INTO orders_payment (order_id, status, amount, currency, refunded_amount, charge_reference, attempts, updated_at)
SELECT s.id,
       CASE WHEN s.status = 'reserved' THEN 'pending'
            WHEN s.reason = 'payment_declined' THEN 'declined' WHEN s.reason = 'payment_failed' THEN 'failed'
            WHEN s.reason IS NOT NULL THEN 'refunded' ELSE 'succeeded' END,
       2250, 'EUR', CASE WHEN s.reason IN ('no_driver', 'customer') THEN 2250 ELSE 0 END, '', 1, s.created_at
  FROM seed s;

INSERT INTO orders_timelineentry (order_id, step, status, attempt, detail, duration_ms, at)
SELECT s.id, step.name, 'succeeded', 1, '', 1.0, s.created_at + step.after
  FROM seed s
  CROSS JOIN LATERAL (VALUES ('reserve_stock', interval '0'),
                             ('commit_stock', interval '1 second'),
                             ('assign_driver', make_interval(secs => 2 + s.i %% 40))) step(name, after)
 WHERE step.name = 'reserve_stock'
    OR (step.name = 'commit_stock' AND s.status NOT IN ('reserved') AND coalesce(s.reason, '') NOT LIKE 'payment%%')
    OR (step.name = 'assign_driver' AND s.status IN ('assigned', 'picked_up', 'delivered'));
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    configure()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from accounts.models import User
    from orders.models import Order
    from tracking.selectors import operations_dashboard

    call_command("migrate", verbosity=0)
    if args.reseed or not Order.objects.exists():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE orders_timelineentry, orders_payment, orders_orderline, delivery_assignment, "
                "delivery_dispatchrequest, orders_order, delivery_driver, inventory_store, accounts_user CASCADE"
            )
            started = time.monotonic()
            cursor.execute(SEED % {"orders": args.orders})  # no parameters: several statements in one go
            print(f"seeded {args.orders} orders in {time.monotonic() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE orders_order")
        cursor.execute("VACUUM ANALYZE orders_payment")
        cursor.execute("VACUUM ANALYZE orders_timelineentry")
        cursor.execute("SELECT count(*) FROM orders_order")
        print(f"orders: {cursor.fetchone()[0]}")
        cursor.execute("SELECT count(*) FROM orders_timelineentry")
        print(f"timeline entries: {cursor.fetchone()[0]}")

    # Every query the dashboard runs, with its plan.
    with CaptureQueriesContext(connection) as queries:
        operations_dashboard(now=timezone.now())
    captured = list(queries.captured_queries)
    for query in captured:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        print(f"\n--- {query['sql'][:160]}...\n{plan}")

    staff = User.objects.filter(is_staff=True).first()
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    client = Client()
    client.force_login(staff)

    def median_ms(path: str) -> float:
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        return statistics.median(timings)

    client.get("/admin/")  # warm: templates, connection
    baseline = median_ms("/healthz")
    dashboard = median_ms("/admin/")
    selectors_only = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        operations_dashboard(now=timezone.now())
        selectors_only.append((time.perf_counter() - started) * 1000)
    selectors_ms = statistics.median(selectors_only)
    print(f"\nmedian of {args.repeat}: GET /healthz {baseline:.1f} ms | GET /admin/ (dashboard) {dashboard:.1f} ms")
    print(f"operations_dashboard() {selectors_ms:.1f} ms in {len(captured)} queries")


if __name__ == "__main__":
    main()
