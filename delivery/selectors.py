import math
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Count, OuterRef, QuerySet, Subquery

from delivery import hot
from delivery.live import POSITION_FIELDS
from delivery.models import Assignment, DispatchRequest, Driver, DriverPosition
from orders.drivers import OrderDriver
from orders.models import Order
from orders.selectors import orders_awaiting_driver

EARTH_RADIUS_M = 6_371_000
# Below this a rider is waiting at a light or a door, not travelling: the default speed predicts better.
MIN_TRAVEL_SPEED_MPS = 1.0
# The order statuses in which its rider's live position is the order's business.
ON_THE_WAY = (Order.Status.ASSIGNED, Order.Status.PICKED_UP)


# Raw SQL: the GPS ingest path runs this on every request, and compiling the equivalent ORM query
# (annotate + Subquery + values) cost more than running it.
# A driver with its active order (DRIVER_ROW_FIELDS), of an active user; the caller adds the WHERE.
DRIVER_ROW_SQL = """
    SELECT d.id, u.name, d.status,
           (SELECT a.order_id FROM delivery_assignment a
             WHERE a.driver_id = d.id AND a.status IN ('assigned', 'accepted', 'picked_up') LIMIT 1) AS order_id
      FROM delivery_driver d JOIN accounts_user u ON u.id = d.user_id AND u.is_active
"""
DRIVER_ROW_FIELDS = ("id", "name", "status", "order_id")


def order_drivers(order_ids: list[UUID]) -> dict[UUID, OrderDriver]:
    """Who drives each order (installed as `orders.drivers.drivers_of`): the driver of its newest assignment,
    unless that one was declined (the order then awaits the next). One delivered, or cancelled with its order,
    stays the order's driver; one staff took the order from has a newer assignment after it."""
    newest = (
        Assignment.objects.filter(order_id__in=order_ids).order_by("order_id", "-assigned_at").distinct("order_id")
        .values_list("order_id", "status", "driver_id", "driver__user__name")
    )  # fmt: skip
    return {order_id: OrderDriver(id=driver_id, name=name)
            for order_id, status, driver_id, name in newest if status != Assignment.Status.DECLINED}  # fmt: skip


def orders_driven_by(driver_id: int) -> QuerySet:
    """The ids of the orders `driver_id` drives or drove, by the rule of `order_drivers` (installed as
    `orders.drivers.orders_driven_by`): a subquery, for the orders a driver may see."""
    newest = Assignment.objects.filter(order_id=OuterRef("order_id")).order_by("-assigned_at").values("pk")[:1]
    driven = Assignment.objects.filter(driver_id=driver_id, pk=Subquery(newest))
    return driven.exclude(status=Assignment.Status.DECLINED).values("order_id")


def driver_for_user(*, user_id) -> dict | None:
    """The caller's driver profile with its active order, in one query: {id, name, status, order_id} or None."""
    with connection.cursor() as cursor:
        cursor.execute(DRIVER_ROW_SQL + " WHERE d.user_id = %s", [user_id])
        row = cursor.fetchone()
    return dict(zip(DRIVER_ROW_FIELDS, row, strict=True)) if row else None


def orders_waiting_since_before(moment: datetime, *, limit: int | None = None) -> dict:
    """Orders awaiting a driver since before `moment`, {order_id: since}: since their request's `waiting_since`
    (they waited, or went back to dispatch), else since their last change (paid, and no attempt reached them yet)."""
    waiting = DispatchRequest.objects.filter(status=DispatchRequest.Status.WAITING)
    requested = waiting.filter(waiting_since__lt=moment).values_list("order_id", "waiting_since")
    never_tried = (
        orders_awaiting_driver(unchanged_since=moment).exclude(pk__in=waiting.values("order_id"))
        .values_list("pk", "updated_at")
    )  # fmt: skip
    if limit is not None:
        requested, never_tried = requested[:limit], never_tried[:limit]
    return {**dict(requested), **dict(never_tried)}


def driver_live_position(*, driver_id) -> dict | None:
    """The driver's live position from Redis (None once it expired): {lat, lng, recorded_at, heading, speed}."""
    position = hot.live_position(driver_id)
    return _public(position) if position else None


def _public(position: dict) -> dict:
    """A position cut to the contract's fields (hot state also keeps `avg_speed` and more)."""
    return {field: position[field] for field in POSITION_FIELDS}


def active_assignment(*, driver_id) -> Assignment | None:
    return Assignment.objects.filter(driver_id=driver_id, status__in=Assignment.ACTIVE).first()


def last_known_positions(driver_ids) -> dict:
    """Per driver: the live position if fresh, else the newest point in history (None if it never sent one)."""
    positions = {driver_id: _public(p) if p else None for driver_id, p in hot.live_positions(driver_ids).items()}
    missing = [driver_id for driver_id, position in positions.items() if position is None]
    if missing:
        rows = (
            DriverPosition.objects.filter(driver_id__in=missing)
            .order_by("driver_id", "-recorded_at")
            .distinct("driver_id")
            .values("driver_id", *POSITION_FIELDS)
        )
        for row in rows:
            positions[row.pop("driver_id")] = {**row, "recorded_at": hot.rfc3339(row["recorded_at"])}
    return positions


def driver_recent_track(*, driver_id, limit: int = 100) -> list[DriverPosition]:
    return list(DriverPosition.objects.filter(driver_id=driver_id).order_by("-recorded_at")[:limit])


def order_tracking(*, order: Order) -> dict:
    """What a watcher of the order sees: its driver, the live position and an ETA.

    The rider's position is shown only while the rider is on this order (assigned or picked up): once the
    order is delivered or cancelled the rider moves on to other jobs, and its watchers must not follow.

    ETA: straight-line distance (driver → store → customer before pickup, driver → customer after) over the
    driver's recent average speed, or DISPATCH_DEFAULT_SPEED_MPS when it is unknown or the rider is standing."""
    driver = None
    position = None
    eta = None
    if order.driver:
        driver = {"id": str(order.driver.id), "name": order.driver.name}
        live = hot.live_position(order.driver.id) if order.status in ON_THE_WAY else None
        if live:
            position = _public(live)
            eta = _eta_seconds(order, live)
    return {"order_id": str(order.pk), "status": order.status, "driver": driver, "position": position,
            "eta_seconds": eta}  # fmt: skip


def _eta_seconds(order: Order, live: dict) -> int:
    here = (live["lat"], live["lng"])
    customer = (order.delivery_lat, order.delivery_lng)
    if order.status == Order.Status.PICKED_UP:
        metres = distance_m(here, customer)
    else:
        store = (order.store.lat, order.store.lng)
        metres = distance_m(here, store) + distance_m(store, customer)
    speed = live.get("avg_speed") or 0.0
    if speed < MIN_TRAVEL_SPEED_MPS:
        speed = settings.DISPATCH_DEFAULT_SPEED_MPS
    return round(metres / speed)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in metres."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def drivers_by_status() -> dict[str, int]:
    """How many drivers are offline, available and busy right now (every status present, zeros included)."""
    counts = dict(Driver.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return {status: counts.get(status, 0) for status in Driver.Status.values}


def drivers_available_near(*, lat: float, lng: float, limit: int = 10) -> list[dict]:
    """Available drivers with a fresh position within the dispatch radius, nearest first (what dispatch would
    pick from): [{"id", "name", "distance_km"}]. For staff choosing who takes an order over."""
    nearest = hot.nearest_candidates(lat=lat, lng=lng, radius_km=settings.DISPATCH_RADIUS_KM, count=limit)
    names = dict(
        Driver.objects.filter(pk__in=[driver_id for driver_id, _ in nearest], status=Driver.Status.AVAILABLE)
        .values_list("pk", "user__name")
    )  # fmt: skip
    return [
        {"id": driver_id, "name": names[driver_id], "distance_km": km}
        for driver_id, km in nearest
        if driver_id in names
    ]
