"""Order writes and the payment saga.

Rules: no network call inside a transaction; every status change goes through `_transition`, which
checks it against Order.TRANSITIONS and records `order.status_changed` in the outbox in the same
transaction; every step and compensation leaves a timeline row and is safe to run twice.
"""

import random
import time
from dataclasses import dataclass
from uuid import UUID, uuid4

from django.conf import settings
from django.db import transaction
from django.db.models import F, prefetch_related_objects
from django.utils import timezone

from common.problems import Conflict
from inventory import services as inventory
from inventory.models import Product, Store
from orders import events
from orders.gateways import GatewayError, get_gateway, guarded
from orders.models import Order, OrderLine, Payment, TimelineEntry

Status = Order.Status
Step = TimelineEntry.Status


class InvalidTransition(Conflict):
    default_code = "invalid_transition"


class NotCancellable(Conflict):
    default_code = "not_cancellable"


@dataclass(frozen=True)
class LineInput:
    product: Product
    quantity: int


def timeline_add(
    *, order_id: UUID, step: str, status: str, attempt: int = 1, detail: str = "", duration_ms: float | None = None
) -> TimelineEntry:
    return TimelineEntry.objects.create(
        order_id=order_id, step=step, status=status, attempt=attempt, detail=detail[:500], duration_ms=duration_ms
    )


def _transition(order: Order, to: str, *, cancel_reason: str | None = None, extra_fields: tuple = ()) -> None:
    if to not in Order.TRANSITIONS[order.status]:
        raise InvalidTransition(f"An order cannot go from {order.status} to {to}.")
    order.status, order.cancel_reason = to, cancel_reason
    order.save(update_fields=["status", "cancel_reason", "updated_at", *extra_fields])
    events.outbox_record(
        topic=events.ORDER_STATUS_CHANGED,
        payload={
            "order_id": str(order.pk),
            "status": order.status,
            "cancel_reason": order.cancel_reason,
            "driver_id": order.driver_id,
            "at": order.updated_at.isoformat(),
        },
    )


def _locked(order_id: UUID) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


# --- Placing an order ---------------------------------------------------------------------------


def order_create(
    *,
    customer,
    store: Store,
    lines: list[LineInput],
    delivery_address: str,
    delivery_lat: float,
    delivery_lng: float,
    payment_token: str,
) -> Order:
    """Hold stock for every line and record the order, all in one short transaction (OutOfStock: nothing)."""
    order = Order(
        id=uuid4(), customer=customer, store=store, status=Status.RESERVED,
        total=sum(line.product.price * line.quantity for line in lines), currency=lines[0].product.currency,
        delivery_address=delivery_address, delivery_lat=delivery_lat, delivery_lng=delivery_lng,
        payment_token=payment_token,
    )  # fmt: skip
    with transaction.atomic():
        order.save(force_insert=True)
        OrderLine.objects.bulk_create(
            OrderLine(order=order, product=line.product, name=line.product.name, quantity=line.quantity,
                      unit_price=line.product.price)
            for line in lines
        )  # fmt: skip
        held = f"{len(lines)} line(s) held"
        timeline_add(order_id=order.id, step="reserve_stock", status=Step.SUCCEEDED, detail=held)
        events.outbox_record(topic=events.ORDER_RESERVED, payload={"order_id": str(order.id)})
        prefetch_related_objects([order], "lines", "timeline")  # for the caller's answer, read before any lock
        # Stock last: the product rows stay locked from here to commit, so every other buyer of the
        # same product waits for as little as possible.
        inventory.reservations_hold(order_id=order.id, lines={line.product.pk: line.quantity for line in lines})
    return order


# --- The payment saga ---------------------------------------------------------------------------


def order_saga_advance(*, order_id: UUID) -> float | None:
    """Take the order's next saga step. Returns seconds to wait before trying again, or None when
    nothing is left to do. Safe to run any number of times, concurrently too: the gateway's
    idempotency key is the order id, and every state change re-checks under a row lock."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return None
    if order.status == Status.CANCELLED:
        return payment_settle(order_id=order.id)
    if order.status != Status.RESERVED:
        return None
    payment, _ = Payment.objects.get_or_create(
        order=order, defaults={"amount": order.total, "currency": order.currency}
    )
    # A crash can fall between recording the gateway's answer and acting on it: finish what was left.
    if payment.status == Payment.Status.SUCCEEDED:
        return _order_mark_paid(order_id=order.id, charge_reference=payment.charge_reference)
    if payment.status == Payment.Status.DECLINED:
        order_cancel(order_id=order.id, reason=Order.CancelReason.PAYMENT_DECLINED)
        return None
    if payment.status == Payment.Status.FAILED:
        order_cancel(order_id=order.id, reason=Order.CancelReason.PAYMENT_FAILED)
        return payment_settle(order_id=order.id)
    return _order_charge(order=order, payment=payment)


def _order_charge(*, order: Order, payment: Payment) -> float | None:
    Payment.objects.filter(pk=payment.pk).update(attempts=F("attempts") + 1)
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now())  # progress, for the stuck-order sweeper
    attempt = Payment.objects.values_list("attempts", flat=True).get(pk=payment.pk)
    started = time.monotonic()
    try:
        result = guarded(
            get_gateway().charge, idempotency_key=str(order.pk), reference=str(order.pk),
            amount=payment.amount, currency=payment.currency, token=order.payment_token,
        )  # fmt: skip
    except GatewayError as exc:
        timeline_add(order_id=order.pk, step="charge_payment", status=Step.FAILED, attempt=attempt, detail=str(exc),
                     duration_ms=_ms_since(started))  # fmt: skip
        if attempt < settings.PAYMENT_MAX_ATTEMPTS:
            return _backoff(attempt)
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(status=Payment.Status.FAILED)
        order_cancel(order_id=order.pk, reason=Order.CancelReason.PAYMENT_FAILED)
        return payment_settle(order_id=order.pk)

    if not result.succeeded:
        timeline_add(order_id=order.pk, step="charge_payment", status=Step.DECLINED, attempt=attempt,
                     detail=result.decline_reason, duration_ms=_ms_since(started))  # fmt: skip
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(status=Payment.Status.DECLINED)
        order_cancel(order_id=order.pk, reason=Order.CancelReason.PAYMENT_DECLINED)
        return None
    timeline_add(order_id=order.pk, step="charge_payment", status=Step.SUCCEEDED, attempt=attempt,
                 detail=result.reference, duration_ms=_ms_since(started))  # fmt: skip
    return _order_mark_paid(order_id=order.pk, charge_reference=result.reference)


def _order_mark_paid(*, order_id: UUID, charge_reference: str) -> float | None:
    with transaction.atomic():
        order = _locked(order_id)
        # VOIDED too: a cancellation settled before this charge landed; the money is taken after all.
        not_yet_succeeded = [Payment.Status.PENDING, Payment.Status.FAILED, Payment.Status.VOIDED]
        Payment.objects.filter(order_id=order_id, status__in=not_yet_succeeded).update(
            status=Payment.Status.SUCCEEDED, charge_reference=charge_reference
        )
        if order.status == Status.RESERVED:
            started = time.monotonic()
            committed = inventory.reservations_commit(order_id=order_id)
            timeline_add(order_id=order_id, step="commit_stock", status=Step.SUCCEEDED,
                         detail=f"{committed} line(s) committed", duration_ms=_ms_since(started))  # fmt: skip
            _transition(order, Status.PAID)
            events.outbox_record(topic=events.ORDER_PAID, payload={"order_id": str(order_id)})
    if order.status == Status.CANCELLED:  # cancelled while the charge was in flight: give the money back
        return payment_settle(order_id=order_id)
    return None


def payment_settle(*, order_id: UUID) -> float | None:
    """Compensation for a cancelled order: refund whatever was charged (nothing charged: void).

    Returns seconds to wait before retrying when the gateway is unreachable."""
    payment = Payment.objects.filter(order_id=order_id).first()
    if payment is None or payment.status not in Payment.UNSETTLED:
        return None
    started = time.monotonic()
    try:
        result = guarded(get_gateway().refund, idempotency_key=f"refund:{order_id}", charge_key=str(order_id))
    except GatewayError as exc:
        timeline_add(order_id=order_id, step="refund_payment", status=Step.FAILED, detail=str(exc),
                     duration_ms=_ms_since(started))  # fmt: skip
        return _backoff(1)
    with transaction.atomic():
        settled = Payment.objects.filter(pk=payment.pk, status__in=Payment.UNSETTLED).update(
            status=Payment.Status.REFUNDED if result.refunded_amount else Payment.Status.VOIDED,
            refunded_amount=result.refunded_amount,
        )
        if settled:
            detail = f"refunded {result.refunded_amount}" if result.refunded_amount else "nothing was charged"
            timeline_add(order_id=order_id, step="refund_payment", status=Step.SUCCEEDED, detail=detail,
                         duration_ms=_ms_since(started))  # fmt: skip
    return None


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so a recovering gateway is not hit by every order at once."""
    delay = settings.PAYMENT_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return random.uniform(delay / 2, delay)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


# --- Cancelling -----------------------------------------------------------------------------------


def order_cancel(*, order_id: UUID, reason: str) -> Order:
    """Cancel and give stock back (held: released; committed: restocked). Idempotent.

    The refund is a gateway call, so it happens after commit: call `payment_settle` next."""
    with transaction.atomic():
        order = _locked(order_id)
        if order.status == Status.CANCELLED:
            return order
        if Status.CANCELLED not in Order.TRANSITIONS[order.status]:
            raise NotCancellable(f"The order is {order.status.replace('_', ' ')} and can no longer be cancelled.")
        if released := inventory.reservations_release(order_id=order_id):
            timeline_add(order_id=order_id, step="release_stock", status=Step.SUCCEEDED, detail=f"{released} line(s)")
        if restocked := inventory.reservations_restock(order_id=order_id):
            timeline_add(order_id=order_id, step="restock", status=Step.SUCCEEDED, detail=f"{restocked} line(s)")
        _transition(order, Status.CANCELLED, cancel_reason=reason)
    return order


# --- Delivery moves (called by the delivery app) --------------------------------------------------


def order_assign_driver(*, order_id: UUID, driver_id: int, driver_user_id: int) -> Order:
    with transaction.atomic():
        order = _locked(order_id)
        order.driver_id, order.driver_user_id = driver_id, driver_user_id
        _transition(order, Status.ASSIGNED, extra_fields=("driver_id", "driver_user"))
        timeline_add(order_id=order_id, step="assign_driver", status=Step.SUCCEEDED, detail=f"driver {driver_id}")
    return order


def order_unassign_driver(*, order_id: UUID, detail: str) -> Order:
    """The driver gave the order back (declined, or staff reassigns): it stays `assigned` - status
    never moves backwards - with no driver until dispatch finds the next one."""
    with transaction.atomic():
        order = _locked(order_id)
        if order.status != Status.ASSIGNED:
            raise InvalidTransition(f"Only an assigned order can lose its driver; this one is {order.status}.")
        previous = order.driver_id
        order.driver_id, order.driver_user_id = None, None
        _transition(order, Status.ASSIGNED, extra_fields=("driver_id", "driver_user"))
        timeline_add(
            order_id=order_id, step="unassign_driver", status=Step.SUCCEEDED, detail=f"driver {previous}: {detail}"
        )
    return order


def order_mark_picked_up(*, order_id: UUID) -> Order:
    return _order_advance(order_id=order_id, to=Status.PICKED_UP, step="pick_up")


def order_mark_delivered(*, order_id: UUID) -> Order:
    return _order_advance(order_id=order_id, to=Status.DELIVERED, step="deliver")


def _order_advance(*, order_id: UUID, to: str, step: str) -> Order:
    with transaction.atomic():
        order = _locked(order_id)
        _transition(order, to)
        timeline_add(order_id=order_id, step=step, status=Step.SUCCEEDED)
    return order


def order_cancel_and_settle(*, order_id: UUID, reason: str) -> Order:
    """Cancel, then refund right away so the caller sees the money back. Should the gateway be down,
    the saga (started by the outbox's `order.status_changed`) keeps retrying the refund."""
    order = order_cancel(order_id=order_id, reason=reason)
    payment_settle(order_id=order_id)
    return order


# --- Recovery -------------------------------------------------------------------------------------


def orders_needing_saga(*, stuck_before) -> list[UUID]:
    """Orders the saga should have moved but nothing touched since `stuck_before`: a worker died, a
    message was lost. Reserved orders, and cancelled ones whose payment is not settled yet."""
    reserved = Order.objects.filter(status=Status.RESERVED, updated_at__lt=stuck_before)
    unsettled = Order.objects.filter(
        status=Status.CANCELLED, updated_at__lt=stuck_before, payment__status__in=Payment.UNSETTLED
    )
    ids = list(reserved.values_list("pk", flat=True)[:500]) + list(unsettled.values_list("pk", flat=True)[:500])
    # Touch them, so the next sweep leaves them to the re-driven saga for another period.
    Order.objects.filter(pk__in=ids).update(updated_at=timezone.now())
    return ids
