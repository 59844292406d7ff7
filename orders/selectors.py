from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncMinute

from common.errors import NotFound
from orders import drivers
from orders.models import Order, Payment, TimelineEntry


def orders_visible_to(user) -> QuerySet[Order]:
    """Staff see every order; others their own, as customer or as its driver."""
    orders = Order.objects.all()
    if user.is_staff:
        return orders
    if user.driver_id is None:  # most callers: no subquery to plan
        return orders.filter(customer=user)
    return orders.filter(Q(customer=user) | Q(pk__in=drivers.orders_driven_by(int(user.driver_id))))


def orders_with_drivers(orders: Iterable[Order]) -> list[Order]:
    """The orders with each one's `driver` read in one query for all, not one per order."""
    orders = list(orders)
    found = drivers.drivers_of(order.pk for order in orders if order.may_have_driver)
    for order in orders:
        order.driver = found.get(order.pk)
    return orders


def order_with_details(*, order_id) -> Order:
    return Order.objects.with_details().get(pk=order_id)


# --- For dispatch (the delivery app reads orders only through these) ---------------------------------


def order_for_dispatch(*, order_id) -> Order | None:
    """The order with its store (where dispatch searches from), or None when there is no such order."""
    return Order.objects.select_related("store").filter(pk=order_id).first()


def orders_awaiting_driver(*, unchanged_since: datetime | None = None) -> QuerySet[Order]:
    """Orders that need a driver and have none: paid, or given back by their driver (`Order.awaiting_driver`);
    with `unchanged_since`, only those nothing touched since then."""
    orders = Order.objects.filter(awaiting_driver=True)
    if unchanged_since is not None:
        orders = orders.filter(updated_at__lt=unchanged_since)
    return orders


def order_get_for(*, user, order_id) -> Order:
    """NotFound both for a missing order and for someone else's: existence is never revealed."""
    order = orders_visible_to(user).with_details().filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


# --- The operations dashboard ---------------------------------------------------------------------
# Every query here is bounded by an index range (a status, or the last hour of created_at/updated_at), never a
# scan of all orders: the admin's home page must stay fast with millions of rows (BENCHMARKS.md, "Dashboard").

# How far back the dashboard and the "stuck" filter look for cancelled orders with an unsettled payment.
STUCK_LOOKBACK = timedelta(days=1)
PAYMENT_FAILURES = (Order.CancelReason.PAYMENT_DECLINED, Order.CancelReason.PAYMENT_FAILED)


def orders_active_by_status() -> dict[str, int]:
    """How many orders are in each non-final status right now (every active status present, zeros included),
    with those waiting for a driver (paid, or given back by their driver) counted apart as "awaiting_driver":
    what operations act on. "paid" and "assigned" then count only orders that are not waiting."""
    rows = (
        Order.objects.filter(status__in=Order.ACTIVE)
        .values_list("status", "awaiting_driver")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {status: 0 for status in Order.Status.values if status in Order.ACTIVE} | {"awaiting_driver": 0}
    for status, awaiting, n in rows:
        counts["awaiting_driver" if awaiting else status] += n
    return counts


def orders_finished_since(*, since: datetime) -> dict[str, int]:
    """Delivered and cancelled orders whose last change was after `since`: final orders are not touched again,
    so that is when they finished. Served by the (status, updated_at) index."""
    return {
        status: Order.objects.filter(status=status, updated_at__gte=since).count()
        for status in (Order.Status.DELIVERED, Order.Status.CANCELLED)
    }


def orders_per_minute(*, since: datetime, until: datetime) -> list[dict]:
    """Orders placed per minute in [since, until), and how many of those the payment failed (declined, or
    given up on), one entry per minute, oldest first, empty minutes as zeros."""
    rows = (
        Order.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(minute=TruncMinute("created_at", tzinfo=UTC))
        .values("minute")
        .annotate(orders=Count("pk"), payment_failures=Count("pk", filter=Q(cancel_reason__in=PAYMENT_FAILURES)))
        .order_by()
    )
    by_minute = {row["minute"]: row for row in rows}
    first = since.astimezone(UTC).replace(second=0, microsecond=0)
    minutes = int((until - first).total_seconds() // 60) + 1
    series = []
    for i in range(minutes):
        minute = first + timedelta(minutes=i)
        if minute >= until:
            break
        row = by_minute.get(minute, {})
        series.append({"minute": minute, "orders": row.get("orders", 0),
                       "payment_failures": row.get("payment_failures", 0)})  # fmt: skip
    return series


# Paid = stock committed after the charge (the saga's `commit_stock`); assigned = the first driver claimed.
_DISPATCH_LATENCY = """
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds),
           count(*)
      FROM (SELECT EXTRACT(EPOCH FROM min(t.at) FILTER (WHERE t.step = %(assigned)s)
                                    - min(t.at) FILTER (WHERE t.step = %(paid)s)) AS seconds
              FROM orders_order o
              JOIN orders_timelineentry t ON t.order_id = o.id
             WHERE o.created_at >= %(since)s AND t.status = %(succeeded)s AND t.step IN (%(paid)s, %(assigned)s)
             GROUP BY o.id) per_order
     WHERE seconds IS NOT NULL
"""


def dispatch_latency(*, since: datetime) -> dict:
    """Paid -> assigned, in seconds, over the orders placed since `since` that have a driver:
    {"p50", "p95", "orders"} (p50/p95 None when there are none)."""
    with connection.cursor() as cursor:
        cursor.execute(_DISPATCH_LATENCY, {"since": since, "succeeded": TimelineEntry.Status.SUCCEEDED,
                                           "paid": TimelineEntry.Step.COMMIT_STOCK,
                                           "assigned": TimelineEntry.Step.ASSIGN_DRIVER})  # fmt: skip
        p50, p95, count = cursor.fetchone()
    return {"p50": p50, "p95": p95, "orders": count}


def orders_stuck(*, stuck_before: datetime, cancelled_since: datetime, limit: int = 10) -> dict:
    """Orders the saga should have moved but nothing touched since `stuck_before` (what the sweeper re-drives):
    reserved ones, and cancelled ones whose payment is not settled. Cancelled orders are looked at from
    `cancelled_since` on, so the query stays an index range however many cancelled orders there are.
    {"count", "oldest": [up to `limit` orders, oldest change first]}."""
    # Two queries, not one with OR: the OR across the payment join made PostgreSQL hash-join every payment.
    parts = stuck_parts(stuck_before=stuck_before, cancelled_since=cancelled_since)
    oldest = sorted((order for part in parts for order in part.order_by("updated_at")[:limit]),
                    key=lambda order: order.updated_at)  # fmt: skip
    return {"count": sum(part.count() for part in parts), "oldest": oldest[:limit]}


def orders_stuck_queryset(*, stuck_before: datetime, cancelled_since: datetime) -> QuerySet[Order]:
    reserved, unsettled = stuck_parts(stuck_before=stuck_before, cancelled_since=cancelled_since)
    return Order.objects.filter(Q(pk__in=reserved.values("pk")) | Q(pk__in=unsettled.values("pk")))


def stuck_parts(
    *, stuck_before: datetime, cancelled_since: datetime | None = None
) -> tuple[QuerySet[Order], QuerySet[Order]]:
    """The one definition of a stuck saga, for the sweeper, the dashboard and the admin: reserved, or cancelled
    with the payment unsettled, and nothing moved it since `stuck_before` (the sweeper re-driving it does not
    count: that is `saga_redriven_at`). `cancelled_since` bounds the cancelled ones for a screen."""
    reserved = Order.objects.filter(status=Order.Status.RESERVED, updated_at__lt=stuck_before)
    unsettled = Order.objects.filter(
        status=Order.Status.CANCELLED, updated_at__lt=stuck_before, payment__status__in=Payment.UNSETTLED
    )
    if cancelled_since is not None:
        unsettled = unsettled.filter(updated_at__gte=cancelled_since)
    return reserved, unsettled
