"""Dispatch: find a driver for a paid order, retry with backoff while none is free, give up past the timeout.

A `DispatchRequest` row exists once an order had to wait (or went back to dispatch): it is the durable record
the sweep re-drives from, whatever happens to the tasks and events that normally drive it.
"""

import random
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from delivery import events, hot
from delivery.models import Assignment, DispatchRequest, Driver
from delivery.selectors import orders_waiting_since_before
from delivery.services.drivers import driver_claim
from orders import selectors as order_selectors
from orders import services as orders
from orders.models import Order

# How many of the nearest drivers one dispatch attempt tries before backing off.
DISPATCH_CANDIDATES = 10


def order_dispatch(*, order_id: UUID) -> float | None:
    """One dispatch attempt: claim the nearest free driver with a fresh position, or give up past the timeout.

    Returns seconds to wait before the next attempt, or None when nothing is left to do. Safe to run twice and
    concurrently: the claim re-checks everything under the order's row lock."""
    order = order_selectors.order_for_dispatch(order_id=order_id)
    if order is None:
        return None
    if not order.awaiting_driver:
        DispatchRequest.objects.filter(order_id=order_id, status=DispatchRequest.Status.WAITING).update(
            status=DispatchRequest.Status.CANCELLED
            if order.status == Order.Status.CANCELLED
            else DispatchRequest.Status.DONE
        )
        hot.order_stop_waiting(order_id)
        return None
    # The request row exists only once an order had to wait (or was declined): the common case, a driver at
    # once, costs no extra writes.
    request = DispatchRequest.objects.filter(order_id=order_id).first()
    # The wait starts when the order needed a driver (paid, or its driver gave it back: the order's last change),
    # not at the first attempt: behind a backlog that attempt can come late, and the timeout must still hold.
    waiting_since = request.waiting_since if request else order.updated_at
    waited = (timezone.now() - waiting_since).total_seconds()
    if waited >= settings.DISPATCH_TIMEOUT_SECONDS:
        _order_give_up(order_id=order_id, waited=waited)
        return None

    declined = set()
    if request is not None:
        declined = set(
            Assignment.objects.filter(order_id=order_id, status=Assignment.Status.DECLINED).values_list(
                "driver_id", flat=True
            )
        )
    store = order.store
    for driver_id in _free_drivers_near(store, declined):
        outcome = _order_claim_driver(order_id=order_id, driver_id=driver_id)
        if outcome != "taken":
            return None

    if request is None:
        request, _ = DispatchRequest.objects.get_or_create(order=order, defaults={"waiting_since": waiting_since})
    hot.order_wait(order_id=order_id, lat=store.lat, lng=store.lng)
    left = max(settings.DISPATCH_TIMEOUT_SECONDS - waited, 0.1)
    # Looked again now that the order is in the waiting set: a driver who became a candidate after this look
    # finds the order there (`dispatch_waiting_near`), so no wake-up falls between the two.
    # With none, the order is parked: retrying cannot help, a driver becoming free nearby does, at once, and the
    # one attempt left is at the deadline, to give up. Retrying every few seconds instead kept a dispatch
    # worker busy with thousands of hopeless attempts, and the timeout came late.
    parked = not _free_drivers_near(store, declined)
    retry_in = left if parked else min(_dispatch_backoff(request.attempts + 1), left)
    DispatchRequest.objects.filter(pk=request.pk).update(
        attempts=F("attempts") + 1, next_attempt_at=timezone.now() + timedelta(seconds=retry_in)
    )
    return retry_in


def _free_drivers_near(store, declined: set) -> list[int]:
    """Available drivers with a fresh position within reach of the store, nearest first, minus those who
    declined this order."""
    candidates = hot.nearest_candidates(
        lat=store.lat, lng=store.lng, radius_km=settings.DISPATCH_RADIUS_KM, count=DISPATCH_CANDIDATES + len(declined)
    )
    return [driver_id for driver_id, _km in candidates if driver_id not in declined]


def _order_claim_driver(*, order_id: UUID, driver_id: int) -> str:
    """'claimed', 'order_done' (nothing left to do) or 'taken' (someone else got this driver first).

    The order's row lock serialises dispatchers of one order; the conditional claim, dispatchers of one driver.
    The partial unique indexes on Assignment back both should anything slip."""
    try:
        with transaction.atomic():
            order = orders.order_lock(order_id=order_id)
            if order is None or not order.awaiting_driver:
                return "order_done"
            if not driver_claim(driver_id=driver_id):
                transaction.on_commit(lambda: hot.driver_drop_candidate(driver_id))
                return "taken"
            Assignment.objects.create(driver_id=driver_id, order_id=order_id)
            orders.order_assign_driver(order_id=order_id, driver_id=driver_id)
            DispatchRequest.objects.filter(order_id=order_id).update(status=DispatchRequest.Status.DONE)
    except IntegrityError:
        return "taken"
    hot.driver_drop_candidate(driver_id)
    hot.order_stop_waiting(order_id)
    return "claimed"


def _order_give_up(*, order_id: UUID, waited: float) -> None:
    """Cancel with `no_driver` through orders (restock inside); the refund is the saga's, started by the outbox's
    `order.status_changed` within a second, so giving up stays one short transaction however many orders time out
    at once. Orders refuses when a driver was claimed meanwhile: then there is nothing to stop."""
    detail = f"no driver within {settings.DISPATCH_RADIUS_KM:g} km after {waited:.0f} s"
    order = orders.order_cancel(order_id=order_id, reason=Order.CancelReason.NO_DRIVER, detail=detail)
    if order.status == Order.Status.CANCELLED:
        DispatchRequest.objects.filter(order_id=order_id).update(status=DispatchRequest.Status.CANCELLED)
        hot.order_stop_waiting(order_id)


def _dispatch_backoff(attempt: int) -> float:
    """Exponential with jitter, capped: a waiting order is re-tried at least every DISPATCH_RETRY_MAX_SECONDS
    (and at once when a driver frees up nearby)."""
    delay = min(settings.DISPATCH_RETRY_BASE_SECONDS * 2 ** (attempt - 1), settings.DISPATCH_RETRY_MAX_SECONDS)
    return random.uniform(delay / 2, delay)


def dispatch_request_restart(*, order_id: UUID) -> None:
    """The order goes back to dispatch (inside the caller's transaction): a fresh search with a fresh timeout,
    as the customer was served by a driver until now. The first attempt starts right after commit."""
    DispatchRequest.objects.update_or_create(
        order_id=order_id, defaults={"status": DispatchRequest.Status.WAITING, "waiting_since": timezone.now(),
                                     "attempts": 0, "next_attempt_at": None},
    )  # fmt: skip
    events.send_after_commit(events.dispatch_requested, order_id=str(order_id))


def dispatch_waiting_near(*, driver_id: int) -> int:
    """A driver just became a candidate: try the waiting orders around it now, nearest first, while it is free.
    Returns how many orders were tried."""
    position = hot.live_position(driver_id)
    if position is None:
        return 0
    tried = 0
    for order_id in hot.waiting_orders_near(
        lat=position["lat"], lng=position["lng"], radius_km=settings.DISPATCH_RADIUS_KM, count=DISPATCH_CANDIDATES
    ):
        if not Driver.objects.filter(pk=driver_id, status=Driver.Status.AVAILABLE).exists():
            break
        order_dispatch(order_id=order_id)
        tried += 1
    return tried


def dispatches_give_up_overdue(*, limit: int = 500) -> int:
    """Cancel `no_driver` the orders whose own attempt at the deadline did not give up on them within a sweep
    period: its task was lost, or a backlog holds it back (seen: a 30 s timeout kept at 85 s p50 by the
    attempts alone). The grace leaves on-time give-ups to those attempts, which run in parallel; the sweep gives
    up one order after another, and racing them for the same rows only slowed both. Returns how many."""
    now = timezone.now()
    overdue_before = now - timedelta(seconds=settings.DISPATCH_TIMEOUT_SECONDS + settings.DISPATCH_SWEEP_SECONDS)
    overdue = orders_waiting_since_before(overdue_before, limit=limit)
    for order_id, since in overdue.items():
        _order_give_up(order_id=order_id, waited=(now - since).total_seconds())
    return len(overdue)


def dispatches_claim_forgotten(*, stale_before: datetime) -> list[UUID]:
    """Claim, for re-driving, the orders whose dispatch nobody is driving: a lost task, a worker that died.
    Orders awaiting a driver without a request, and waiting requests whose attempt was due before `stale_before`
    (a parked order's attempt is due at its deadline: it is not forgotten meanwhile).
    A write, not a read: claiming makes the attempt due now, so the next sweep leaves them alone for a period."""
    waiting = DispatchRequest.objects.filter(status=DispatchRequest.Status.WAITING)
    forgotten = waiting.filter(next_attempt_at__lt=stale_before) | waiting.filter(
        next_attempt_at__isnull=True, waiting_since__lt=stale_before
    )
    never_started = order_selectors.orders_awaiting_driver(unchanged_since=stale_before).exclude(
        pk__in=DispatchRequest.objects.values("order_id")
    )
    ids = list(forgotten.values_list("order_id", flat=True)[:500]) + list(
        never_started.values_list("pk", flat=True)[:500]
    )
    DispatchRequest.objects.filter(order_id__in=ids).update(next_attempt_at=timezone.now())
    return ids
