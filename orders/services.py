"""Order writes and the payment saga.

Rules: no network call inside a transaction; every status change goes through `_transition`, which
checks it against Order.TRANSITIONS and records `order.status_changed` in the outbox in the same
transaction; every step and compensation leaves a timeline row and is safe to run twice.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from functools import cache
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from common.errors import Conflict
from common.money import money
from common.problems import problem_body
from inventory import services as inventory
from inventory.models import Product, Store
from orders import events, selectors
from orders.gateways import CircuitOpen, GatewayError, get_gateway, guarded
from orders.models import Order, Payment, TimelineEntry

logger = logging.getLogger(__name__)

Status = Order.Status
Step = TimelineEntry.Step
Outcome = TimelineEntry.Status


class InvalidTransition(Conflict):
    default_code = "invalid_transition"


class NotCancellable(Conflict):
    default_code = "not_cancellable"


def timeline_add(
    *, order_id: UUID, step: str, status: str, attempt: int = 1, detail: str = "", duration_ms: float | None = None
) -> TimelineEntry:
    return TimelineEntry.objects.create(
        order_id=order_id, step=step, status=status, attempt=attempt, detail=detail[:500], duration_ms=duration_ms
    )


def _transition(order: Order, to: str, *, cancel_reason: str | None = None, driver_id: int | None = None) -> None:
    if to not in Order.TRANSITIONS[order.status]:
        raise InvalidTransition(f"An order cannot go from {order.status} to {to}.")
    order.status, order.cancel_reason = to, cancel_reason
    order.awaiting_driver = to == Status.PAID
    order.save(update_fields=["status", "cancel_reason", "awaiting_driver", "updated_at"])
    _announce(order, driver_id=driver_id)


def _announce(order: Order, *, driver_id: int | None = None) -> None:
    """`order.status_changed` in the outbox: a new status, or (without one) a new driver or none. `driver_id`:
    the driver who made the move, when delivery made it (orders keeps no record of who drives)."""
    events.outbox_record(
        topic=events.ORDER_STATUS_CHANGED,
        payload={
            "order_id": str(order.pk),
            "status": order.status,
            "cancel_reason": order.cancel_reason,
            "driver_id": driver_id,
            "at": order.updated_at.isoformat(),
        },
    )


def _locked(order_id: UUID) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def order_lock(*, order_id: UUID) -> Order | None:
    """Lock the order's row for the caller's transaction. Delivery takes it first in each of its moves (lock
    order: the order, then the assignment, then the driver), so two moves on one order never interleave."""
    return Order.objects.select_for_update().filter(pk=order_id).first()


# --- Placing an order ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    product: Product
    quantity: int


@dataclass(frozen=True)
class OrderLineRequest:
    product_id: int | None  # None: the client's id names no product at all
    quantity: int


@dataclass(frozen=True)
class Placement:
    """The answer to a placing request: 201 with the order, or 409 out of stock; both replayed for the key."""

    status: int
    body: str  # JSON text, as stored for replays
    replayed: bool = False


class OrderRejected(Exception):
    """A business rule refused the order; nothing was written.

    `problems`: (line index, code) pairs; the line index is None for a store problem. Codes: unknown_store,
    unknown_product (missing or inactive), wrong_store, duplicate, mixed_currency."""

    def __init__(self, problems: list[tuple[int | None, str]]):
        super().__init__(", ".join(f"{line}: {code}" for line, code in problems))
        self.problems = problems


class OrderOutOfStock(Exception):
    def __init__(self, items: list[dict]):
        super().__init__(f"out of stock: {items}")
        self.items = items


class IdempotencyKeyReused(Exception):
    """The key was used before with another request body."""


class IdempotencyKeyInFlight(Exception):
    """Another request with this key is being placed right now."""


OUT_OF_STOCK_DETAIL = "Not enough stock for some items; nothing was reserved."


@cache
def _out_of_stock_problem() -> str:
    return json.dumps(problem_body(409, "out_of_stock", OUT_OF_STOCK_DETAIL))


def order_place(
    *,
    customer_id: int,
    idempotency_key: str | None,
    fingerprint: str,
    store_id: UUID,
    lines: list[OrderLineRequest],
    delivery_address: str,
    delivery_lat: float,
    delivery_lng: float,
    payment_token: str,
) -> Placement:
    """Place an order in one statement and one commit (`orders_place`, migration orders/0006): claim the key,
    check the rules, hold stock for every line, write the order with its lines, reservations, timeline entry,
    outbox event and the answer to replay. Raises OrderRejected, IdempotencyKeyReused, IdempotencyKeyInFlight;
    out of stock is an answer (409), kept for replays like a success."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT outcome, status, body FROM orders_place(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [customer_id, idempotency_key, fingerprint, store_id, [line.product_id for line in lines],
             [line.quantity for line in lines], delivery_address, delivery_lat, delivery_lng, payment_token,
             _out_of_stock_problem()],
        )  # fmt: skip
        outcome, status, body = cursor.fetchone()
    if outcome == "invalid":
        raise OrderRejected([(problem["line"], problem["code"]) for problem in json.loads(body)])
    if outcome == "reused":
        raise IdempotencyKeyReused
    if outcome == "in_flight":
        raise IdempotencyKeyInFlight
    return Placement(status=status, body=body, replayed=outcome == "replayed")


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
    """`order_place` without an Idempotency-Key, for internal callers (seeding, simulations, tests)."""
    placed = order_place(
        customer_id=customer.pk, idempotency_key=None, fingerprint="", store_id=store.pk,
        lines=[OrderLineRequest(product_id=line.product.pk, quantity=line.quantity) for line in lines],
        delivery_address=delivery_address, delivery_lat=delivery_lat, delivery_lng=delivery_lng,
        payment_token=payment_token,
    )  # fmt: skip
    answer = json.loads(placed.body)
    if placed.status == 409:
        raise OrderOutOfStock(answer["items"])
    return Order.objects.get(pk=answer["id"])


# --- The payment saga ---------------------------------------------------------------------------


def order_saga_advance(*, order_id: UUID) -> float | None:
    """Take the order's next saga step. Returns seconds to wait before trying again, or None when
    nothing is left to do. Safe to run any number of times, concurrently too: the gateway's
    idempotency key is the order id, and every state change re-checks under a row lock."""
    with connection.cursor() as cursor:  # one round trip: the order, its payment, this attempt's number
        cursor.execute("SELECT * FROM orders_charge_begin(%s)", [order_id])
        row = cursor.fetchone()
    if row is None:
        return None
    status, total, currency, token, payment_id, payment_status, attempt, reference = row
    if status == Status.CANCELLED:
        return payment_settle(order_id=order_id)
    if status != Status.RESERVED:
        return None
    # A crash can fall between recording the gateway's answer and acting on it: finish what was left.
    if payment_status == Payment.Status.SUCCEEDED:
        return _order_mark_paid(order_id=order_id, charge_reference=reference)
    if payment_status == Payment.Status.DECLINED:
        order_cancel(order_id=order_id, reason=Order.CancelReason.PAYMENT_DECLINED)
        return None
    if payment_status == Payment.Status.FAILED:
        order_cancel(order_id=order_id, reason=Order.CancelReason.PAYMENT_FAILED)
        return payment_settle(order_id=order_id)
    order = Order(id=order_id, status=status, total=total, currency=currency, payment_token=token)
    payment = Payment(id=payment_id, order_id=order_id, status=payment_status, amount=total, currency=currency,
                      attempts=attempt)  # fmt: skip
    return _order_charge(order=order, payment=payment)


def _order_charge(*, order: Order, payment: Payment) -> float | None:
    attempt = payment.attempts  # counted by orders_charge_begin
    started = time.monotonic()
    try:
        result = guarded(
            get_gateway().charge, idempotency_key=str(order.pk), reference=str(order.pk),
            amount=payment.amount, currency=payment.currency, token=order.payment_token,
        )  # fmt: skip
    except CircuitOpen as exc:
        # Nothing was attempted: the attempt is given back and the charge waits for the half-open
        # breaker. Only an order the gateway itself has failed for longer than the give-up time stops.
        Payment.objects.filter(pk=payment.pk).update(attempts=F("attempts") - 1)
        logger.info("order %s: charge waits %.1fs for the payment circuit breaker", order.pk, exc.retry_in)
        first_failure = _first_charge_failure(order.pk)
        if (
            first_failure is not None
            and _seconds_since(first_failure) + exc.retry_in > settings.PAYMENT_GIVE_UP_SECONDS
        ):
            return _order_give_up_payment(order=order, payment=payment)
        return exc.retry_in
    except GatewayError as exc:
        timeline_add(order_id=order.pk, step=Step.CHARGE_PAYMENT, status=Outcome.FAILED, attempt=attempt,
                     detail=str(exc), duration_ms=_ms_since(started))  # fmt: skip
        first_failure = _first_charge_failure(order.pk)
        out_of_time = _seconds_since(first_failure) >= settings.PAYMENT_GIVE_UP_SECONDS
        if attempt < settings.PAYMENT_MAX_ATTEMPTS and not out_of_time:
            return _backoff(attempt)
        return _order_give_up_payment(order=order, payment=payment)

    if not result.succeeded:
        timeline_add(order_id=order.pk, step=Step.CHARGE_PAYMENT, status=Outcome.DECLINED, attempt=attempt,
                     detail=result.decline_reason, duration_ms=_ms_since(started))  # fmt: skip
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(status=Payment.Status.DECLINED)
        order_cancel(order_id=order.pk, reason=Order.CancelReason.PAYMENT_DECLINED)
        return None
    return _order_mark_paid(
        order_id=order.pk, charge_reference=result.reference, attempt=attempt, duration_ms=_ms_since(started)
    )


def _order_give_up_payment(*, order: Order, payment: Payment) -> float | None:
    Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(status=Payment.Status.FAILED)
    order_cancel(order_id=order.pk, reason=Order.CancelReason.PAYMENT_FAILED)
    return payment_settle(order_id=order.pk)


def _first_charge_failure(order_id: UUID):
    """When the gateway first failed this order's charge (None: it never did)."""
    failures = TimelineEntry.objects.filter(order_id=order_id, step=Step.CHARGE_PAYMENT, status=Outcome.FAILED)
    return failures.order_by("at").values_list("at", flat=True).first()


def _seconds_since(moment) -> float:
    return (timezone.now() - moment).total_seconds()


def _order_mark_paid(
    *, order_id: UUID, charge_reference: str, attempt: int | None = None, duration_ms: float | None = None
) -> float | None:
    """The charge succeeded: record it, commit the stock, `paid`, events - one statement, one commit
    (`orders_mark_paid`, migration orders/0007). `attempt` None: the charge was recorded before a crash."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT orders_mark_paid(%s, %s, %s, %s)", [order_id, charge_reference, attempt, duration_ms])
        status = cursor.fetchone()[0]
    if status == Status.CANCELLED:  # cancelled while the charge was in flight: give the money back
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
    except CircuitOpen as exc:
        return exc.retry_in
    except GatewayError as exc:
        timeline_add(order_id=order_id, step=Step.REFUND_PAYMENT, status=Outcome.FAILED, detail=str(exc),
                     duration_ms=_ms_since(started))  # fmt: skip
        return _backoff(1)
    with transaction.atomic():
        # The order's row first, as `orders_mark_paid` takes it: otherwise the timeline insert's foreign-key
        # lock on the order waits for a concurrent mark-paid that waits for this payment row (a deadlock).
        _locked(order_id)
        settled = Payment.objects.filter(pk=payment.pk, status__in=Payment.UNSETTLED).update(
            status=Payment.Status.REFUNDED if result.refunded_amount else Payment.Status.VOIDED,
            refunded_amount=result.refunded_amount,
        )
        if settled:
            refunded = money(result.refunded_amount, payment.currency)
            detail = f"refunded {refunded}" if result.refunded_amount else "nothing was charged"
            timeline_add(order_id=order_id, step=Step.REFUND_PAYMENT, status=Outcome.SUCCEEDED, detail=detail,
                         duration_ms=_ms_since(started))  # fmt: skip
    return None


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so a recovering gateway is not hit by every order at once."""
    delay = settings.PAYMENT_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return random.uniform(delay / 2, delay)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


# --- Cancelling -----------------------------------------------------------------------------------


def order_cancel(*, order_id: UUID, reason: str, detail: str = "") -> Order:
    """Cancel and give stock back (held: released; committed: restocked). Idempotent.

    `no_driver` applies only while the order awaits a driver: once dispatch claimed one meanwhile, nothing
    changes (check the returned status). The refund is a gateway call, so it happens after commit: call
    `payment_settle` next (or use `order_cancel_and_settle`)."""
    with transaction.atomic():
        order = _locked(order_id)
        if order.status == Status.CANCELLED:
            return order
        if reason == Order.CancelReason.NO_DRIVER:
            if not order.awaiting_driver:
                return order
            timeline_add(order_id=order_id, step=Step.ASSIGN_DRIVER, status=Outcome.FAILED, detail=detail)
        if Status.CANCELLED not in Order.TRANSITIONS[order.status]:
            raise NotCancellable(f"The order is {order.status.replace('_', ' ')} and can no longer be cancelled.")
        if released := inventory.reservations_release(order_id=order_id):
            timeline_add(
                order_id=order_id, step=Step.RELEASE_STOCK, status=Outcome.SUCCEEDED, detail=f"{released} line(s)"
            )
        if restocked := inventory.reservations_restock(order_id=order_id):
            timeline_add(order_id=order_id, step=Step.RESTOCK, status=Outcome.SUCCEEDED, detail=f"{restocked} line(s)")
        _transition(order, Status.CANCELLED, cancel_reason=reason)
    return order


# --- Delivery moves (called by the delivery app) --------------------------------------------------


# Who drives is delivery's record (its assignments, read back through `orders.drivers`); these only move the
# order's status and say which driver moved it, in the timeline and the status event.


def order_assign_driver(*, order_id: UUID, driver_id: int) -> Order:
    """A driver now holds the order: its first (paid -> assigned) or the next after one gave it back."""
    with transaction.atomic():
        order = _locked(order_id)
        if not order.awaiting_driver:
            raise InvalidTransition(f"The order does not await a driver; it is {order.status}.")
        if order.status == Status.PAID:
            _transition(order, Status.ASSIGNED, driver_id=driver_id)
        else:
            order.awaiting_driver = False
            order.save(update_fields=["awaiting_driver", "updated_at"])
            _announce(order, driver_id=driver_id)
        timeline_add(order_id=order_id, step=Step.ASSIGN_DRIVER, status=Outcome.SUCCEEDED, detail=f"driver {driver_id}")
    return order


def order_unassign_driver(*, order_id: UUID, driver_id: int, detail: str) -> Order:
    """The driver gave the order back (declined, or staff reassigns): it stays `assigned` - status
    never moves backwards - with no driver until dispatch finds the next one."""
    with transaction.atomic():
        order = _locked(order_id)
        if order.status != Status.ASSIGNED:
            raise InvalidTransition(f"Only an assigned order can lose its driver; this one is {order.status}.")
        order.awaiting_driver = True
        order.save(update_fields=["awaiting_driver", "updated_at"])
        _announce(order)
        timeline_add(
            order_id=order_id,
            step=Step.UNASSIGN_DRIVER,
            status=Outcome.SUCCEEDED,
            detail=f"driver {driver_id}: {detail}",
        )
    return order


def order_mark_picked_up(*, order_id: UUID, driver_id: int) -> Order:
    return _order_advance(order_id=order_id, to=Status.PICKED_UP, step=Step.PICK_UP, driver_id=driver_id)


def order_mark_delivered(*, order_id: UUID, driver_id: int) -> Order:
    return _order_advance(order_id=order_id, to=Status.DELIVERED, step=Step.DELIVER, driver_id=driver_id)


def _order_advance(*, order_id: UUID, to: str, step: str, driver_id: int) -> Order:
    with transaction.atomic():
        order = _locked(order_id)
        _transition(order, to, driver_id=driver_id)
        timeline_add(order_id=order_id, step=step, status=Outcome.SUCCEEDED)
    return order


def order_cancel_and_settle(*, order_id: UUID, reason: str, detail: str = "") -> Order:
    """Cancel, then refund right away so the caller sees the money back. Should the gateway be down,
    the saga (started by the outbox's `order.status_changed`) keeps retrying the refund. For customers and
    staff; dispatch gives up with `order_cancel` alone and leaves the refund to the saga."""
    order = order_cancel(order_id=order_id, reason=reason, detail=detail)
    if order.status == Status.CANCELLED:
        payment_settle(order_id=order_id)
    return order


# --- Recovery -------------------------------------------------------------------------------------


def orders_claim_stuck(*, stuck_before) -> list[UUID]:
    """Claim, for re-driving, the stuck sagas (`selectors.stuck_parts`: a worker died, a message was lost) that
    no sweep re-drove since `stuck_before`. A write, not a read: claiming stamps `saga_redriven_at`, so the next
    sweep leaves them to the re-driven saga for a period, while they still count as stuck until the saga moves."""
    not_claimed = Q(saga_redriven_at__isnull=True) | Q(saga_redriven_at__lt=stuck_before)
    reserved, unsettled = selectors.stuck_parts(stuck_before=stuck_before)
    ids = [order_id for part in (reserved, unsettled)
           for order_id in part.filter(not_claimed).values_list("pk", flat=True)[:500]]  # fmt: skip
    Order.objects.filter(pk__in=ids).update(saga_redriven_at=timezone.now())
    return ids
