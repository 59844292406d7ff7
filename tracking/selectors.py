"""Reads for the sockets and pages. Sync functions: consumers call them through database_sync_to_async."""

from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings

from common.money import money
from delivery import hot, live
from delivery.models import Driver
from delivery.selectors import drivers_by_status, order_tracking
from orders import selectors as order_selectors
from orders.models import Order, Payment, TimelineEntry
from orders.selectors import orders_visible_to, orders_with_drivers

# The customer-facing steps, in order: the saga step whose success marks each one, and what the customer reads.
STEPS = [
    (Order.Status.RESERVED, None, "Order placed"),
    (Order.Status.PAID, TimelineEntry.Step.CHARGE_PAYMENT, "Paid"),
    (Order.Status.ASSIGNED, TimelineEntry.Step.ASSIGN_DRIVER, "Rider assigned"),
    (Order.Status.PICKED_UP, TimelineEntry.Step.PICK_UP, "Picked up"),
    (Order.Status.DELIVERED, TimelineEntry.Step.DELIVER, "Delivered"),
]
STATUS_LABELS = {status: label for status, _, label in STEPS} | {Order.Status.CANCELLED: "Cancelled"}

# One sentence per status, as the customer would say it; "{rider}" is the rider's name when there is one.
STATUS_LINES = {
    Order.Status.RESERVED: "We have your order and are taking the payment.",
    Order.Status.PAID: "Paid. We are finding a rider near the store.",
    Order.Status.ASSIGNED: "{rider} is on the way to the store to pick up your order.",
    Order.Status.PICKED_UP: "{rider} has your order and is on the way to you.",
    Order.Status.DELIVERED: "Delivered. Enjoy!",
}
CANCEL_REASONS = {
    Order.CancelReason.PAYMENT_DECLINED: "your payment was declined",
    Order.CancelReason.PAYMENT_FAILED: "we could not reach the payment provider",
    Order.CancelReason.NO_DRIVER: "no rider was free near the store",
    Order.CancelReason.CUSTOMER: "you cancelled it",
    Order.CancelReason.STAFF: "our team cancelled it",
}


def order_for_watcher(*, user, order_id) -> Order | None:
    """The order if `user` may watch it (its customer, its current driver, staff); None otherwise, whether or
    not it exists: callers answer both the same way."""
    try:
        order_id = UUID(str(order_id))
    except ValueError:
        return None
    return orders_visible_to(user).select_related("store").filter(pk=order_id).first()


def order_for_page(*, user, order_id) -> Order | None:
    """`order_for_watcher` with what the tracking page prints: items, payment, rider."""
    order = order_for_watcher(user=user, order_id=order_id)
    if order is None:
        return None
    return Order.objects.select_related("store", "payment").prefetch_related("lines").get(pk=order.pk)


def order_snapshot(*, order: Order) -> dict:
    """The first message on a socket: the order's status, its driver and the driver's live position (Redis)."""
    tracking = order_tracking(order=order)
    return live.order_snapshot_frame(order_id=order.pk, status=tracking["status"], driver=tracking["driver"],
                                     position=tracking["position"], eta_seconds=tracking["eta_seconds"])  # fmt: skip


def order_number(order: Order) -> str:
    """What a person reads out on the phone: the id's first 8 characters (the full id is in the page's URL)."""
    return str(order.pk)[:8].upper()


def order_items(order: Order) -> list[dict]:
    return [
        {"name": line.name, "quantity": line.quantity, "price": money(line.unit_price * line.quantity, order.currency)}
        for line in order.lines.all()
    ]


def order_items_summary(order: Order) -> str:
    """ "2 × Margherita pizza, 1 × Lemonade": what tells one order from another in a list."""
    return ", ".join(f"{line.quantity} × {line.name}" for line in order.lines.all())


def order_money_line(order: Order) -> str | None:
    """For a cancelled order: what happened to the money, from the payment's own record."""
    payment = getattr(order, "payment", None)
    if order.status != Order.Status.CANCELLED or payment is None:
        return None
    Paid = Payment.Status
    if payment.refunded_amount:
        return f"{money(payment.refunded_amount, payment.currency)} refunded to your payment method."
    if payment.status in (Paid.DECLINED, Paid.VOIDED, Paid.PENDING):
        return "You were not charged."
    if payment.status == Paid.FAILED:
        return "No payment went through; if one did after all, it is refunded automatically."
    return f"Your refund of {money(payment.amount, payment.currency)} is on its way."


def order_status_line(order: Order) -> str:
    if order.status == Order.Status.CANCELLED:
        reason = CANCEL_REASONS.get(order.cancel_reason, "it could not be completed")
        return f"Cancelled: {reason}."
    if order.awaiting_driver:  # paid, or given back by its rider: a new one is being found
        return STATUS_LINES[Order.Status.PAID]
    rider = order.driver.name if order.driver else "Your rider"
    return STATUS_LINES[order.status].format(rider=rider)


def customer_orders(*, user, limit: int = 50) -> list[dict]:
    """The customer's own orders, newest first, each with what tells it apart: number, date, items, total."""
    orders = (
        Order.objects.filter(customer=user).select_related("store").prefetch_related("lines").order_by("-created_at")
    )
    return [
        {"order": order, "number": order_number(order), "items": order_items_summary(order),
         "total": money(order.total, order.currency), "status": STATUS_LABELS[order.status]}
        for order in orders[:limit]
    ]  # fmt: skip


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
            {"status": status, "label": label, "at": reached.get(step) if step else order.created_at.isoformat()}
            for status, step, label in STEPS
        ],
        "ws_path": f"/ws/orders/{order.pk}/",
        "rider": order.driver.name if order.driver else None,
        # The cancellation is news before the refund is (cancel, then refund): the page looks again shortly.
        "refund_pending": order.status == Order.Status.CANCELLED
        and getattr(order, "payment", None) is not None
        and order.payment.status in Payment.UNSETTLED,
        "status_lines": STATUS_LINES,
        "labels": STATUS_LABELS,
    }  # fmt: skip


def fleet_order(order: Order) -> dict:
    return live.fleet_order(
        order_id=order.pk, status=order.status, driver_id=order.driver.id if order.driver else None,
        store={"name": order.store.name, "lat": order.store.lat, "lng": order.store.lng},
        destination={"address": order.delivery_address, "lat": order.delivery_lat, "lng": order.delivery_lng},
    )  # fmt: skip


def fleet_order_get(*, order_id) -> dict | None:
    order = Order.objects.select_related("store").filter(pk=order_id).first()
    return fleet_order(order) if order else None


def fleet_snapshot() -> dict:
    """Every working driver at its live position and every order still on its way: the staff map's first frame."""
    drivers = list(Driver.objects.exclude(status=Driver.Status.OFFLINE).select_related("user").order_by("pk"))
    positions = hot.live_positions(driver.pk for driver in drivers)
    active_orders = orders_with_drivers(
        Order.objects.filter(status__in=Order.ACTIVE).select_related("store").order_by("created_at")
    )
    order_of_driver = {order.driver.id: order.pk for order in active_orders if order.driver}
    return {
        "type": "snapshot",
        "drivers": [
            live.fleet_driver(
                driver_id=driver.pk,
                name=driver.user.name,
                status=driver.status,
                order_id=order_of_driver.get(driver.pk),
                position=positions.get(driver.pk),
            )
            for driver in drivers
        ],  # fmt: skip
        "orders": [fleet_order(order) for order in active_orders],
    }


def operations_dashboard(*, now: datetime) -> dict:
    """The admin's home: what is happening now and over the last hour. Each figure is its own indexed query
    (orders.selectors / delivery.selectors); see BENCHMARKS.md for their plans on a million orders."""
    this_minute = now.replace(second=0, microsecond=0)
    hour_ago = now - timedelta(hours=1)
    per_minute = order_selectors.orders_per_minute(since=this_minute - timedelta(minutes=59), until=now)
    return {
        "now": now,
        "active": order_selectors.orders_active_by_status(),
        "finished": order_selectors.orders_finished_since(since=hour_ago),
        "per_minute": per_minute,
        "orders_last_hour": sum(minute["orders"] for minute in per_minute),
        "payment_failures_last_hour": sum(minute["payment_failures"] for minute in per_minute),
        "dispatch": order_selectors.dispatch_latency(since=hour_ago),
        "drivers": drivers_by_status(),
        "stuck": order_selectors.orders_stuck(
            stuck_before=now - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS),
            cancelled_since=now - order_selectors.STUCK_LOOKBACK,
        ),
        "stuck_after_seconds": settings.SAGA_STUCK_AFTER_SECONDS,
    }
