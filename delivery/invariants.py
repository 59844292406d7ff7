"""Delivery invariants, run by `manage.py check_invariants` (registered in DeliveryConfig.ready).

Some follow-ups are asynchronous (a cancelled order frees its driver in a task, a paid order's dispatch
starts in a task): those are only violations once older than GRACE."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from delivery.models import Assignment, Driver
from delivery.selectors import orders_waiting_since_before
from orders.models import Order

GRACE = timedelta(seconds=30)
ACTIVE = Q(status__in=Assignment.ACTIVE)


def no_double_booking() -> list[str]:
    active = Assignment.objects.filter(ACTIVE)
    drivers = active.values("driver_id").annotate(n=Count("pk")).filter(n__gt=1)
    orders = active.values("order_id").annotate(n=Count("pk")).filter(n__gt=1)
    return [f"driver {row['driver_id']} holds {row['n']} active assignments" for row in drivers] + [
        f"order {row['order_id']} has {row['n']} active assignments" for row in orders
    ]


def busy_iff_active_assignment() -> list[str]:
    holding = Assignment.objects.filter(ACTIVE).values("driver_id")
    idle_busy = Driver.objects.filter(status=Driver.Status.BUSY).exclude(pk__in=holding)
    working_free = Driver.objects.filter(pk__in=holding).exclude(status=Driver.Status.BUSY)
    return [f"driver {d.pk} is busy without an active assignment" for d in idle_busy] + [
        f"driver {d.pk} is {d.status} but holds an active assignment" for d in working_free
    ]


def assignments_match_orders() -> list[str]:
    """An order is held by a driver (assigned and not awaiting one, or picked up) exactly while it has an active
    assignment, and a delivered order has a delivered one. Who drives is the assignment's alone to say."""
    violations = []
    stale = timezone.now() - GRACE
    for a in Assignment.objects.filter(ACTIVE).select_related("order"):
        order = a.order
        if order.status == Order.Status.CANCELLED:
            if order.updated_at < stale:
                violations.append(f"order {order.pk} is cancelled but assignment {a.pk} still holds its driver")
        elif order.status not in (Order.Status.ASSIGNED, Order.Status.PICKED_UP) or order.awaiting_driver:
            violations.append(f"assignment {a.pk} ({a.status}, driver {a.driver_id}) but order is {order.status}"
                              f"{' and awaits a driver' if order.awaiting_driver else ''}")  # fmt: skip
        elif (a.status == Assignment.Status.PICKED_UP) != (order.status == Order.Status.PICKED_UP):
            violations.append(f"assignment {a.pk} is {a.status} but order {order.pk} is {order.status}")
    held = Order.objects.filter(status__in=[Order.Status.ASSIGNED, Order.Status.PICKED_UP], awaiting_driver=False)
    for (order_id,) in held.exclude(pk__in=Assignment.objects.filter(ACTIVE).values("order_id")).values_list("pk"):
        violations.append(f"order {order_id} is held by a driver without an active assignment")
    delivered = Assignment.objects.filter(status=Assignment.Status.DELIVERED).values("order_id")
    for (order_id,) in Order.objects.filter(status=Order.Status.DELIVERED).exclude(pk__in=delivered).values_list("pk"):
        violations.append(f"order {order_id} is delivered without a delivered assignment")
    return violations


def paid_orders_are_dispatched() -> list[str]:
    """No order waits for a driver past the dispatch timeout: by then it has a driver or is cancelled `no_driver`.

    Counted from when it started waiting, whether or not a dispatch task has reached it yet: behind a backlog the
    first attempt comes late, and an order whose tasks were lost is re-driven, or given up, by the dispatch sweep."""
    give_up_by = timezone.now() - timedelta(seconds=settings.DISPATCH_TIMEOUT_SECONDS) - GRACE
    return [f"order {order_id} has waited for a driver past the dispatch timeout"
            for order_id in orders_waiting_since_before(give_up_by)]  # fmt: skip
