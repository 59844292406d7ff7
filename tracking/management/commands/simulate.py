"""A living system for `make run`: riders move between stores and customers, orders come in and get delivered.

Everything happens through the real HTTP API of a running `web` process (and so through the saga, dispatch,
GPS ingest and the live sockets): customers POST orders, drivers go available, stream a point per second,
fetch their assignment, accept, ride to the store, pick up, ride to the customer and deliver. Only the cast
(stores with stock, customers, drivers) is made directly, through the services, once.

    python manage.py simulate [--drivers 10] [--orders-per-minute 1] [--speedup 4] [--duration 600]

The defaults are `make run`'s demo, which must show the happy path first: the user's own order gets a rider within
seconds. So riders are many for the load and fast (`rider_utilisation` estimates the share of them busy: about
one in four; the demo used to run 5 riders at 6 orders a minute, eleven times what they could deliver, and
its queue of paid orders grew until the user's own order was cancelled `no_driver`).
"""

import asyncio
import math
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from django.core.management.base import BaseCommand
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from delivery.models import Driver
from delivery.services import drivers
from inventory import services as inventory
from inventory.models import Product, Store

EARTH_RADIUS_M = 6_371_000
STORES = [
    ("Sim Market Mitte", "Alexanderplatz 1, Berlin", 52.5219, 13.4132),
    ("Sim Market Kreuzberg", "Oranienstrasse 20, Berlin", 52.5018, 13.4180),
    ("Sim Market Prenzlauer Berg", "Kastanienallee 50, Berlin", 52.5380, 13.4100),
]
RESTOCK_BELOW = 50
DEFAULT_DRIVERS = 10
DEFAULT_ORDERS_PER_MINUTE = 1.0
DEFAULT_SPEEDUP = 4.0  # riders move four times faster than real ones: a delivery takes two or three minutes
CUSTOMER_RADIUS_KM = 2.0  # simulated customers live this close to their store
RIDER_SPEEDS = (5.0, 8.0)  # m/s, city riders (uniform)
TOKEN_REFRESH_SECONDS = 600  # access tokens live 15 min by default


def distance_m(a, b) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing(a, b) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    y = math.sin(lng2 - lng1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lng2 - lng1)
    return (math.degrees(math.atan2(y, x)) + 360) % 360


def step_towards(here, there, metres: float):
    """Move `metres` along the straight line, with a little GPS-like jitter; arrive exactly when close."""
    left = distance_m(here, there)
    if left <= metres:
        return there, True
    f = metres / left
    jitter = 0.000015
    return (here[0] + (there[0] - here[0]) * f + random.uniform(-jitter, jitter),
            here[1] + (there[1] - here[1]) * f + random.uniform(-jitter, jitter)), False  # fmt: skip


def near(point, max_km: float, rng=random):
    """A random spot within `max_km` of `point`."""
    km = rng.uniform(0.6, max_km)
    angle = rng.uniform(0, 2 * math.pi)
    return (point[0] + km / 111.0 * math.cos(angle),
            point[1] + km / (111.0 * math.cos(math.radians(point[0]))) * math.sin(angle))  # fmt: skip


def rider_utilisation(*, drivers: int, orders_per_minute: float, speedup: float, samples: int = 4000) -> float:
    """The expected share of riders busy at this load, from the simulator's own geometry: a delivery rides from
    where the last one ended to a random store, then to a customer near it, at the riders' mean speed."""
    rng = random.Random(0)
    stores = [(lat, lng) for _, _, lat, lng in STORES]
    metres = 0.0
    for _ in range(samples):
        here, store = near(rng.choice(stores), CUSTOMER_RADIUS_KM, rng), rng.choice(stores)
        metres += distance_m(here, store) + distance_m(store, near(store, CUSTOMER_RADIUS_KM, rng))
    seconds_per_delivery = metres / samples / (sum(RIDER_SPEEDS) / 2 * speedup)
    return orders_per_minute / 60 * seconds_per_delivery / drivers


@dataclass
class Actor:
    user: User
    token: str = ""
    token_at: float = 0.0

    def headers(self) -> dict:
        # time.monotonic() counts from an arbitrary point (boot, on Linux): "no token yet" must not depend on it.
        if not self.token or time.monotonic() - self.token_at > TOKEN_REFRESH_SECONDS:
            self.token, self.token_at = str(AccessToken.for_user(self.user)), time.monotonic()
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Rider(Actor):
    position: tuple = (0.0, 0.0)
    speed: float = 6.0  # m/s, a city rider
    assignment: dict | None = None
    target: tuple | None = None
    wander: tuple | None = None
    log: list = field(default_factory=list)


class Command(BaseCommand):
    help = "Simulate riders and customers through the real API of a running web process."

    def add_arguments(self, parser):
        parser.add_argument("--drivers", type=int, default=DEFAULT_DRIVERS)
        parser.add_argument("--orders-per-minute", type=float, default=DEFAULT_ORDERS_PER_MINUTE)
        parser.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until interrupted")
        parser.add_argument("--speedup", type=float, default=DEFAULT_SPEEDUP, help="riders move this many times faster")
        parser.add_argument("--tick", type=float, default=1.0, help="seconds between GPS points")
        parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **options):
        random.seed(options["seed"])
        stores = self._stores()
        riders = [Rider(user=user, position=near((s.lat, s.lng), 1.5), speed=random.uniform(*RIDER_SPEEDS))
                  for user, s in zip(self._drivers(options["drivers"]), self._cycle(stores), strict=False)]  # fmt: skip
        customers = [Actor(user=user) for user in self._customers(10)]
        self.stdout.write(f"simulating {len(riders)} riders, {options['orders_per_minute']:g} orders/min "
                          f"against {options['base_url']}")  # fmt: skip
        products = {store.pk: [p.pk for p in Product.objects.filter(store=store)] for store in stores}
        self.store_places = {str(store.pk): (store.lat, store.lng) for store in stores}
        stats = asyncio.run(self._run(options, stores, products, riders, customers))
        self.stdout.write(f"placed {stats['placed']} orders, delivered {stats['delivered']}, "
                          f"points {stats['points']}, errors {stats['errors']}")  # fmt: skip

    # --- The cast, made once through the services ------------------------------------------------

    @staticmethod
    def _cycle(items):
        while True:
            yield from items

    def _stores(self) -> list[Store]:
        stores = []
        for name, address, lat, lng in STORES:
            store = Store.objects.filter(name=name).first() or inventory.store_create(
                name=name, address=address, lat=lat, lng=lng
            )
            for sku, product_name, price in (("SIM-BREAD", "Bread", 350), ("SIM-MILK", "Milk", 129)):
                product = Product.objects.filter(store=store, sku=sku).first() or inventory.product_create(
                    store=store, sku=sku, name=product_name, price=price, currency="EUR", stock=1000
                )
                if product.available < RESTOCK_BELOW:
                    inventory.product_restock(product_id=product.pk, quantity=1000)
            stores.append(store)
        return stores

    def _drivers(self, count: int) -> list[User]:
        users = []
        for i in range(count):
            email = f"sim-rider-{i}@courier.example"
            # No password (unusable, so no hashing: the cast is ready in a moment); actors get tokens directly.
            user = User.objects.filter(email=email).first() or User.objects.create_user(
                email=email, password=None, name=f"Rider {i + 1}"
            )
            if not Driver.objects.filter(user=user).exists():
                drivers.driver_create(user=user)
            users.append(user)
        return users

    def _customers(self, count: int) -> list[User]:
        return [
            User.objects.filter(email=f"sim-customer-{i}@courier.example").first()
            or User.objects.create_user(
                email=f"sim-customer-{i}@courier.example", password=None, name=f"Customer {i + 1}"
            )  # fmt: skip
            for i in range(count)
        ]

    # --- The run, through the API ---------------------------------------------------------------------

    async def _run(self, options, stores, products, riders, customers) -> dict:
        stats = {"placed": 0, "delivered": 0, "points": 0, "errors": 0}
        deadline = time.monotonic() + options["duration"] if options["duration"] else math.inf
        async with httpx.AsyncClient(base_url=options["base_url"], timeout=10) as http:
            for rider in riders:
                await self._call(http, "POST", "/api/v1/drivers/me/status", rider, stats, json={"status": "available"})
            tasks = [asyncio.create_task(self._ride(http, rider, options, stats, deadline)) for rider in riders]
            tasks.append(asyncio.create_task(self._order_flow(http, stores, products, customers, options, stats,
                                                              deadline)))  # fmt: skip
            await asyncio.gather(*tasks)
        return stats

    async def _call(self, http, method, path, actor, stats, *, headers=None, **kwargs):
        try:
            response = await http.request(method, path, headers={**actor.headers(), **(headers or {})}, **kwargs)
        except httpx.HTTPError as error:
            stats["errors"] += 1
            self.stderr.write(f"{method} {path}: {error!r}")
            return None
        if response.status_code >= 400:
            stats["errors"] += 1
            self.stderr.write(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    async def _order_flow(self, http, stores, products, customers, options, stats, deadline):
        rate = options["orders_per_minute"] / 60.0
        while rate > 0 and time.monotonic() < deadline:
            await asyncio.sleep(min(random.expovariate(rate), max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
            store, customer = random.choice(stores), random.choice(customers)
            lat, lng = near((store.lat, store.lng), CUSTOMER_RADIUS_KM)
            body = {"store_id": str(store.pk),
                    "items": [{"product_id": random.choice(products[store.pk]), "quantity": random.randint(1, 3)}],
                    "delivery": {"address": f"Simulated street {random.randint(1, 200)}, Berlin", "lat": lat,
                                 "lng": lng}, "payment_token": "tok_ok"}  # fmt: skip
            response = await self._call(http, "POST", "/api/v1/orders", customer, stats, json=body,
                                        headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
            if response is not None and response.status_code == 201:
                stats["placed"] += 1
                self.stdout.write(f"order {response.json()['id']} placed at {store.name}")

    async def _ride(self, http, rider: Rider, options, stats, deadline):
        tick, metres_per_tick = options["tick"], rider.speed * options["tick"] * options["speedup"]
        polled = 0.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            if rider.assignment is None and started - polled >= 2 * tick:
                polled = started
                await self._take_assignment(http, rider, stats)
            arrived = self._move(rider, metres_per_tick)
            await self._post_point(http, rider, stats, heading_to=rider.target or rider.wander)
            if arrived and rider.assignment is not None:
                await self._arrive(http, rider, stats)
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - started)))

    def _move(self, rider: Rider, metres: float) -> bool:
        if rider.target is not None:
            rider.position, arrived = step_towards(rider.position, rider.target, metres)
            return arrived
        # Free riders drift slowly around, as real ones circle between orders.
        if rider.wander is None or distance_m(rider.position, rider.wander) < 20:
            rider.wander = near(rider.position, 0.8)
        rider.position, _ = step_towards(rider.position, rider.wander, metres / 3)
        return False

    async def _post_point(self, http, rider: Rider, stats, heading_to):
        point = {"lat": rider.position[0], "lng": rider.position[1], "recorded_at": datetime.now(UTC).isoformat(),
                 "speed": rider.speed, "accuracy": 8.0}  # fmt: skip
        if heading_to:
            point["heading"] = round(bearing(rider.position, heading_to), 1)
        response = await self._call(
            http, "POST", "/api/v1/drivers/me/locations", rider, stats, json={"points": [point]}
        )
        if response is not None and response.status_code == 202:
            stats["points"] += 1

    async def _take_assignment(self, http, rider: Rider, stats):
        response = await self._call(http, "GET", "/api/v1/drivers/me/assignment", rider, stats)
        if response is None or response.status_code != 200:
            return
        assignment = response.json()
        if assignment["status"] == "assigned":
            accepted = await self._call(http, "POST", f"/api/v1/assignments/{assignment['id']}/accept", rider, stats)
            if accepted is None or accepted.status_code != 200:
                return
            assignment = accepted.json()
        rider.assignment = assignment
        order = assignment["order"]
        if assignment["status"] == "picked_up":
            rider.target = (order["delivery"]["lat"], order["delivery"]["lng"])
        elif str(order["store_id"]) in self.store_places:
            rider.target = self.store_places[str(order["store_id"])]
        else:  # an order of a store the simulator did not make: ride to it all the same
            store = await asyncio.to_thread(lambda: Store.objects.values("lat", "lng").get(pk=order["store_id"]))
            rider.target = (store["lat"], store["lng"])
        self.stdout.write(f"{rider.user.name} takes order {order['id']}")

    async def _arrive(self, http, rider: Rider, stats):
        assignment = rider.assignment
        if assignment["status"] in ("assigned", "accepted"):
            response = await self._call(http, "POST", f"/api/v1/assignments/{assignment['id']}/pickup", rider, stats)
            if response is not None and response.status_code == 200:
                rider.assignment = response.json()
                order = rider.assignment["order"]
                rider.target = (order["delivery"]["lat"], order["delivery"]["lng"])
                return
        else:
            response = await self._call(http, "POST", f"/api/v1/assignments/{assignment['id']}/deliver", rider, stats)
            if response is not None and response.status_code == 200:
                stats["delivered"] += 1
                self.stdout.write(f"{rider.user.name} delivered order {assignment['order']['id']}")
        # Delivered, or the order went away under us (cancelled, reassigned): free again.
        rider.assignment, rider.target = None, None
