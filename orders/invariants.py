"""Money and stock follow each order's status.

Checked on Courier's own records (payments, the timeline, reservations), so the check holds on any gateway.
Where the gateway offers its books (`PaymentGateway.books`, e.g. the sandbox gateway), they are reconciled
too: that is what catches a double charge, which Courier's records cannot show by construction."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.utils import timezone

from inventory.models import Reservation
from orders.gateways import get_gateway
from orders.models import Order, Payment, TimelineEntry

CHARGED_STATUSES = [Order.Status.PAID, Order.Status.ASSIGNED, Order.Status.PICKED_UP, Order.Status.DELIVERED]


def money_and_stock_follow_status() -> list[str]:
    return (
        _charged_orders_hold_their_payment()
        + _cancelled_orders_are_settled()
        + _stock_follows_status()
        + (_gateway_books_agree())
    )


def _charged_orders_hold_their_payment() -> list[str]:
    violations = []
    charged_steps = Count(
        "timeline",
        filter=Q(timeline__step=TimelineEntry.Step.CHARGE_PAYMENT, timeline__status=TimelineEntry.Status.SUCCEEDED),
    )
    orders = Order.objects.filter(status__in=CHARGED_STATUSES).select_related("payment")
    for order in orders.annotate(charged_steps=charged_steps):
        payment = getattr(order, "payment", None)
        if payment is None or payment.status != Payment.Status.SUCCEEDED:
            violations.append(f"order {order.pk} is {order.status} but its payment is not succeeded")
        elif (payment.amount, payment.currency, payment.refunded_amount) != (order.total, order.currency, 0):
            violations.append(
                f"order {order.pk} is {order.status} but its payment is {payment.amount} {payment.currency} "
                f"(refunded {payment.refunded_amount}), not {order.total} {order.currency}"
            )
        if not order.charged_steps:
            violations.append(f"order {order.pk} is {order.status} without a successful charge in its timeline")
    return violations


def _cancelled_orders_are_settled() -> list[str]:
    # Compensation runs right after a cancellation; only a stale unsettled one is a violation.
    grace = timezone.now() - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS * 2)
    cancelled = Order.objects.filter(status=Order.Status.CANCELLED)
    violations = [
        f"order {order.pk} is cancelled but its payment is still {order.payment.status}"
        for order in cancelled.filter(updated_at__lt=grace, payment__status__in=Payment.UNSETTLED).select_related(
            "payment"
        )
    ]
    partly = Payment.objects.filter(order__in=cancelled, status=Payment.Status.REFUNDED).exclude(
        refunded_amount=F("amount")
    )
    violations += [
        f"order {p.order_id} is cancelled but only {p.refunded_amount} of {p.amount} was refunded" for p in partly
    ]
    return violations


def _stock_follows_status() -> list[str]:
    cancelled_ids = Order.objects.filter(status=Order.Status.CANCELLED).values("pk")
    violations = [
        f"order {r.order_id} is cancelled but still {r.state} product {r.product_id}"
        for r in Reservation.objects.filter(
            order_id__in=cancelled_ids, state__in=[Reservation.State.HELD, Reservation.State.COMMITTED]
        )
    ]
    stale_holds = Reservation.objects.filter(
        state=Reservation.State.HELD, order_id__in=Order.objects.exclude(status=Order.Status.RESERVED).values("pk")
    )
    violations += [f"order {r.order_id} is past `reserved` but still holds product {r.product_id}" for r in stale_holds]
    return violations


def _gateway_books_agree() -> list[str]:
    books = get_gateway().books()
    if books is None:
        return []
    violations = [f"order {ref}: charged {row.charges} times" for ref, row in books.items() if row.charges > 1]
    for order in Order.objects.filter(status__in=CHARGED_STATUSES).only("pk", "status", "total"):
        row = books.get(str(order.pk))
        if row is None or row.charges != 1 or row.charged != order.total:
            violations.append(f"order {order.pk} is {order.status} without exactly one charge of {order.total} "
                              "in the gateway's books")  # fmt: skip
    settled = Order.objects.filter(status=Order.Status.CANCELLED).exclude(payment__status__in=Payment.UNSETTLED)
    for order_id in settled.values_list("pk", flat=True):
        row = books.get(str(order_id))
        if row and row.charged != row.refunded:
            violations.append(f"order {order_id} is cancelled but {row.charged - row.refunded} stays charged")
    return violations
