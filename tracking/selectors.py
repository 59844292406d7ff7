"""Reads for the sockets and pages. Sync functions: consumers call them through database_sync_to_async."""

from uuid import UUID

from delivery import hot
from delivery.models import Driver
from delivery.selectors import order_tracking
from orders.models import Order, TimelineEntry
from orders.selectors import orders_visible_to

# The customer-facing steps, in order, and the saga step whose success marks each one.
STEPS = [
    (Order.Status.RESERVED, None),
    (Order.Status.PAID, "charge_payment"),
    (Order.Status.ASSIGNED, "assign_driver"),
    (Order.Status.PICKED_UP, "pick_up"),
    (Order.Status.DELIVERED, "deliver"),
]


def order_for_watcher(*, user, order_id) -> Order | None:
    """The order if `user` may watch it (its customer, its current driver, staff); None otherwise, whether or
    not it exists: callers answer both the same way."""
    try:
        order_id = UUID(str(order_id))
    except ValueError:
        return None
    return orders_visible_to(user).select_related("store").filter(pk=order_id).first()


def order_snapshot(*, order: Order) -> dict:
    """The first message on a socket: the order's status, its driver and the driver's live position (Redis),
    plus `eta_seconds` (an addition to the contract's fields; clients ignore what they don't know)."""
    tracking = order_tracking(order=order)
    return {
        "type": "snapshot",
        "order": {"id": str(order.pk), "status": tracking["status"]},
        "driver": tracking["driver"],
        "position": tracking["position"],
        "eta_seconds": tracking["eta_seconds"],
    }


def order_page_context(*, order: Order) -> dict:
    """What the tracking page draws before its socket connects: places, and when each step happened."""
    reached = {}
    for entry in order.timeline.filter(status=TimelineEntry.Status.SUCCEEDED).order_by("at", "id"):
        reached[entry.step] = entry.at.isoformat()
    return {
        "order_id": str(order.pk),
        "status": order.status,
        "cancel_reason": order.cancel_reason,
        "store": {"name": order.store.name, "address": order.store.address, "lat": order.store.lat,
                  "lng": order.store.lng},
        "destination": {"address": order.delivery_address, "lat": order.delivery_lat, "lng": order.delivery_lng},
        "steps": [
            {"status": status, "label": status.label, "at": reached.get(step) if step else order.created_at.isoformat()}
            for status, step in STEPS
        ],
        "ws_path": f"/ws/orders/{order.pk}/",
    }  # fmt: skip


def fleet_order(order: Order) -> dict:
    return {
        "order_id": str(order.pk),
        "status": order.status,
        "driver_id": str(order.driver_id) if order.driver_id else None,
        "store": {"name": order.store.name, "lat": order.store.lat, "lng": order.store.lng},
        "destination": {"address": order.delivery_address, "lat": order.delivery_lat, "lng": order.delivery_lng},
    }


def fleet_order_get(*, order_id) -> dict | None:
    order = Order.objects.select_related("store").filter(pk=order_id).first()
    return fleet_order(order) if order else None


def fleet_snapshot() -> dict:
    """Every working driver at its live position and every order still on its way: the staff map's first frame."""
    drivers = list(Driver.objects.exclude(status=Driver.Status.OFFLINE).select_related("user").order_by("pk"))
    positions = hot.live_positions(driver.pk for driver in drivers)
    active_orders = list(Order.objects.filter(status__in=Order.ACTIVE).select_related("store").order_by("created_at"))
    order_of_driver = {order.driver_id: order.pk for order in active_orders if order.driver_id}
    return {
        "type": "snapshot",
        "drivers": [
            {
                "driver_id": str(driver.pk),
                "name": driver.user.name,
                "status": driver.status,
                "order_id": str(order_of_driver[driver.pk]) if driver.pk in order_of_driver else None,
                "position": _position(positions.get(driver.pk)),
            }
            for driver in drivers
        ],
        "orders": [fleet_order(order) for order in active_orders],
    }


def _position(position: dict | None) -> dict | None:
    if position is None:
        return None
    return {key: position[key] for key in ("lat", "lng", "recorded_at", "heading", "speed")}
