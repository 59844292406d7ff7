from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from inventory.models import Reservation
from orders.models import GatewayLedgerEntry, Order, Payment

CHARGED_STATUSES = [Order.Status.PAID, Order.Status.ASSIGNED, Order.Status.PICKED_UP, Order.Status.DELIVERED]


def _gateway_books() -> dict[str, dict]:
    """Per order id: number of charges, amount charged and amount refunded, as the gateway booked them."""
    rows = GatewayLedgerEntry.objects.values("reference").annotate(
        charges=Count("pk", filter=Q(kind="charge")),
        charged=Sum("amount", filter=Q(kind="charge"), default=0),
        refunded=Sum("amount", filter=Q(kind="refund"), default=0),
    )
    return {row["reference"]: row for row in rows}


def money_and_stock_follow_status() -> list[str]:
    books = _gateway_books()
    violations = []
    for reference, row in books.items():
        if row["charges"] > 1:
            violations.append(f"order {reference}: charged {row['charges']} times")
    for order in Order.objects.filter(status__in=CHARGED_STATUSES).select_related("payment"):
        row = books.get(str(order.pk))
        payment = getattr(order, "payment", None)
        if row is None or row["charges"] != 1 or row["charged"] != order.total:
            violations.append(f"order {order.pk} is {order.status} without exactly one charge of {order.total}")
        if payment is None or payment.status != Payment.Status.SUCCEEDED:
            violations.append(f"order {order.pk} is {order.status} but its payment is not succeeded")

    # Compensation runs right after a cancellation; only a stale unsettled one is a violation.
    grace = timezone.now() - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS * 2)
    cancelled = Order.objects.filter(status=Order.Status.CANCELLED)
    for order in cancelled.filter(updated_at__lt=grace, payment__status__in=Payment.UNSETTLED):
        violations.append(f"order {order.pk} is cancelled but its payment is still {order.payment.status}")
    for order in cancelled.select_related("payment"):
        row = books.get(str(order.pk))
        payment = getattr(order, "payment", None)
        if row and row["charged"] != row["refunded"] and payment and payment.status not in Payment.UNSETTLED:
            violations.append(f"order {order.pk} is cancelled but {row['charged'] - row['refunded']} stays charged")
    cancelled_ids = cancelled.values("pk")
    for reservation in Reservation.objects.filter(
        order_id__in=cancelled_ids, state__in=[Reservation.State.HELD, Reservation.State.COMMITTED]
    ):
        violations.append(
            f"order {reservation.order_id} is cancelled but still {reservation.state} product {reservation.product_id}"
        )
    stale_holds = Reservation.objects.filter(
        state=Reservation.State.HELD, order_id__in=Order.objects.exclude(status=Order.Status.RESERVED).values("pk")
    )
    violations += [f"order {r.order_id} is past `reserved` but still holds product {r.product_id}" for r in stale_holds]
    return violations
