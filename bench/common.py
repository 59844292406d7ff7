"""Helpers every benchmark shares: a fresh bench database, the Procfile processes, load generation, maths, printing.

A benchmark script calls `configure()` first (before anything imports Django), then `prepare_database()`,
seeds through the ORM, and starts processes with `stack()`. Load comes from `wrk` (C, one thread: it leaves
the CPU to the server on this 2-core machine) or, for small bursts, from `burst()` (async httpx in one process).

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/courier_bench) and BENCH_REDIS_URL
(default redis://127.0.0.1:6379/10); both are wiped by `prepare_database()`.
"""

import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/courier_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
LOG_DIR = Path(tempfile.mkdtemp(prefix="courier-bench-"))


def configure() -> dict:
    """Point this process (and every process it starts) at the bench database and Redis; returns the process env."""
    env = {
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "THROTTLE_ENABLED": "false",
        "DEBUG": "0",
        # Production-like, so not the development key (refused with DEBUG off); one per run, shared by its processes.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or f"bench-{secrets.token_urlsafe(40)}",
        "LOG_LEVEL": "WARNING",
        # Tokens minted before the run must outlive it.
        "JWT_ACCESS_MINUTES": "240",
        "CELERY_BEAT_SCHEDULE_FILE": str(LOG_DIR / "celerybeat-schedule"),
        "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
    }
    os.environ.update(env)
    return env


def prepare_database(pg_settings: dict[str, str] | None = None) -> None:
    """Drop and re-create the bench database, migrate it, empty the bench Redis db, and set Django up here.

    `pg_settings` ({"synchronous_commit": "off"}) become the database defaults: experiments on what bounds a run."""
    import environ
    import psycopg
    import psycopg.sql
    import redis

    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    server = {"host": config["HOST"] or None, "port": config["PORT"] or None, "user": config["USER"]}
    server["password"] = config.get("PASSWORD") or None
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{config["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{config["NAME"]}"')
        for name, value in (pg_settings or {}).items():
            names = map(psycopg.sql.Identifier, (config["NAME"], name))
            conn.execute(psycopg.sql.SQL("ALTER DATABASE {} SET {} = {}").format(*names, psycopg.sql.Literal(value)))
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    manage("migrate", "--noinput", "-v", "0")
    import django

    django.setup()


def manage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, check=check, capture_output=not check, text=True
    )  # fmt: skip


@contextmanager
def stack(env: dict, *processes: str | tuple[str, str]):
    """Start Procfile processes by name, or (name, command) pairs, via common.processes; yields {name: Process}."""
    from common.processes import started

    with ExitStack() as exits:
        running = {}
        for item in processes:
            name, command = item if isinstance(item, tuple) else (item, None)
            # `started` waits for /healthz only for a process named "web": custom web commands count as web too.
            kind = "web" if name.startswith("web") else name
            running[name] = exits.enter_context(started(kind, env, LOG_DIR, command=command))
        yield running


def access_token(user) -> str:
    """An access token as sign-in issues it (with the claims that spare the user-row read)."""
    from accounts.tokens import access_token_for

    return str(access_token_for(user))


def assigned_orders(count: int) -> list[dict]:
    """`count` assigned orders of one customer, each with its own driver, through the real services."""
    from datetime import UTC, datetime

    from accounts.models import User
    from delivery.services import dispatch, drivers, ingest
    from inventory import services as inventory
    from orders import services as orders
    from orders.models import Order

    store = inventory.store_create(name="Bench store", address="Alexanderplatz 1", lat=52.5219, lng=13.4132)
    product = inventory.product_create(store=store, sku="B-1", name="Bench", price=100, currency="EUR", stock=10**6)
    customer = User.objects.create_user(email="bench-customer@example.com", password="x", name="Bench Customer")
    made = []
    for i in range(count):
        user = User.objects.create_user(email=f"bench-driver-{i}@example.com", password="x", name=f"Driver {i}")
        driver = drivers.driver_create(user=user)
        drivers.driver_set_status(driver_id=driver.pk, status="available")
        point = {"lat": 52.5219, "lng": 13.4132, "recorded_at": datetime.now(UTC), "heading": None, "speed": None}
        ingest.driver_locations_ingest(user_id=user.pk, driver_id=user.driver.pk, points=[point])
        order = orders.order_create(
            customer=customer, store=store, lines=[orders.LineInput(product=product, quantity=1)],
            delivery_address="Torstrasse 1", delivery_lat=52.53, delivery_lng=13.40, payment_token="tok_ok",
        )  # fmt: skip
        while orders.order_saga_advance(order_id=order.pk) is not None:
            pass
        dispatch.order_dispatch(order_id=order.pk)
        order = Order.objects.get(pk=order.pk)
        assert order.status == "assigned", order.status
        token = access_token(User.objects.get(driver__pk=order.driver.id))
        made.append({"order_id": str(order.pk), "driver_id": str(order.driver.id), "driver_token": token})
    customer_token = access_token(customer)
    for row in made:
        row["customer_token"] = customer_token
    return made


# --- load ----------------------------------------------------------------------------------------


def wrk(url: str, *, seconds: float, connections: int, headers: dict | None = None, script: str | None = None) -> dict:
    """Run wrk with one thread; returns {"rps", "p50", "p95", "p99" (ms), "requests", "errors", "statuses"}.

    A Lua `script` that defines `done` must print one JSON line starting with `RESULT ` (see ORDER_SCRIPT in
    bench/orders.py); without a script, wrk's own summary is parsed.
    """
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for the ceiling measurements: apt-get install -y wrk")
    args = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    script_path = None
    if script:
        script_path = LOG_DIR / f"wrk-{time.monotonic_ns()}.lua"
        script_path.write_text(script)
        args += ["-s", str(script_path)]
    finished = subprocess.run([*args, url], capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed: {finished.stdout}{finished.stderr}")
    output = finished.stdout
    if match := re.search(r"^RESULT (.*)$", output, re.MULTILINE):
        return json.loads(match.group(1))
    return _parse_wrk(output)


def _parse_wrk(output: str) -> dict:
    def latency_ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": latency_ms("50"),
        "p95": None,  # wrk's summary prints 50/75/90/99
        "p90": latency_ms("90"),
        "p99": latency_ms("99"),
        "requests": requests,
        "errors": errors,
    }


def burst(requests: list[dict], *, base_url: str, concurrency: int) -> list[tuple[int, float, dict]]:
    """Send `requests` ({"method", "path", "headers", "json"}) all at once from `concurrency` async clients.

    Returns (status, seconds, body) per request, in order. For short bursts (hundreds of requests) where the
    point is contention, not throughput; use wrk for throughput.
    """
    import httpx

    async def run():
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            start = asyncio.Event()

            async def one(request):
                await start.wait()
                began = time.perf_counter()
                response = await client.request(
                    request["method"], request["path"], headers=request.get("headers"), json=request.get("json")
                )  # fmt: skip
                return response.status_code, time.perf_counter() - began, response.json()

            tasks = [asyncio.create_task(one(request)) for request in requests]
            await asyncio.sleep(0.1)
            start.set()
            return await asyncio.gather(*tasks)

    return asyncio.run(run())


# --- CPU accounting: on a shared machine, CPU time per request is steadier than requests per second --------


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds consumed so far by each live process of `pids`."""
    ticks = os.sysconf("SC_CLK_TCK")
    result = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        result[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return result


def database_backends() -> list[int]:
    """PIDs of the PostgreSQL backends serving the bench database (same machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid != pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


@contextmanager
def cpu_meter(web_pid: int):
    """Measures the CPU seconds the web process tree and the database backends spend inside the block.

    Yields a dict filled on exit: {"web_cpu_s", "db_cpu_s"}. Backends that end inside the block are missed."""
    web_before = cpu_seconds(process_tree(web_pid))
    db_before = cpu_seconds(database_backends())
    spent: dict = {}
    yield spent
    web_after = cpu_seconds(process_tree(web_pid))
    db_after = cpu_seconds(database_backends())
    spent["web_cpu_s"] = sum(value - web_before.get(pid, 0.0) for pid, value in web_after.items())
    spent["db_cpu_s"] = sum(value - db_before.get(pid, 0.0) for pid, value in db_after.items())


# --- maths and printing --------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


def median_run(runs: list[dict]) -> dict:
    """Field-wise median of repeated runs (numbers only; other fields from the first run)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = statistics.median(run[key] for run in runs)
    return merged


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and (match := re.search(r"model name\s+:\s+(.*)", cpuinfo.read_text())):
        cpu = match.group(1).strip()
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {system}"


def load() -> str:
    """The machine is shared: a load average well above the core count means the numbers are not comparable."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def table(rows: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}"
        return "-" if value is None else str(value)

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns), "-+-".join("-" * widths[c] for c in columns)]
    lines += [" | ".join(cell(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def sample_web(web, name: str, seconds: float, run):
    """py-spy on the web workers while `run()` loads them for `seconds`; prints where requests spend their time.
    Returns what `run()` returned (None without py-spy)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed in the virtualenv (.venv/bin/pip install py-spy): no profile")
        return
    raw = LOG_DIR / f"{name}-profile.txt"
    heading(f"profile: py-spy on the web workers during a {seconds:.0f} s {name} run ({raw})")
    sampler = subprocess.Popen(
        [str(py_spy), "record", "--pid", str(web.popen.pid), "--subprocesses", "--format", "raw",
         "--rate", "200", "--duration", str(int(seconds)), "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)
    result = run()
    sampler.wait(timeout=60)
    print_profile(raw)
    return result


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
    where = where.rstrip(")").replace(str(ROOT) + "/", "").split("site-packages/")[-1]
    return f"{name} ({where.split(':')[0]})"


def _library(frame: str) -> str:
    where = _short(frame).partition(" (")[2].rstrip(")")
    top_folder = where.split("/")[0]
    return f"{top_folder}  (e.g. {_short(frame)})"
