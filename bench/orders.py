"""`make bench-orders`: orders per second on the real platform, the saga keeping pace, and no oversell.

Runs against the bench database and Redis (see bench/common.py), in this order, in one run:
1. web servers: for each server (uvicorn + a2wsgi = the Procfile, gunicorn gthread, granian WSGI and ASGI) with
   `web` alone: GET /healthz, GET /api/v1/me and POST /api/v1/orders with --connections (32), --reps runs each,
   medians, and ratios to the same server's /healthz; orders with 16 connections too (the p95 target).
2. profile: py-spy on the Procfile's web workers during one orders run, and the in-process CPU of one order.
3. hot item: one product, --hot-buyers buyers at once, fewer units: exactly the units are sold; then
   `manage.py check_invariants`.
4. sustained, on a fresh database: the Procfile's `web`, `worker`, `dispatch` and `relay`; wrk offers --rate
   orders/s for --sustained-seconds (paced connections, random pauses); then orders created and paid per second in
   that window, created -> paid p50/p95 and commit -> relay -> saga start, from the orders' own timestamps (one
   database clock); `check_invariants` again.

The machine's 2 cores are shared by server, worker, PostgreSQL, Redis and the load generator (wrk, one C thread).
"""

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

ORDER_SCRIPT = """
local tokens = {%(tokens)s}
local pace_ms = %(pace_ms)s
local bodies = {%(bodies)s}
local nonce = "%(nonce)s"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  created, conflicts, other, last_other = 0, 0, 0, 0
end

request = function()
  counter = counter + 1
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[counter %% #tokens + 1],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = nonce .. "-" .. counter,
  }
  return wrk.format("POST", "/api/v1/orders", headers, bodies[counter %% #bodies + 1])
end

%(delay)s
response = function(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 409 then conflicts = conflicts + 1
  else other = other + 1; last_other = status end
end

done = function(summary, latency, requests)
  local c, k, o, last = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); k = k + t:get("conflicts"); o = o + t:get("other"); last = t:get("last_other")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"rps": %%f, "p50": %%f, "p95": %%f, "p99": %%f, "requests": %%d, "created": %%d, "conflicts": %%d, ' ..
    '"other": %%d, "last_other_status": %%d, "socket_errors": %%d, "errors": %%d}\\n',
    c / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.requests, c, k, o, last,
    e.connect + e.read + e.write + e.timeout, k + o + e.connect + e.read + e.write + e.timeout))
end
"""

# Paced runs: each connection waits a random 0..2x pace_ms between requests (mean rate = connections / pace).
PACING = """
function delay()
  return math.random(0, 2 * pace_ms)
end
"""

# A GET with percentiles and non-2xx counted (wrk's own summary has no p95).
GET_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
response = function(status, headers, body) if status >= 300 then bad = bad + 1 end end
done = function(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"rps": %f, "p50": %f, "p95": %f, "p99": %f, "requests": %d, "other": %d, "socket_errors": %d, ' ..
    '"errors": %d}\\n', summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.requests, b,
    e.connect + e.read + e.write + e.timeout, b + e.connect + e.read + e.write + e.timeout))
end
"""

WEB_SERVERS = {
    "uvicorn + a2wsgi (Procfile)": None,
    # One request per thread, 8 threads per process as WEB_THREADS; no WebSockets (a second server would serve them).
    "gunicorn gthread": "gunicorn config.wsgi:application --bind 127.0.0.1:${PORT} --workers 2 --threads 8 "
    "--worker-class gthread",
    # Rust HTTP, Django called through WSGI on blocking threads; no WebSockets on this interface.
    "granian WSGI": "granian --interface wsgi config.wsgi:application --host 127.0.0.1 --port ${PORT} --workers 2 "
    "--blocking-threads 8 --no-ws --log-level warning",
    # Rust HTTP + the same ASGI router as the Procfile (a2wsgi for HTTP, Channels for WebSockets): one port.
    # bench/asgi_granian.py adapts granian's `receive` for a2wsgi (see there).
    "granian ASGI (config.asgi)": "granian --interface asgi bench.asgi_granian:application --host 127.0.0.1 "
    "--port ${PORT} --workers 2 --log-level warning",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8, help="length of one orders run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measurement (medians reported)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP connections")
    parser.add_argument("--ceiling-seconds", type=float, default=5, help="length of one /healthz or /me run")
    parser.add_argument("--rate", type=float, default=200, help="orders/s offered in the sustained run")
    parser.add_argument("--sustained-seconds", type=float, default=60)
    parser.add_argument("--drain-seconds", type=float, default=60, help="how long the saga may take afterwards")
    parser.add_argument("--dispatch-timeout", type=int, default=30, help="DISPATCH_TIMEOUT_SECONDS, sustained run")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--stores", type=int, default=5)
    parser.add_argument("--products", type=int, default=20, help="products per store")
    parser.add_argument("--hot-buyers", type=int, default=200)
    parser.add_argument("--hot-units", type=int, default=50)
    parser.add_argument("--servers", default=",".join(WEB_SERVERS), help="comma-separated labels of WEB_SERVERS")
    parser.add_argument("--skip-sustained", action="store_true")
    parser.add_argument("--sustained-only", action="store_true", help="only the sustained run (saga and dispatch)")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument(
        "--pg-set", action="append", default=[], metavar="NAME=VALUE",
        help="a PostgreSQL setting for the bench database, e.g. synchronous_commit=off (experiments only)",
    )  # fmt: skip
    args = parser.parse_args()

    env = common.configure()
    common.heading(f"Courier orders benchmark: {common.machine()}")
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {' '.join(sys.argv[1:]) or 'defaults'}")
    print(f"database {env['DATABASE_URL']}, redis {env['REDIS_URL']}, logs {common.LOG_DIR}", flush=True)
    print(f"before: {common.load()}", flush=True)
    pg_settings = dict(item.split("=", 1) for item in args.pg_set)
    if pg_settings:
        print(f"experiment: bench database settings {pg_settings}", flush=True)
    common.prepare_database(pg_settings)
    seeded = seed(customers=args.customers, stores=args.stores, products=args.products)
    failures = []

    # The HTTP ceilings run with `web` alone: the orders they place wait in the outbox (nothing relays them),
    # reserved with their stock held, which check_invariants accepts. The sustained run comes last, on a fresh database.
    rows = []
    for label in [] if args.sustained_only else args.servers.split(","):
        rows += server_rows(env, label, WEB_SERVERS[label], seeded, args)
        if any(row["other"] or row["socket_errors"] for row in rows[-4:]):
            failures.append(f"{label}: unexpected answers or socket errors")
    if rows:
        common.heading(f"web servers: {args.connections} connections (orders also 16), medians of {args.reps}")
        print(common.table(rows, SERVER_COLUMNS), flush=True)

    if not (args.skip_profile or args.sustained_only):
        with common.stack(env, "web") as processes:
            base = f"http://127.0.0.1:{processes['web'].port}"
            common.wrk(f"{base}/healthz", seconds=2, connections=16)
            profile(processes["web"], base, seeded, args)
        cpu_profile(seeded)

    if not args.sustained_only:
        with common.stack(env, "web") as processes:
            base = f"http://127.0.0.1:{processes['web'].port}"
            common.heading(f"hot item: {args.hot_buyers} buyers at once, {args.hot_units} units")
            failures += hot_item(base, buyers=args.hot_buyers, units=args.hot_units)
        common.heading("invariants after the load")
        failures += check_invariants("after the load")

    if not args.skip_sustained:
        # A fresh database: the orders above wait unrelayed in the outbox, and would be the saga's backlog here.
        from django.db import connections

        connections.close_all()  # the database is dropped WITH (FORCE): not under our own feet
        common.prepare_database(pg_settings)
        failures += sustained(env, seed(customers=args.customers, stores=args.stores, products=args.products), args)

    common.heading("result")
    print(f"after: {common.load()}")
    for failure in failures:
        print(f"FAIL {failure}")
    print("ok" if not failures else f"{len(failures)} failure(s)", flush=True)
    return 1 if failures else 0


SERVER_COLUMNS = ["server", "endpoint", "rps", "p50", "p95", "p99", "errors", "web_cpu_ms", "db_cpu_ms", "x healthz"]


def server_rows(env: dict, label: str, command: str | None, seeded: dict, args) -> list[dict]:
    """One server, `web` alone: /healthz, /me and orders with --connections, orders with 16; medians of --reps."""
    common.heading(f"{label}: {command or 'Procfile web'}")
    me_headers = {"Authorization": f"Bearer {seeded['tokens'][0]}"}
    with common.stack(env, ("web", command) if command else "web") as processes:
        base, pid = f"http://127.0.0.1:{processes['web'].port}", processes["web"].popen.pid
        common.wrk(f"{base}/api/v1/me", seconds=2, connections=16, headers=me_headers)  # warm-up: imports, pools
        orders_run(base, seeded, pid, seconds=2, connections=16)
        rows = [
            {"endpoint": "GET /healthz", **repeated(args, lambda: get_run(f"{base}/healthz", pid, args))},
            {"endpoint": "GET /api/v1/me",
             **repeated(args, lambda: get_run(f"{base}/api/v1/me", pid, args, me_headers))},
            {"endpoint": "POST /api/v1/orders",
             **repeated(args, lambda: orders_run(base, seeded, pid, args.seconds, args.connections))},
            {"endpoint": "POST /api/v1/orders, 16 conn.",
             **repeated(args, lambda: orders_run(base, seeded, pid, args.seconds, 16))},
        ]  # fmt: skip
    for row in rows:
        row["server"] = label
        row["x healthz"] = f"{row['rps'] / rows[0]['rps']:.2f}"
    return rows


def repeated(args, run) -> dict:
    runs = [run() for _ in range(args.reps)]
    print("  " + " / ".join(f"{r['rps']:.0f}" for r in runs) + " req/s", flush=True)
    return common.median_run(runs)


def get_run(url: str, pid: int, args, headers: dict | None = None) -> dict:
    with common.cpu_meter(pid) as spent:
        result = common.wrk(url, seconds=args.ceiling_seconds, connections=args.connections, headers=headers,
                            script=GET_SCRIPT)  # fmt: skip
    return {**result, **per_request(spent, result["requests"])}


def sustained(env: dict, seeded: dict, args) -> list[str]:
    """--rate orders/s for --sustained-seconds against web + worker + dispatch + relay; the saga's pace from the
    orders' own timestamps. There are no drivers: every paid order waits for one beside the saga (the backlog of
    issue 13.9), on its own worker line, until the shortened dispatch timeout cancels it `no_driver`."""
    from django.db import connection

    connections = max(4, min(64, round(args.rate / 10)))  # ~10 orders/s per paced connection
    pace_ms = 1000 * connections / args.rate
    common.heading(f"sustained: {args.rate:.0f} orders/s offered for {args.sustained_seconds:.0f} s "
                   f"({connections} connections, mean pause {pace_ms:.0f} ms), then up to {args.drain_seconds:.0f} s "
                   f"for the saga; web + worker + dispatch + relay + beat")  # fmt: skip
    failures = []
    # No driver is online: every paid order waits, and is cancelled `no_driver` after the (shortened) dispatch
    # timeout, which must hold behind the backlog of waiting orders (issue 13.9).
    # Beat runs as in production: its dispatch sweep gives up on overdue orders (every 5 s).
    env = {**env, "DISPATCH_TIMEOUT_SECONDS": str(args.dispatch_timeout)}
    with common.stack(env, "web", "worker", "dispatch", "relay", "beat") as processes:
        base = f"http://127.0.0.1:{processes['web'].port}"
        orders_run(base, seeded, processes["web"].popen.pid, seconds=3, connections=4, pace_ms=40)  # warm-up
        time.sleep(3)
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            window_start = cursor.fetchone()[0]
        result = orders_run(base, seeded, processes["web"].popen.pid, seconds=args.sustained_seconds,
                            connections=connections, pace_ms=pace_ms)  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            window_end = cursor.fetchone()[0]
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline and _still_reserved(window_start, window_end):
            time.sleep(1)
        stats = saga_stats(window_start, window_end)
        deadline = time.monotonic() + args.dispatch_timeout + args.drain_seconds
        while time.monotonic() < deadline and _still_awaiting_driver(window_start, window_end):
            time.sleep(1)
        no_driver = no_driver_stats(window_start, window_end)
    seconds = (window_end - window_start).total_seconds()
    print(
        f"HTTP: {result['rps']:.1f} orders/s created (201), p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, {result['other']} unexpected, {result['socket_errors']} socket errors"
    )
    print(
        f"window {seconds:.1f} s: {stats['created']} orders created = {stats['created'] / seconds:.1f}/s; "
        f"paid inside the window {stats['paid_in_window'] / seconds:.1f}/s; "
        f"{stats['paid']} of them paid in the end, {stats['still_reserved']} still reserved"
    )
    paid = f"p50 {stats['paid_p50']:.0f} ms, p95 {stats['paid_p95']:.0f} ms, max {stats['paid_max']:.0f} ms"
    print(f"created -> paid: {paid}")
    print(
        f"commit -> published by the relay: p50 {stats['relay_p50']:.0f} ms, p95 {stats['relay_p95']:.0f} ms; "
        f"commit -> charge starts: p50 {stats['start_p50']:.0f} ms, p95 {stats['start_p95']:.0f} ms",
        flush=True,
    )
    print(
        f"paid -> cancelled no_driver (timeout {args.dispatch_timeout} s, no driver online): {no_driver['cancelled']} "
        f"orders, p50 {no_driver['p50']:.1f} s, p95 {no_driver['p95']:.1f} s, max {no_driver['max']:.1f} s; "
        f"{no_driver['waiting']} still waiting; {no_driver['attempts']:.1f} fruitless attempts per order",
        flush=True,
    )
    if no_driver["waiting"] or no_driver["max"] > args.dispatch_timeout + 15:  # a sweep interval, and its work
        failures.append(f"sustained: the dispatch timeout did not hold (max {no_driver['max']:.1f} s)")
    if result["other"] or result["socket_errors"]:
        failures.append("sustained: unexpected answers or socket errors")
    if stats["still_reserved"]:
        failures.append(f"sustained: {stats['still_reserved']} orders not paid {args.drain_seconds:.0f} s later")
    failures += check_invariants("after the sustained run", retry_for=30)
    return failures


def _still_awaiting_driver(start, end) -> bool:
    from orders.models import Order

    return Order.objects.filter(created_at__range=(start, end), awaiting_driver=True).exists()


NO_DRIVER_SQL = """
WITH placed AS (SELECT id FROM orders_order WHERE created_at BETWEEN %(start)s AND %(end)s),
waited AS (
    SELECT extract(epoch FROM c.at - p.at) AS seconds FROM placed o
    JOIN orders_timelineentry p ON p.order_id = o.id AND p.step = 'commit_stock'
    JOIN orders_order x ON x.id = o.id AND x.cancel_reason = 'no_driver'
    JOIN LATERAL (SELECT min(at) AS at FROM orders_timelineentry
                  WHERE order_id = o.id AND step IN ('release_stock', 'restock')) c ON true
)
SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds), max(seconds),
       (SELECT count(*) FROM orders_order x JOIN placed USING (id) WHERE x.awaiting_driver)
FROM waited
"""


def no_driver_stats(start, end) -> dict:
    """From payment (commit_stock) to the no_driver cancellation's first compensation step."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(NO_DRIVER_SQL, {"start": start, "end": end})
        count, p50, p95, slowest, waiting = cursor.fetchone()
        # Attempts that found no driver (the one that gives up is not counted): the work waiting costs dispatch.
        cursor.execute(
            "SELECT avg(r.attempts) FROM delivery_dispatchrequest r JOIN orders_order o ON o.id = r.order_id"
            " WHERE o.created_at BETWEEN %(start)s AND %(end)s", {"start": start, "end": end},
        )  # fmt: skip
        attempts = cursor.fetchone()[0] or 0
    return {"cancelled": count, "p50": p50 or 0, "p95": p95 or 0, "max": slowest or 0, "waiting": waiting,
            "attempts": float(attempts)}  # fmt: skip


def _still_reserved(start, end) -> bool:
    from orders.models import Order

    return Order.objects.filter(created_at__range=(start, end), status="reserved").exists()


SAGA_STATS_SQL = """
WITH placed AS (SELECT id, created_at FROM orders_order WHERE created_at BETWEEN %(start)s AND %(end)s),
paid AS (
    SELECT p.id, p.created_at, t.at AS paid_at FROM placed p
    JOIN orders_timelineentry t ON t.order_id = p.id AND t.step = 'commit_stock'
),
started AS (
    SELECT p.id, p.created_at, min(t.at - make_interval(secs => coalesce(t.duration_ms, 0) / 1000)) AS at
    FROM placed p JOIN orders_timelineentry t ON t.order_id = p.id AND t.step = 'charge_payment' GROUP BY 1, 2
),
relayed AS (
    SELECT e.published_at - e.created_at AS delay FROM orders_outboxevent e
    WHERE e.topic = 'order.reserved' AND e.created_at BETWEEN %(start)s AND %(end)s AND e.published_at IS NOT NULL
)
SELECT
    (SELECT count(*) FROM placed),
    (SELECT count(*) FROM paid),
    (SELECT count(*) FROM paid WHERE paid_at BETWEEN %(start)s AND %(end)s),
    (SELECT count(*) FROM orders_order o JOIN placed p ON p.id = o.id WHERE o.status = 'reserved'),
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - created_at)) FROM paid),
    (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - created_at)) FROM paid),
    (SELECT max(extract(epoch FROM paid_at - created_at)) FROM paid),
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delay)) FROM relayed),
    (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM delay)) FROM relayed),
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM at - created_at)) FROM started),
    (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM at - created_at)) FROM started)
"""


def saga_stats(start, end) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(SAGA_STATS_SQL, {"start": start, "end": end})
        row = cursor.fetchone()
    names = ["created", "paid", "paid_in_window", "still_reserved", "paid_p50", "paid_p95", "paid_max",
             "relay_p50", "relay_p95", "start_p50", "start_p95"]  # fmt: skip
    stats = dict(zip(names, row, strict=True))
    for name in names[4:]:
        stats[name] = 1000 * (stats[name] or 0)
    return stats


def seed(*, customers: int, stores: int, products: int) -> dict:
    """Stores with plenty of stock and customers with tokens; returns the wrk script's data."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from inventory.models import Product, Store

    random.seed(7)
    password = make_password("bench-password")
    users = User.objects.bulk_create(
        User(email=f"bench{n}@example.com", name=f"Bench {n}", password=password) for n in range(customers)
    )  # fmt: skip
    bodies = []
    for s in range(stores):
        store = Store.objects.create(name=f"Bench store {s}", address="Bench 1", lat=52.5 + s / 100, lng=13.4)
        items = Product.objects.bulk_create(
            Product(store=store, sku=f"B{s}-{p}", name=f"Product {p}", price=500 + p, currency="EUR", on_hand=10**8)
            for p in range(products)
        )  # fmt: skip
        for _ in range(max(10, products)):
            lines = random.sample(items, 2)
            bodies.append({
                "store_id": str(store.id),
                "items": [{"product_id": str(product.id), "quantity": random.randint(1, 3)} for product in lines],
                "delivery": {"address": "Unter den Linden 1", "lat": 52.517, "lng": 13.389},
                "payment_token": "tok_ok",
            })  # fmt: skip
    return {"tokens": [common.access_token(user) for user in users], "bodies": bodies}


def orders_run(base: str, seeded: dict, web_pid: int, seconds: float, connections: int, pace_ms: float = 0) -> dict:
    script = ORDER_SCRIPT % {
        "tokens": ", ".join(json.dumps(token) for token in seeded["tokens"]),
        "bodies": ", ".join(lua_string(json.dumps(body)) for body in seeded["bodies"]),
        "nonce": uuid.uuid4().hex,
        "pace_ms": f"{pace_ms:.0f}",
        "delay": PACING if pace_ms else "",
    }
    with common.cpu_meter(web_pid) as spent:
        result = common.wrk(base, seconds=seconds, connections=connections, script=script)
    return {**result, **per_request(spent, result["requests"])}


def per_request(spent: dict, requests: int) -> dict:
    """CPU milliseconds per request in the web processes and in PostgreSQL."""
    return {
        "web_cpu_ms": 1000 * spent["web_cpu_s"] / max(requests, 1),
        "db_cpu_ms": 1000 * spent["db_cpu_s"] / max(requests, 1),
    }


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def hot_item(base: str, *, buyers: int, units: int) -> list[str]:
    from accounts.models import User
    from inventory.models import Product, Store

    store = Store.objects.create(name="Hot store", address="Hot 1", lat=52.5, lng=13.4)
    product = Product.objects.create(store=store, sku="HOT", name="Hot item", price=999, currency="EUR", on_hand=units)
    users = User.objects.bulk_create(User(email=f"hot{n}@example.com", name=f"Hot {n}") for n in range(buyers))
    body = {
        "store_id": str(store.id),
        "items": [{"product_id": str(product.id), "quantity": 1}],
        "delivery": {"address": "Hot 2", "lat": 52.51, "lng": 13.41},
        "payment_token": "tok_ok",
    }
    requests = [
        {
            "method": "POST",
            "path": "/api/v1/orders",
            "headers": {"Authorization": f"Bearer {common.access_token(user)}", "Idempotency-Key": uuid.uuid4().hex},
            "json": body,
        }
        for user in users
    ]
    started = time.perf_counter()
    answers = common.burst(requests, base_url=base, concurrency=buyers)
    elapsed = time.perf_counter() - started
    statuses = Counter(status for status, _, _ in answers)
    codes = Counter(body.get("code") for status, _, body in answers if status != 201)
    latencies = [seconds * 1000 for _, seconds, _ in answers]
    product.refresh_from_db()
    sold = units - product.on_hand + product.reserved
    print(
        f"{buyers} requests in {elapsed:.2f} s: {dict(statuses)} {dict(codes)}; "
        f"p50 {common.percentile(latencies, 50):.0f} ms, p99 {common.percentile(latencies, 99):.0f} ms",
        flush=True,
    )
    print(f"product: on_hand={product.on_hand} reserved={product.reserved} available={product.available} sold={sold}")
    failures = []
    if statuses[201] != units or sold != units:
        failures.append(f"hot item: {statuses[201]} created and {sold} sold, expected exactly {units}")
    if statuses[409] != buyers - units or set(codes) != {"out_of_stock"}:
        failures.append(f"hot item: the refused buyers got {dict(statuses)} {dict(codes)}, expected 409 out_of_stock")
    if product.available < 0:
        failures.append(f"hot item: available went negative ({product.available})")
    return failures


# The steps of one POST /api/v1/orders, by the function that does each (for the CPU profile's breakdown).
STEPS = {
    "JWT authentication (claims, no query)": ("rest_framework_simplejwt/authentication.py", "authenticate"),
    "input shape (OrderCreateInput.is_valid)": ("rest_framework/serializers.py", "is_valid"),
    "request fingerprint (sha256 of the body)": ("orders/idempotency.py", "request_fingerprint"),
    "order_place: the one statement, its round trip included": ("orders/services.py", "order_place"),
    "answer (HttpResponse from the statement's JSON)": ("django/http/response.py", "__init__"),
}


def cpu_profile(seeded: dict, requests: int = 100) -> None:
    """CPU (not wall) profile of POST /api/v1/orders in this process through Django's test client: which step costs
    how much of the CPU one order takes. cProfile inflates every call; read the shares, not the milliseconds."""
    import cProfile
    import io
    import pstats

    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {seeded['tokens'][0]}")

    def post():
        body = random.choice(seeded["bodies"])
        client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)

    for _ in range(10):
        post()
    started = time.process_time()
    for _ in range(requests):
        post()
    plain_ms = 1000 * (time.process_time() - started) / requests
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(lambda: [post() for _ in range(requests)])
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = stats.total_tt
    common.heading(f"CPU profile: POST /api/v1/orders in-process, {requests} orders")
    print(f"{plain_ms:.1f} ms CPU per order without the profiler (Django test client, no HTTP server)")
    for label, where in STEPS.items():
        cumulative = sum(row[3] for key, row in stats.stats.items() if key[0].endswith(where[0]) and key[2] == where[1])
        print(f"  {100 * cumulative / total:5.1f}%  {label}")


def check_invariants(label: str, *, retry_for: float = 0) -> list[str]:
    """`manage.py check_invariants` on the bench database; retried for `retry_for` seconds while the worker is still
    working through a backlog (e.g. dispatch requests for just-paid orders appear a little later)."""
    deadline = time.monotonic() + retry_for
    result = common.manage("check_invariants", check=False)
    while result.returncode != 0 and time.monotonic() < deadline:
        time.sleep(5)
        result = common.manage("check_invariants", check=False)
    print(f"check_invariants ({label}):")
    print("\n".join((result.stdout + result.stderr).strip().splitlines()[:30]), flush=True)
    return [] if result.returncode == 0 else [f"check_invariants failed ({label})"]


def profile(web, base: str, seeded: dict, args) -> None:
    """Sample the web workers with py-spy during one orders run; print the functions with the most samples."""
    seconds = min(args.seconds, 15)
    common.sample_web(web, "orders", seconds, lambda: orders_run(base, seeded, web.popen.pid, seconds=seconds,
                                                                 connections=args.connections))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
