"""`make bench-orders`: orders per second on the real platform, what bounds them, and no oversell under a rush.

Runs against the bench database and Redis (see bench/common.py), with the Procfile's `web` and `worker`:
1. orders: wrk (one C thread) POSTs /api/v1/orders from many connections for --seconds, unique Idempotency-Keys,
   N customers, several stores; orders/s, p50/p95/p99, errors. Repeated --reps times; medians.
2. ceiling: /healthz and /api/v1/me (JWT auth + one user query) on the same server; orders/s as a share of it.
3. web servers: /api/v1/me under uvicorn + a2wsgi (the Procfile), gunicorn sync, uvicorn + Django's ASGI handler.
4. hot item: one product, --hot-buyers buyers at once, fewer units than buyers: exactly the units are sold.
5. the saga drains (every order paid) and `manage.py check_invariants` passes on the bench database.
With --profile, py-spy samples the web workers during one more orders run and prints the top costs.

The machine's 2 cores are shared by server, worker, PostgreSQL, Redis and the load generator: wrk's single thread
costs a few percent of one core; the async-httpx burst in step 4 is 200 requests only.
"""

import argparse
import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

ORDER_SCRIPT = """
local tokens = {%(tokens)s}
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

WEB_SERVERS = {
    "uvicorn + a2wsgi, 2 workers (Procfile)": None,
    "gunicorn sync, 2 workers (config.wsgi)": "gunicorn config.wsgi:application --bind 127.0.0.1:${PORT} --workers 2",
    # Persistent connections leak under Django's ASGI handler (one per request thread): it runs with DB_CONN_MAX_AGE=0.
    "uvicorn + Django ASGI handler, 2 workers": (
        "env DB_CONN_MAX_AGE=0 uvicorn django.core.asgi:get_asgi_application --factory --host 127.0.0.1 --port ${PORT} "
        "--workers 2 --lifespan off --no-access-log"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="length of one orders run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measurement (medians reported)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent HTTP connections for the orders run")
    parser.add_argument("--ceiling-seconds", type=float, default=6, help="length of one ceiling run")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--stores", type=int, default=5)
    parser.add_argument("--products", type=int, default=20, help="products per store")
    parser.add_argument("--hot-buyers", type=int, default=200)
    parser.add_argument("--hot-units", type=int, default=50)
    parser.add_argument("--drain-seconds", type=float, default=120, help="how long the worker may drain the saga")
    parser.add_argument("--skip-servers", action="store_true", help="skip the web server comparison")
    parser.add_argument("--profile", action="store_true", help="py-spy the web workers during one more orders run")
    parser.add_argument(
        "--worker-during-load", action="store_true",
        help="run the Celery worker during the HTTP measurements too (default: it starts after them to drain the saga)",
    )  # fmt: skip
    parser.add_argument(
        "--pg-set", action="append", default=[], metavar="NAME=VALUE",
        help="a PostgreSQL setting for the bench database, e.g. synchronous_commit=off (experiments only)",
    )  # fmt: skip
    args = parser.parse_args()

    env = common.configure()
    common.heading(f"Courier orders benchmark: {common.machine()}")
    print(f"database {env['DATABASE_URL']}, redis {env['REDIS_URL']}, logs {common.LOG_DIR}", flush=True)
    print(f"before: {common.load()}", flush=True)
    pg_settings = dict(item.split("=", 1) for item in args.pg_set)
    if pg_settings:
        print(f"experiment: bench database settings {pg_settings}", flush=True)
    common.prepare_database(pg_settings)
    seeded = seed(customers=args.customers, stores=args.stores, products=args.products)
    failures = []

    # By default the worker starts after the HTTP measurements: on 2 shared cores it would otherwise take half the CPU
    # that the web process is measured on. The saga backlog waits in Redis and is drained (and checked) at the end.
    during_load = ("web", "worker") if args.worker_during_load else ("web",)
    with common.stack(env, *during_load) as processes, ExitStack() as later:
        base = f"http://127.0.0.1:{processes['web'].port}"
        me_headers = {"Authorization": f"Bearer {seeded['tokens'][0]}"}
        common.wrk(f"{base}/api/v1/me", seconds=2, connections=16, headers=me_headers)  # warm-up: imports, pools

        shape = f"{args.connections} connections, {args.seconds:.0f} s x {args.reps}"
        common.heading(f"orders: POST /api/v1/orders, {shape}")
        web_pid = processes["web"].popen.pid
        runs = [{**orders_run(base, seeded, args, web_pid), "run": n + 1} for n in range(args.reps)]
        orders = common.median_run(runs)
        print(common.table(runs + [{**orders, "run": "median"}], ORDER_COLUMNS), flush=True)
        if orders["other"] or orders["socket_errors"]:
            failures.append(f"orders: {orders['other']} unexpected answers, {orders['socket_errors']} socket errors")

        shape = f"{args.connections} connections, {args.ceiling_seconds:.0f} s x {args.reps}"
        common.heading(f"ceiling on the same server: {shape}")
        healthz = median_of(args.reps, f"{base}/healthz", args.ceiling_seconds, args.connections, web_pid)
        me = median_of(args.reps, f"{base}/api/v1/me", args.ceiling_seconds, args.connections, web_pid, me_headers)
        ceiling = [{"endpoint": "GET /healthz", **healthz}, {"endpoint": "GET /api/v1/me", **me}]
        ceiling.append({"endpoint": "POST /api/v1/orders", **orders})
        print(common.table(ceiling, ["endpoint", "rps", "p50", "p99", "errors", "web_cpu_ms", "db_cpu_ms"]), flush=True)
        ratios = f"{orders['rps'] / me['rps']:.2f} x /api/v1/me = {orders['rps'] / healthz['rps']:.2f} x /healthz"
        print(f"orders/s = {ratios}", flush=True)
        cpu_ms = orders["web_cpu_ms"] + orders["db_cpu_ms"]
        print(
            f"CPU per order: web {orders['web_cpu_ms']:.1f} ms + PostgreSQL {orders['db_cpu_ms']:.1f} ms: "
            f"two cores given to them alone would take at most ~{2000 / cpu_ms:.0f} orders/s",
            flush=True,
        )

        if args.profile:
            profile(processes["web"], base, seeded, args)
            cpu_profile(seeded)

        common.heading(f"hot item: {args.hot_buyers} buyers at once, {args.hot_units} units")
        failures += hot_item(base, buyers=args.hot_buyers, units=args.hot_units)

        common.heading("invariants after the load, then the saga drains")
        failures += check_invariants("after the load")
        if not args.worker_during_load:
            later.enter_context(common.stack(env, "worker"))
        if saga_drain(args.drain_seconds):
            failures += check_invariants("after the saga", retry_for=120)
        else:
            print(f"the saga backlog outlasts --drain-seconds {args.drain_seconds:.0f}: not checked again afterwards")

    if not args.skip_servers:
        common.heading(f"web servers: GET /api/v1/me, {args.connections} connections, {args.ceiling_seconds:.0f} s")
        rows = []
        for label, command in WEB_SERVERS.items():
            with common.stack(env, ("web", command) if command else "web") as processes:
                url = f"http://127.0.0.1:{processes['web'].port}/api/v1/me"
                common.wrk(url, seconds=2, connections=16, headers=me_headers)
                web_pid = processes["web"].popen.pid
                result = median_of(args.reps, url, args.ceiling_seconds, args.connections, web_pid, me_headers)
                rows.append({"server": label, **result})
        for row in rows:
            row["vs Procfile"] = f"{row['rps'] / rows[0]['rps']:.2f}x"
        print(common.table(rows, ["server", "rps", "p50", "p99", "errors", "web_cpu_ms", "vs Procfile"]), flush=True)

    common.heading("result")
    print(f"after: {common.load()}")
    for failure in failures:
        print(f"FAIL {failure}")
    print("ok" if not failures else f"{len(failures)} failure(s)", flush=True)
    return 1 if failures else 0


ORDER_COLUMNS = [
    "run",
    "rps",
    "p50",
    "p95",
    "p99",
    "created",
    "conflicts",
    "other",
    "socket_errors",
    "web_cpu_ms",
    "db_cpu_ms",
]


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


def orders_run(base: str, seeded: dict, args, web_pid: int, seconds: float | None = None) -> dict:
    script = ORDER_SCRIPT % {
        "tokens": ", ".join(json.dumps(token) for token in seeded["tokens"]),
        "bodies": ", ".join(lua_string(json.dumps(body)) for body in seeded["bodies"]),
        "nonce": uuid.uuid4().hex,
    }
    with common.cpu_meter(web_pid) as spent:
        result = common.wrk(base, seconds=seconds or args.seconds, connections=args.connections, script=script)
    return {**result, **per_request(spent, result["requests"])}


def per_request(spent: dict, requests: int) -> dict:
    """CPU milliseconds per request in the web processes and in PostgreSQL."""
    return {
        "web_cpu_ms": 1000 * spent["web_cpu_s"] / max(requests, 1),
        "db_cpu_ms": 1000 * spent["db_cpu_s"] / max(requests, 1),
    }


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def median_of(reps: int, url: str, seconds: float, connections: int, web_pid: int, headers: dict | None = None) -> dict:
    runs = []
    for _ in range(reps):
        with common.cpu_meter(web_pid) as spent:
            result = common.wrk(url, seconds=seconds, connections=connections, headers=headers)
        runs.append({**result, **per_request(spent, result["requests"])})
    return common.median_run(runs)


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
    "JWT authentication (user query)": "rest_framework_simplejwt/authentication.py:40(authenticate)",
    "input validation (store + products queries)": "rest_framework/serializers.py:217(is_valid)",
    "idempotency claim (own commit)": "orders/idempotency.py:58(_claim)",
    "stock hold (conditional UPDATE per line + reservations)": "inventory/services.py:89(reservations_hold)",
    "order_create total (hold + order, lines, timeline, outbox)": "orders/services.py:75(order_create)",
    "re-reading the order for the answer (order_get_for)": "orders/selectors.py:15(order_get_for)",
    "serializing the answer (OrderOutput.data)": "rest_framework/serializers.py:583(data)",
    "idempotency answer stored": "orders/idempotency.py:72(_store)",
    "outbox relay after commit (Celery publish + UPDATE)": "orders/events.py:38(_relay)",
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
        cumulative = sum(row[3] for key, row in stats.stats.items() if f"{key[0]}:{key[1]}({key[2]})".endswith(where))
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


def saga_drain(seconds: float) -> bool:
    """Let the worker move reserved orders on for up to `seconds`; prints the saga's rate. True when all moved."""
    from orders.models import Order

    started = time.monotonic()
    before = Order.objects.filter(status="reserved").count()
    waiting = before
    while waiting and time.monotonic() - started < seconds:
        time.sleep(1)
        waiting = Order.objects.filter(status="reserved").count()
    elapsed = time.monotonic() - started
    statuses = dict(Counter(Order.objects.values_list("status", flat=True)))
    print(
        f"saga: {before - waiting} of {before} reserved orders moved on in {elapsed:.0f} s "
        f"({(before - waiting) / elapsed:.0f} orders/s); statuses now {statuses}",
        flush=True,
    )
    return not waiting


def profile(web, base: str, seeded: dict, args) -> None:
    """Sample the web workers with py-spy during one orders run; print the functions with the most samples."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed in the virtualenv (.venv/bin/pip install py-spy): no profile")
        return
    seconds = min(args.seconds, 15)
    raw = common.LOG_DIR / "orders-profile.txt"
    common.heading(f"profile: py-spy on the web workers during a {seconds:.0f} s orders run ({raw})")
    sampler = subprocess.Popen(
        [str(py_spy), "record", "--pid", str(web.popen.pid), "--subprocesses", "--format", "raw",
         "--rate", "200", "--duration", str(int(seconds)), "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)
    orders_run(base, seeded, args, web.popen.pid, seconds=seconds)
    sampler.wait(timeout=60)
    print_profile(raw)


def print_profile(raw: Path, top: int = 30) -> None:
    """Collapsed stacks -> where the request threads spend their samples.

    Only stacks inside a request (a2wsgi's WSGI call) count. Inclusive share per frame, generic plumbing
    (threads, the WSGI/middleware chain) left out; then the leaf ("self") frames, grouped by library."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(frame.startswith("WSGIResponder.wsgi ") for frame in frames):
            continue
        n = int(count)
        total += n
        for frame in {
            _short(frame) for frame in frames if not frame.startswith("process ") and "spawn_main" not in frame
        }:
            inclusive[frame] += n
        own[_library(frames[-1])] += n
    if not total:
        print("no request samples")
        return
    print(f"{total} samples inside requests; inclusive share:")
    shown = 0
    for frame, n in inclusive.most_common():
        if shown == top or n / total < 0.02:
            break
        if not any(word in frame for word in PLUMBING):
            print(f"  {100 * n / total:5.1f}%  {frame}")
            shown += 1
    print("self time by library:")
    for library, n in own.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {library}")


# Frames every request passes through: they say nothing about what it costs.
PLUMBING = ("threading.py", "concurrent/futures", "a2wsgi/", "django/core/handlers", "django/utils/deprecation",
            "django/views/decorators", "django/views/generic/base", "rest_framework/views.py (dispatch",
            "contextlib.py")  # fmt: skip


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").replace(str(common.ROOT) + "/", "").split("site-packages/")[-1]
    return f"{name} ({where.split(':')[0]})"


def _library(frame: str) -> str:
    where = _short(frame).partition(" (")[2].rstrip(")")
    top_folder = where.split("/")[0]
    return f"{top_folder}  (e.g. {_short(frame)})"


if __name__ == "__main__":
    sys.exit(main())
