"""`make chaos`: the platform under steady load while its parts are broken on purpose, then an audit.

Starts its own throwaway PostgreSQL and Redis (never the machine's: `common.processes.ThrowawayPostgres` /
`ThrowawayRedis` on free ports), every Procfile process, customers placing orders (unique Idempotency-Keys,
retried with the same key after a 503 or a dropped connection, as a careful client does) and riders streaming
a GPS point a second. On a schedule it SIGKILLs the worker twice, restarts Redis, restarts PostgreSQL
(`pg_ctl -m fast`), runs a payment gateway outage (`tok_error`, then a slow gateway `tok_slow`) and restarts
beat (and the outbox relay, when the Procfile has one). Then it lets the sweepers work and reports:

  orders accepted (201), by final status, stuck, lost (acknowledged but missing), double charges, oversold
  products, acknowledged GPS points missing, every status code clients saw in each fault window, what
  /readyz named while each dependency was down, and `check_invariants`.

The bar (exit status 1 when missed): 0 lost, 0 stuck after the sweep, 0 double charges, 0 oversold, no 500 and
no dropped connection during outages, every 503 a problem+json with Retry-After, /readyz naming each dependency
while it is down, healthy-card orders never cancelled by the gateway outage, check_invariants clean.

Options: --seconds (load length, default 64), --rate (orders per second, default 12), --riders (default 8).
Results: printed, and written as JSON next to the process logs (path printed). Recorded in RELIABILITY.md.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common.processes import (  # noqa: E402
    Process,
    ThrowawayPostgres,
    ThrowawayRedis,
    free_port,
    procfile,
    wait_for_http,
    wait_for_log,
)

LOG_DIR = Path(tempfile.mkdtemp(prefix="courier-chaos-"))
RETRY_FOR_SECONDS = 90
INVARIANTS_PATIENCE_SECONDS = 120
HOT_STOCK = 60  # the contested product: more buyers than units, so overselling would show
STORE_AT = (52.5219, 13.4132)


class Clock:
    """Seconds since the load started, and the fault in progress (every answer is labelled with it)."""

    def __init__(self):
        self.started = time.monotonic()
        self.fault = "none"
        self.payment = "tok_ok"
        self.windows: list[tuple[str, float, float]] = []

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)


# --- the platform ----------------------------------------------------------------------------------------


class Platform:
    def __init__(self, env: dict):
        self.env = env
        self.processes: dict[str, Process] = {}
        self.starts = Counter()

    def start(self, name: str) -> Process:
        self.starts[name] += 1
        # A log per start: readiness is read from the log, and a restarted worker must say "ready." again.
        process = Process(f"{name}-{self.starts[name]}", procfile()[name].strip(), self.env, LOG_DIR)
        self.processes[name] = process
        command = procfile()[name]
        if name == "web":
            wait_for_http(f"http://127.0.0.1:{self.env['PORT']}/healthz", timeout=60)
        elif "celery" in command and " worker " in command:  # the saga worker, and the dispatch one if separate
            wait_for_log(process, "ready.", timeout=60)
        return process

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        self.processes[name].kill(sig)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()


def seed(customers: int, riders: int) -> dict:
    from accounts.tests.factories import UserFactory
    from accounts.tokens import access_token_for
    from delivery.models import Driver
    from inventory.models import Product, Store

    store = Store.objects.create(name="Chaos Store", address="Alexanderplatz 1", lat=STORE_AT[0], lng=STORE_AT[1])
    plenty = Product.objects.create(store=store, sku="PLENTY", name="Bread", price=350, currency="EUR", on_hand=10**6)
    hot = Product.objects.create(store=store, sku="HOT", name="Last cake", price=900, currency="EUR", on_hand=HOT_STOCK)
    buyers = [str(access_token_for(UserFactory(name=f"Buyer {n}"))) for n in range(customers)]
    drivers = []
    for n in range(riders):
        driver = Driver.objects.create(user=UserFactory(name=f"Rider {n}"))
        drivers.append({"id": driver.pk, "token": str(access_token_for(driver.user))})
    return {"store": str(store.pk), "plenty": str(plenty.pk), "hot": str(hot.pk), "buyers": buyers, "drivers": drivers}


# --- clients ------------------------------------------------------------------------------------------------


class Journal:
    """Every answer a client saw, labelled with the fault in progress when the request was sent."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.answers: list[dict] = []
        self.acknowledged: dict[str, dict] = {}  # order id -> {"token", "key"}
        self.unanswered: list[str] = []  # keys given up on without a final answer
        self.answer_seconds: list[float] = []  # from first try to the 201, retries included
        self.points: list[tuple[int, str]] = []  # (driver id, recorded_at) the API acknowledged
        self.ready: list[dict] = []

    def note(self, kind: str, fault: str, status, response=None, error: str | None = None) -> None:
        entry = {"t": self.clock.now(), "kind": kind, "fault": fault, "status": status, "error": error}
        if response is not None:
            entry["content_type"] = response.headers.get("content-type", "")
            entry["retry_after"] = response.headers.get("retry-after")
            if entry["content_type"].startswith("application/problem+json"):
                try:
                    entry["code"] = response.json().get("code")
                except ValueError:
                    entry["code"] = "unparsable"
        self.answers.append(entry)


async def place_orders(client, seeded: dict, clock: Clock, journal: Journal, rate: float, stop: asyncio.Event):
    tasks = []
    while not stop.is_set():
        buyer = random.choice(seeded["buyers"])
        token = clock.payment if clock.payment != "tok_ok" and random.random() < 0.5 else "tok_ok"
        product = seeded["hot"] if random.random() < 0.15 else seeded["plenty"]
        tasks.append(asyncio.create_task(place_one(client, seeded, buyer, token, product, clock, journal)))
        await asyncio.sleep(random.expovariate(rate))
    await asyncio.gather(*tasks)


async def place_one(client, seeded, buyer, token, product, clock, journal):
    import httpx

    key = str(uuid.uuid4())
    body = {
        "store_id": seeded["store"],
        "items": [{"product_id": product, "quantity": 1}],
        "delivery": {"address": "Torstr. 1", "lat": 52.53, "lng": 13.40},
        "payment_token": token,
    }
    headers = {"Authorization": f"Bearer {buyer}", "Idempotency-Key": key}
    # A careful client retries with the same key for as long as a user waits: a claim left by a request that
    # died in an outage is released after IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS (60).
    began, attempt, last = time.monotonic(), 0, "none"
    while time.monotonic() - began < RETRY_FOR_SECONDS:
        attempt += 1
        fault = clock.fault
        try:
            response = await client.post("/api/v1/orders", json=body, headers=headers)
        except httpx.HTTPError as exc:
            journal.note("order", fault, "connection", error=type(exc).__name__)
            last = type(exc).__name__
            await asyncio.sleep(min(2**attempt * 0.25, 4))
            continue
        journal.note("order", fault, response.status_code, response)
        last = f"{response.status_code} {journal.answers[-1].get('code') or ''}".strip()
        if response.status_code == 201:
            journal.acknowledged[response.json()["id"]] = {"token": token, "key": key}
            journal.answer_seconds.append(time.monotonic() - began)
            return
        if response.status_code == 503 or response.status_code >= 500 or _in_flight(response):
            await asyncio.sleep(min(float(response.headers.get("retry-after") or 1), 3))
            continue
        return  # a final answer: out of stock, or a bug the journal shows
    journal.unanswered.append(f"{key}: last answer {last} after {attempt} attempts")


def _in_flight(response) -> bool:
    return response.status_code == 409 and "idempotency_in_flight" in response.text


async def ride(client, rider: dict, clock: Clock, journal: Journal, stop: asyncio.Event):
    import httpx

    headers = {"Authorization": f"Bearer {rider['token']}"}
    online = False
    lat, lng = STORE_AT[0] + random.uniform(-0.01, 0.01), STORE_AT[1] + random.uniform(-0.01, 0.01)
    while not stop.is_set():
        fault = clock.fault
        try:
            if not online:
                response = await client.post("/api/v1/drivers/me/status", json={"status": "available"}, headers=headers)
                journal.note("rider", fault, response.status_code, response)
                online = response.status_code == 200
            lat, lng = lat + random.uniform(-0.0003, 0.0003), lng + random.uniform(-0.0003, 0.0003)
            recorded_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            point = {"lat": lat, "lng": lng, "recorded_at": recorded_at, "speed": 4.0, "heading": 90.0}
            response = await client.post("/api/v1/drivers/me/locations", json={"points": [point]}, headers=headers)
            journal.note("rider", fault, response.status_code, response)
            if response.status_code == 202:
                journal.points.append((rider["id"], recorded_at))
        except httpx.HTTPError as exc:
            journal.note("rider", fault, "connection", error=type(exc).__name__)
        await asyncio.sleep(1.0)


async def probe_readiness(client, clock: Clock, journal: Journal, stop: asyncio.Event):
    import httpx

    while not stop.is_set():
        fault, sent = clock.fault, time.monotonic()
        try:
            response = await client.get("/readyz", timeout=10)
            body = response.json()
            down = sorted(k for k in ("database", "redis", "broker") if str(body.get(k, "ok")) != "ok")
            journal.ready.append({"t": clock.now(), "fault": fault, "status": response.status_code, "down": down,
                                  "seconds": round(time.monotonic() - sent, 2)})  # fmt: skip
        except (httpx.HTTPError, ValueError) as exc:
            journal.ready.append({"t": clock.now(), "fault": fault, "status": type(exc).__name__, "down": [],
                                  "seconds": round(time.monotonic() - sent, 2)})  # fmt: skip
        await asyncio.sleep(0.5)


async def drive_load(base_url: str, seeded: dict, clock: Clock, journal: Journal, args, stop: asyncio.Event):
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=15) as client:
        await asyncio.gather(
            place_orders(client, seeded, clock, journal, args.rate, stop),
            probe_readiness(client, clock, journal, stop),
            *(ride(client, rider, clock, journal, stop) for rider in seeded["drivers"]),
        )


# --- the faults ---------------------------------------------------------------------------------------------


def run_faults(platform: Platform, redis_server: ThrowawayRedis, postgres: ThrowawayPostgres, clock: Clock,
               seconds: float, stop: threading.Event) -> list[str]:  # fmt: skip
    """The schedule, in seconds since the load started; spread over the run (scaled to --seconds)."""
    scale = seconds / 64
    log = []

    def at(moment: float) -> None:
        while clock.now() < moment * scale and not stop.is_set():
            time.sleep(0.05)

    def window(name: str, action) -> None:
        clock.fault, began = name, clock.now()
        try:
            action()
        finally:
            clock.windows.append((name, began, clock.now()))
            log.append(f"{began:6.1f}s-{clock.now():6.1f}s {name}")
            clock.fault = "none"

    def worker_killed():
        platform.kill("worker")
        time.sleep(3)
        platform.start("worker")

    def redis_restart():
        redis_server.stop()
        time.sleep(4)
        redis_server.start()

    def postgres_restart():
        postgres.stop("fast")
        time.sleep(2)
        postgres.start()

    def gateway_outage():
        clock.payment = "tok_error"
        time.sleep(8 * scale)
        clock.payment = "tok_slow"
        time.sleep(6 * scale)
        clock.payment = "tok_ok"

    def relay_and_beat_restart():
        for name in ("relay", "beat"):
            if name in platform.processes:
                platform.kill(name, signal.SIGTERM)
                platform.start(name)

    at(5)
    window("worker SIGKILL #1", worker_killed)
    at(12)
    window("gateway outage (tok_error, then tok_slow)", gateway_outage)
    at(24)
    window("worker SIGKILL #2", worker_killed)
    at(30)
    window("Redis restart", redis_restart)
    at(42)
    window("PostgreSQL restart (-m fast)", postgres_restart)
    at(52)
    window("relay/beat restart", relay_and_beat_restart)
    return log


# --- the audit ------------------------------------------------------------------------------------------------


def settle(deadline_seconds: float) -> float:
    """Wait for the sweepers: no order left `reserved`, every cancelled order's payment settled."""
    from django.db import close_old_connections

    from orders.models import Order, Payment

    started = time.monotonic()
    while time.monotonic() - started < deadline_seconds:
        close_old_connections()
        try:
            busy = (
                Order.objects.filter(status=Order.Status.RESERVED).count()
                + Order.objects.filter(status=Order.Status.CANCELLED, payment__status__in=Payment.UNSETTLED).count()
            )
        except Exception:  # noqa: BLE001 - the database may still be coming back
            busy = -1
        if busy == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return -1


def audit(seeded: dict, journal: Journal, clock: Clock) -> dict:
    import subprocess

    from django.db import connection
    from django.db.models import Count, Sum

    from delivery.models import DriverPosition
    from inventory.models import Product
    from orders.models import Order, OrderLine, Payment
    from sandbox.models import LedgerEntry

    connection.close()
    acknowledged = journal.acknowledged
    orders = {str(o.pk): o for o in Order.objects.filter(pk__in=list(acknowledged)).select_related("payment")}
    by_status = Counter(f"{o.status}{'/' + o.cancel_reason if o.cancel_reason else ''}" for o in orders.values())
    lost = sorted(set(acknowledged) - set(orders))
    stuck = (
        Order.objects.filter(status=Order.Status.RESERVED).count()
        + Order.objects.filter(status=Order.Status.CANCELLED, payment__status__in=Payment.UNSETTLED).count()
    )
    healthy_cancelled = [
        oid for oid, o in orders.items()
        if acknowledged[oid]["token"] in ("tok_ok", "tok_slow") and o.cancel_reason in ("payment_failed",)
    ]  # fmt: skip
    doubles = (
        LedgerEntry.objects.filter(kind="charge").values("reference").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    oversold = []
    for product in Product.objects.all():
        if product.on_hand < 0 or product.reserved < 0 or product.reserved > product.on_hand:
            oversold.append(f"{product.sku}: on_hand {product.on_hand}, reserved {product.reserved}")
    charged = ["paid", "assigned", "picked_up", "delivered"]
    hot_sold = (
        OrderLine.objects.filter(product_id=seeded["hot"], order__status__in=charged).aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    hot_held = (
        OrderLine.objects.filter(product_id=seeded["hot"], order__status="reserved").aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    if hot_sold + hot_held > HOT_STOCK:
        oversold.append(f"HOT: {hot_sold} sold + {hot_held} held of {HOT_STOCK}")
    stored = {
        (driver_id, at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        for driver_id, at in DriverPosition.objects.values_list("driver_id", "recorded_at")
    }
    missing_points = [p for p in journal.points if p not in stored]
    # The sweepers keep working while we look: a dispatch lost with Redis' queue is re-driven once it is stale.
    invariants_started, first_answer = time.monotonic(), None
    while True:
        invariants = subprocess.run(
            [sys.executable, "manage.py", "check_invariants"], cwd=ROOT, capture_output=True, text=True
        )
        first_answer = first_answer or (invariants.stdout + invariants.stderr).strip().splitlines()[-1]
        if invariants.returncode == 0 or time.monotonic() - invariants_started > INVARIANTS_PATIENCE_SECONDS:
            break
        time.sleep(5)
    invariants_seconds = round(time.monotonic() - invariants_started, 1)

    statuses: dict[str, Counter] = defaultdict(Counter)
    unclean = Counter()
    for answer in journal.answers:
        label = f"{answer['status']} {answer.get('code') or ''}".strip() if answer["status"] != 503 else "503"
        statuses[answer["fault"]][label] += 1
        if answer["status"] == "connection" or (isinstance(answer["status"], int) and answer["status"] >= 500):
            if answer["status"] != 503:
                unclean[f"{answer['kind']} {answer['status']} {answer.get('error') or ''}".strip()] += 1
            elif not (answer.get("retry_after") and answer.get("content_type", "").startswith("application/problem")):
                unclean[f"{answer['kind']} 503 without problem+json and Retry-After"] += 1
    readiness = {}
    for fault, dependency in (("Redis restart", "redis"), ("PostgreSQL restart (-m fast)", "database")):
        probes = [r for r in journal.ready if r["fault"] == fault]
        named = [r for r in probes if dependency in r["down"]]
        readiness[fault] = {
            "probes": len(probes),
            "naming_it": len(named),
            "answers": dict(Counter(f"{r['status']} down={','.join(r['down']) or '-'}" for r in probes)),
            "slowest_seconds": max((r["seconds"] for r in probes), default=None),
        }
    logs = {path.name: path.read_text(errors="replace") for path in LOG_DIR.glob("*.log")}

    def in_logs(process: str, needle: str) -> int:
        return sum(text.count(needle) for name, text in logs.items() if name.startswith(process))

    log_findings = {
        "web 'Internal Server Error'": in_logs("web", "Internal Server Error"),
        "worker 'Unrecoverable error'": in_logs("worker", "Unrecoverable error"),
        "worker respawned": in_logs("worker", "respawn:"),
    }
    return {
        "log_findings": log_findings,
        "orders_accepted": len(acknowledged),
        "orders_by_final_status": dict(by_status),
        "orders_given_up_by_client": journal.unanswered,
        "order_answer_seconds": _spread(journal.answer_seconds),
        "stuck": stuck,
        "lost": len(lost),
        "healthy_cards_cancelled_payment_failed": len(healthy_cancelled),
        "double_charges": doubles,
        "oversold": oversold,
        "hot_product": {"stock": HOT_STOCK, "sold": hot_sold, "held": hot_held},
        "gps_points_acknowledged": len(journal.points),
        "gps_points_missing": len(missing_points),
        "status_codes_by_fault": {fault: dict(counts) for fault, counts in statuses.items()},
        "unclean_answers": dict(unclean),
        "readyz_while_down": readiness,
        "check_invariants": {
            "exit": invariants.returncode,
            "clean_after_seconds": invariants_seconds,
            "first_answer": first_answer,
            "output": (invariants.stdout + invariants.stderr)[-2000:],
        },
    }


def _spread(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max": round(ordered[-1], 3),
    }


def verdict(report: dict) -> list[str]:
    misses = []
    for key in ("lost", "stuck", "double_charges", "gps_points_missing", "healthy_cards_cancelled_payment_failed"):
        if report[key]:
            misses.append(f"{key}: {report[key]}")
    if report["oversold"]:
        misses.append(f"oversold: {report['oversold']}")
    if report["unclean_answers"]:
        misses.append(f"unclean answers (500, dropped connection, bare 503): {report['unclean_answers']}")
    for fault, seen in report["readyz_while_down"].items():
        if not seen["naming_it"]:
            misses.append(f"/readyz never named the dependency during {fault}")
    if report["log_findings"]["web 'Internal Server Error'"]:
        misses.append("the web log has Internal Server Errors")
    if report["check_invariants"]["exit"] != 0:
        misses.append("check_invariants failed")
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=64)
    parser.add_argument("--rate", type=float, default=12.0)
    parser.add_argument("--riders", type=int, default=8)
    parser.add_argument("--customers", type=int, default=40)
    args = parser.parse_args()

    print(f"chaos: logs in {LOG_DIR}", flush=True)
    postgres = ThrowawayPostgres().start()
    redis_server = ThrowawayRedis().start()
    port = free_port()
    env = {
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis_server.url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "chaos-run-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        # Throttling stays on (its Redis-down path is part of the test), at rates the load never reaches.
        "THROTTLE_ENABLED": "true",
        "THROTTLE_USER_RATE": "100000/min",
        "JWT_ACCESS_MINUTES": "240",
        "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
        "CELERY_BEAT_SCHEDULE_FILE": str(LOG_DIR / "celerybeat-schedule"),
        # Sweepers at a pace that fits a short run.
        "SWEEP_INTERVAL_SECONDS": "2",
        "DISPATCH_SWEEP_SECONDS": "5",
        "DISPATCH_RETRY_MAX_SECONDS": "5",
        "SAGA_STUCK_AFTER_SECONDS": "10",
        "OUTBOX_STALE_AFTER_SECONDS": "3",
        "PAYMENT_RETRY_BASE_SECONDS": "0.5",
        "PAYMENT_TIMEOUT_SECONDS": "5",
    }
    os.environ.update(env)
    platform = Platform(env)
    try:
        from bench.common import manage

        manage("migrate", "--noinput", "-v", "0")
        import django

        django.setup()
        seeded = seed(args.customers, args.riders)
        for name in procfile():
            platform.start(name)
        print(
            f"chaos: platform up ({', '.join(platform.processes)}) on :{port}; load for {args.seconds:.0f}s", flush=True
        )

        clock, stop_faults = Clock(), threading.Event()
        journal = Journal(clock)
        fault_log: list[str] = []

        def faults_run():
            fault_log.extend(run_faults(platform, redis_server, postgres, clock, args.seconds, stop_faults))

        faults = threading.Thread(target=faults_run, daemon=True)

        async def load():
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(args.seconds, stop.set)
            await drive_load(f"http://127.0.0.1:{port}", seeded, clock, journal, args, stop)

        faults.start()
        asyncio.run(load())
        stop_faults.set()
        faults.join(timeout=60)
        print("chaos: faults\n  " + "\n  ".join(fault_log), flush=True)
        swept = settle(deadline_seconds=180)
        print(f"chaos: sweep settled in {swept}s (-1: not within 180 s)", flush=True)
        report = {"command": "make chaos", "date": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args)}
        report.update(faults=fault_log, sweep_seconds=swept, **audit(seeded, journal, clock))
    finally:
        platform.stop_all()
        redis_server.stop()
        postgres.destroy()
    misses = verdict(report)
    report["bar_missed"] = misses
    out = LOG_DIR / "chaos.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"chaos: {'PASS' if not misses else 'FAIL'}; report {out}")
    for miss in misses:
        print(f"  missed: {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
