"""Dispatch latency: `make bench-dispatch`.

Dedicated database (BENCH_DATABASE_URL, default courier_bench_dispatch) and Redis db (BENCH_REDIS_URL, default 11).
DRIVERS available drivers with live positions scattered within ~5 km of one store; orders placed over HTTP
(`POST /api/v1/orders`) against the Procfile's `web` and `worker` lines, which run the payment saga and dispatch:
first STEADY_ORDERS at STEADY_RATE per second, then a burst of ORDERS at once (async httpx, 50 in flight).
Reported from the orders' timelines (one database clock): `paid → assigned` (commit_stock row to assign_driver
row) and `created → assigned`, p50/p95/max. Baseline in the same run: one dispatch attempt timed in this process
(`dispatch.order_dispatch` on a paid order, no queue), so the ratio shows what queueing adds.
"""

import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # this script's folder would shadow the project's `common` package
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/courier_bench_dispatch")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")

import httpx  # noqa: E402

from bench import common as kit  # noqa: E402

DRIVERS = int(os.environ.get("DRIVERS", "500"))
ORDERS = int(os.environ.get("ORDERS", "100"))
STEADY_ORDERS = int(os.environ.get("STEADY_ORDERS", "30"))
STEADY_RATE = float(os.environ.get("STEADY_RATE", "5"))
STORE = (52.5219, 13.4132)


def seed():
    from accounts.models import User
    from delivery.models import Driver
    from delivery.services import ingest
    from inventory.models import Product, Store

    store = Store.objects.create(name="Bench store", address="Alexanderplatz 1", lat=STORE[0], lng=STORE[1])
    products = Product.objects.bulk_create(
        Product(store=store, sku=f"B-{i}", name=f"Bench {i}", price=990, currency="EUR", on_hand=1_000_000)
        for i in range(20)
    )
    riders = User.objects.bulk_create(
        User(email=f"rider{i}@bench.example", name=f"Rider {i}", password="!") for i in range(DRIVERS)
    )
    Driver.objects.bulk_create(Driver(user=user, status=Driver.Status.AVAILABLE) for user in riders)
    rng = random.Random(7)
    for user in riders:  # through the real ingest path: history, live hash, GEO set
        lat, lng = STORE[0] + rng.uniform(-0.045, 0.045), STORE[1] + rng.uniform(-0.07, 0.07)
        ingest.driver_locations_ingest(
            user_id=user.pk,
            driver_id=user.driver.pk,
            points=[{"lat": lat, "lng": lng, "recorded_at": _now(), "heading": None, "speed": None, "accuracy": None}],
        )
    customers = User.objects.bulk_create(
        User(email=f"customer{i}@bench.example", name=f"Customer {i}", password="!") for i in range(50)
    )
    return store, products, [kit.access_token(user) for user in customers]


def _now():
    from django.utils import timezone

    return timezone.now()


def baseline_dispatch_ms(store, products) -> float:
    """One dispatch attempt in-process (no broker, no worker): the floor a queued dispatch adds to."""
    from accounts.models import User
    from delivery.services import dispatch
    from orders import services as orders

    customer = User.objects.create(email="baseline@bench.example", name="Baseline", password="!")
    timings = []
    for _ in range(5):
        order = orders.order_create(
            customer=customer, store=store, lines=[orders.LineInput(product=products[0], quantity=1)],
            delivery_address="Torstr. 1", delivery_lat=52.53, delivery_lng=13.40, payment_token="tok_ok",
        )  # fmt: skip
        while orders.order_saga_advance(order_id=order.pk) is not None:
            pass
        began = time.perf_counter()
        dispatch.order_dispatch(order_id=order.pk)
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings)


def wait_assigned(order_ids, timeout: float = 45.0) -> tuple[list, float]:
    from orders.models import Order

    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if not Order.objects.filter(pk__in=order_ids).exclude(status="assigned").exists():
            break
        time.sleep(0.2)
    return order_ids, time.monotonic() - began


def summarize(phase: str, waited: tuple[list, float], base_ms: float) -> list[dict]:
    from orders.models import Order

    order_ids, settled = waited
    assigned = Order.objects.filter(pk__in=order_ids, status="assigned").count()
    rows = []
    for name, values in latencies(order_ids).items():
        rows.append({"phase": phase, "interval": name, "orders": len(order_ids), "assigned": assigned,
                     "p50 ms": kit.percentile(values, 50), "p95 ms": kit.percentile(values, 95), "max ms": max(values),
                     "p50 vs in-process": kit.percentile(values, 50) / base_ms, "settled s": settled})  # fmt: skip
    return rows


def latencies(order_ids) -> dict:
    from orders.models import Order, TimelineEntry

    rows = TimelineEntry.objects.filter(order_id__in=order_ids, status="succeeded", step__in=["commit_stock",
                                        "assign_driver"]).values_list("order_id", "step", "at")  # fmt: skip
    at = {}
    for order_id, step, moment in rows:
        at.setdefault(order_id, {})[step] = moment
    created = dict(Order.objects.filter(pk__in=order_ids).values_list("pk", "created_at"))
    paid_to_assigned, created_to_assigned = [], []
    for order_id, steps in at.items():
        if "assign_driver" in steps and "commit_stock" in steps:
            paid_to_assigned.append((steps["assign_driver"] - steps["commit_stock"]).total_seconds() * 1000)
            created_to_assigned.append((steps["assign_driver"] - created[order_id]).total_seconds() * 1000)
    return {"paid → assigned": paid_to_assigned, "created → assigned": created_to_assigned}


def main() -> None:
    env = kit.configure()
    env["POSITION_TTL_SECONDS"] = os.environ["POSITION_TTL_SECONDS"] = "600"  # seeded positions outlive the run
    kit.prepare_database()
    store, products, tokens = seed()
    base_ms = baseline_dispatch_ms(store, products)
    kit.heading(
        f"Dispatch: {DRIVERS} available drivers, {STEADY_ORDERS} steady orders, then a burst of {ORDERS}; "
        f"{kit.machine()}"
    )
    rng = random.Random(11)

    def order_request(i: int) -> dict:
        return {
            "method": "POST", "path": "/api/v1/orders",
            "headers": {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Idempotency-Key": str(uuid.uuid4())},
            "json": {"store_id": str(store.pk), "items": [{"product_id": str(rng.choice(products).pk), "quantity": 1}],
                     "delivery": {"address": "Torstr. 1", "lat": 52.53, "lng": 13.40}, "payment_token": "tok_ok"},
        }  # fmt: skip

    rows = []
    with kit.stack(env, "web", "worker", "dispatch", "relay") as processes:
        base_url = f"http://127.0.0.1:{processes['web'].port}"
        # Warm-up (not measured): the worker's first tasks open connections and import lazily.
        warm = kit.burst([order_request(i) for i in range(4)], base_url=base_url, concurrency=4)
        wait_assigned([body["id"] for _, _, body in warm])
        # Steady: one order every 1/STEADY_RATE s; what a single order waits for a driver.
        steady_ids = []
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for i in range(STEADY_ORDERS):
                request = order_request(i)
                answer = client.post(request["path"], headers=request["headers"], json=request["json"])
                steady_ids.append(answer.json()["id"])
                time.sleep(1 / STEADY_RATE)
        rows += summarize(f"steady {STEADY_RATE:g}/s", wait_assigned(steady_ids), base_ms)
        # Burst: ORDERS at once, 50 in flight; queueing behind the burst's own sagas dominates.
        answers = kit.burst([order_request(i) for i in range(ORDERS)], base_url=base_url, concurrency=50)
        burst_ids = [body["id"] for status, _, body in answers if status == 201]
        rows += summarize(f"burst of {len(burst_ids)}", wait_assigned(burst_ids), base_ms)
    print(f"baseline: one in-process dispatch attempt, median of 5: {base_ms:.1f} ms")
    print(kit.table(rows, ["phase", "interval", "orders", "assigned", "p50 ms", "p95 ms", "max ms", "p50 vs in-process",
                           "settled s"]))  # fmt: skip
    from common import invariants

    broken = {name: v for name, v in invariants.run_all().items() if v and name.startswith("delivery")}
    print(f"delivery invariants: {broken if broken else 'ok'}")
    if broken:
        raise SystemExit("invariants violated")


if __name__ == "__main__":
    main()
