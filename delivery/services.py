"""Delivery writes: drivers, GPS ingest, dispatch, assignments, retention.

Lock order, everywhere, so two transactions never wait on each other in a cycle: the order row, then the
assignment row, then the driver row. Redis (hot state) and task enqueues happen after commit.
"""

import random
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import Http404
from django.utils import timezone

from common.problems import Conflict, Problem
from delivery import broadcast, hot
from delivery.models import Assignment, DispatchRequest, Driver, DriverPosition
from orders import services as orders
from orders.models import Order, TimelineEntry
from orders.services import InvalidTransition

DriverStatus = Driver.Status
Move = Assignment.Status
# How many of the nearest drivers one dispatch attempt tries before backing off.
DISPATCH_CANDIDATES = 10
# Positions deleted per statement by retention: small enough to keep each transaction short.
PRUNE_BATCH_SIZE = 5000


class NotADriver(Problem):
    status_code = 403
    default_code = "not_a_driver"


class DriverExists(Conflict):
    default_code = "driver_exists"


class ActiveDelivery(Conflict):
    default_code = "active_delivery"


class DriverNotAvailable(Conflict):
    default_code = "driver_not_available"


# --- Drivers --------------------------------------------------------------------------------------


def driver_create(*, user) -> Driver:
    try:
        with transaction.atomic():
            return Driver.objects.create(user=user)
    except IntegrityError:
        raise DriverExists("This user already has a driver profile.")


def driver_set_status(*, driver_id: int, status: str) -> Driver:
    """The driver goes `available` or `offline`. `busy` belongs to the platform: a busy driver cannot go
    offline (409) and asking to be available while busy changes nothing."""
    with transaction.atomic():
        driver = Driver.objects.select_for_update().get(pk=driver_id)
        if driver.status == DriverStatus.BUSY:
            if status == DriverStatus.OFFLINE:
                raise ActiveDelivery("Finish the active delivery before going offline.")
            return driver
        if driver.status != status:
            driver.status, driver.status_changed_at = status, timezone.now()
            driver.save(update_fields=["status", "status_changed_at"])
    if status == DriverStatus.AVAILABLE:
        transaction.on_commit(lambda: _driver_became_available(driver_id))
    else:
        transaction.on_commit(lambda: hot.driver_drop_candidate(driver_id))
    return driver


def _driver_became_available(driver_id: int) -> None:
    """A free driver with a live position is a candidate at once, and waiting orders nearby need not wait
    for their next backoff tick."""
    from delivery.tasks import dispatch_waiting_near_task

    if hot.driver_make_candidate(driver_id):
        dispatch_waiting_near_task.delay(driver_id)


def _driver_free(driver_id: int) -> None:
    """The driver's active assignment ended (inside the caller's transaction)."""
    Driver.objects.filter(pk=driver_id, status=DriverStatus.BUSY).update(
        status=DriverStatus.AVAILABLE, status_changed_at=timezone.now()
    )
    transaction.on_commit(lambda: _driver_became_available(driver_id))


# --- GPS ingest -----------------------------------------------------------------------------------


_POSITION_COLUMNS = {
    "driver_id": "bigint", "lat": "float8", "lng": "float8", "recorded_at": "timestamptz", "heading": "float8",
    "speed": "float8", "accuracy": "float8", "received_at": "timestamptz",
}  # fmt: skip


def _positions_insert(*, driver_id: int, points: list[dict], received_at) -> None:
    """One multi-row INSERT, one round trip, committed asynchronously.

    `synchronous_commit = off` for this statement's own transaction only (set_config(..., true) in the same
    statement, so there is no BEGIN/SET/COMMIT round trip): the commit does not wait for the WAL flush, which
    on this machine is ~1.5 ms and serialises every writer. The trade-off, deliberate for telemetry and never
    for money: should PostgreSQL itself crash, the last ~0.6 s of acknowledged points may be lost (never
    corrupted; the `location_events` stream still holds them). Orders and assignments keep synchronous commits.
    Call it in autocommit (as the view does), never inside a larger transaction."""
    row = "(" + ", ".join(f"%s::{kind}" for kind in _POSITION_COLUMNS.values()) + ")"
    params = []
    for p in points:
        params += [driver_id, p["lat"], p["lng"], p["recorded_at"], p.get("heading"), p.get("speed"),
                   p.get("accuracy"), received_at]  # fmt: skip
    sql = (
        f"INSERT INTO {DriverPosition._meta.db_table} ({', '.join(_POSITION_COLUMNS)}) "
        f"SELECT points.* FROM (VALUES {', '.join([row] * len(points))}) AS points "
        "CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def driver_locations_ingest(*, driver: dict, points: list[dict]) -> int:
    """Store a validated batch: one bulk insert (history), one Redis pipeline (stream + live position + GEO),
    one publish of the live position. `driver` is `selectors.driver_for_user`'s row (id, name, status, order_id).

    The live position only moves forward in time; a point already older than the TTL never becomes live."""
    received_at = timezone.now()
    _positions_insert(driver_id=driver["id"], points=points, received_at=received_at)
    newest = max(points, key=lambda p: p["recorded_at"])
    if newest["recorded_at"].timestamp() + settings.POSITION_TTL_SECONDS <= received_at.timestamp():
        newest = None
    available = driver["status"] == DriverStatus.AVAILABLE
    moved = hot.positions_write(driver_id=driver["id"], available=available, points=points, newest=newest)
    if moved:
        position = {**newest, "recorded_at": hot.rfc3339(newest["recorded_at"])}
        broadcast.publish(broadcast.position_messages(driver=driver, order_id=driver["order_id"], position=position))
    if moved == 2:  # just became a candidate (first fresh point while available)
        from delivery.tasks import dispatch_waiting_near_task

        dispatch_waiting_near_task.delay(driver["id"])
    return len(points)


# --- Dispatch -------------------------------------------------------------------------------------


def _needs_driver(order: Order) -> bool:
    return order.status == Order.Status.PAID or (order.status == Order.Status.ASSIGNED and order.driver_id is None)


def order_dispatch(*, order_id: UUID) -> float | None:
    """One dispatch attempt: claim the nearest free driver with a fresh position, or give up past the timeout.

    Returns seconds to wait before the next attempt, or None when nothing is left to do. Safe to run twice and
    concurrently: the claim re-checks everything under the order's row lock."""
    order = Order.objects.select_related("store").filter(pk=order_id).first()
    if order is None:
        return None
    if not _needs_driver(order):
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
    waited = (timezone.now() - request.waiting_since).total_seconds() if request else 0.0
    if waited >= settings.DISPATCH_TIMEOUT_SECONDS:
        _order_give_up(order_id=order_id, waited=waited)
        return None

    declined = set()
    if request is not None:
        declined = set(
            Assignment.objects.filter(order_id=order_id, status=Move.DECLINED).values_list("driver_id", flat=True)
        )
    store = order.store
    candidates = hot.nearest_candidates(
        lat=store.lat, lng=store.lng, radius_km=settings.DISPATCH_RADIUS_KM, count=DISPATCH_CANDIDATES + len(declined)
    )
    for driver_id, _km in candidates:
        if driver_id in declined:
            continue
        outcome = _order_claim_driver(order_id=order_id, driver_id=driver_id)
        if outcome != "taken":
            return None

    if request is None:
        request, _ = DispatchRequest.objects.get_or_create(order=order, defaults={"waiting_since": timezone.now()})
    attempts = request.attempts + 1
    DispatchRequest.objects.filter(pk=request.pk).update(attempts=F("attempts") + 1, last_attempt_at=timezone.now())
    hot.order_wait(order_id=order_id, lat=store.lat, lng=store.lng)
    left = settings.DISPATCH_TIMEOUT_SECONDS - waited
    return min(_dispatch_backoff(attempts), max(left, 0.1))


def _dispatch_backoff(attempt: int) -> float:
    """Exponential with jitter, capped: a waiting order is re-tried at least every DISPATCH_RETRY_MAX_SECONDS
    (and at once when a driver frees up nearby)."""
    delay = min(settings.DISPATCH_RETRY_BASE_SECONDS * 2 ** (attempt - 1), settings.DISPATCH_RETRY_MAX_SECONDS)
    return random.uniform(delay / 2, delay)


def _driver_claim(driver_id: int) -> int | None:
    """available -> busy as one conditional UPDATE; returns the driver's user id, or None if it was not available.
    Of two transactions racing for one driver only one matches the row: the other re-reads it after the first
    commits and finds it busy."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Driver._meta.db_table} SET status = %s, status_changed_at = %s"
            " WHERE id = %s AND status = %s RETURNING user_id",
            [DriverStatus.BUSY, timezone.now(), driver_id, DriverStatus.AVAILABLE],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _order_claim_driver(*, order_id: UUID, driver_id: int) -> str:
    """'claimed', 'order_done' (nothing left to do) or 'taken' (someone else got this driver first).

    The order's row lock serialises dispatchers of one order; the conditional claim, dispatchers of one driver.
    The partial unique indexes on Assignment back both should anything slip."""
    try:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if not _needs_driver(order):
                return "order_done"
            user_id = _driver_claim(driver_id)
            if user_id is None:
                transaction.on_commit(lambda: hot.driver_drop_candidate(driver_id))
                return "taken"
            Assignment.objects.create(driver_id=driver_id, order_id=order_id)
            orders.order_assign_driver(order_id=order_id, driver_id=driver_id, driver_user_id=user_id)
            DispatchRequest.objects.filter(order_id=order_id).update(status=DispatchRequest.Status.DONE)
    except IntegrityError:
        return "taken"
    hot.driver_drop_candidate(driver_id)
    hot.order_stop_waiting(order_id)
    return "claimed"


def _order_give_up(*, order_id: UUID, waited: float) -> None:
    """Cancel with `no_driver` (restock inside, refund right after) unless a driver was claimed meanwhile."""
    with transaction.atomic():
        if not _needs_driver(Order.objects.select_for_update().get(pk=order_id)):
            return
        orders.timeline_add(
            order_id=order_id, step="assign_driver", status=TimelineEntry.Status.FAILED,
            detail=f"no driver within {settings.DISPATCH_RADIUS_KM:g} km after {waited:.0f} s",
        )  # fmt: skip
        orders.order_cancel(order_id=order_id, reason=Order.CancelReason.NO_DRIVER)
        DispatchRequest.objects.filter(order_id=order_id).update(status=DispatchRequest.Status.CANCELLED)
    hot.order_stop_waiting(order_id)
    orders.payment_settle(order_id=order_id)  # a down gateway: the saga keeps retrying the refund


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
        if not Driver.objects.filter(pk=driver_id, status=DriverStatus.AVAILABLE).exists():
            break
        order_dispatch(order_id=order_id)
        tried += 1
    return tried


def orders_needing_dispatch(*, stale_before: datetime) -> list[UUID]:
    """Orders whose dispatch nobody is driving: a lost task, a worker that died. Paid orders without a
    request, and waiting requests not attempted since `stale_before`."""
    waiting = DispatchRequest.objects.filter(status=DispatchRequest.Status.WAITING)
    forgotten = waiting.filter(last_attempt_at__lt=stale_before) | waiting.filter(
        last_attempt_at__isnull=True, waiting_since__lt=stale_before
    )
    never_started = Order.objects.filter(
        status=Order.Status.PAID, updated_at__lt=stale_before, dispatch_request__isnull=True
    )
    ids = list(forgotten.values_list("order_id", flat=True)[:500]) + list(
        never_started.values_list("pk", flat=True)[:500]
    )
    DispatchRequest.objects.filter(order_id__in=ids).update(last_attempt_at=timezone.now())
    return ids


# --- Assignments ----------------------------------------------------------------------------------


def _assignment_move(*, assignment_id: UUID, driver_id: int, to: str, stamp: str | None = None) -> Assignment:
    """Check and apply one transition (inside the caller's transaction): only the assignment's own driver
    may act; anyone else gets a 404, as if it did not exist."""
    order_id = Assignment.objects.filter(pk=assignment_id, driver_id=driver_id).values_list("order_id", flat=True)
    order_id = order_id.first()
    if order_id is None:
        raise Http404
    Order.objects.select_for_update().filter(pk=order_id).first()
    assignment = Assignment.objects.select_for_update().get(pk=assignment_id)
    if to not in Assignment.TRANSITIONS[assignment.status]:
        raise InvalidTransition(f"An assignment cannot go from {assignment.status} to {to}.")
    now = timezone.now()
    assignment.status = to
    fields = ["status"]
    if stamp:
        setattr(assignment, stamp, now)
        fields.append(stamp)
    if to not in Assignment.ACTIVE:
        assignment.ended_at = now
        fields.append("ended_at")
    assignment.save(update_fields=fields)
    return assignment


@transaction.atomic
def assignment_accept(*, assignment_id: UUID, driver_id: int) -> Assignment:
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.ACCEPTED,
                                  stamp="accepted_at")  # fmt: skip
    orders.timeline_add(order_id=assignment.order_id, step="accept_delivery", status=TimelineEntry.Status.SUCCEEDED,
                        detail=f"driver {driver_id}")  # fmt: skip
    return assignment


@transaction.atomic
def assignment_decline(*, assignment_id: UUID, driver_id: int) -> Assignment:
    """Back to dispatch: the order stays `assigned` without a driver, and this driver is never offered it again."""
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.DECLINED)
    orders.order_unassign_driver(order_id=assignment.order_id, detail="declined")
    _driver_free(driver_id)
    _order_back_to_dispatch(assignment.order_id)
    return assignment


@transaction.atomic
def assignment_pick_up(*, assignment_id: UUID, driver_id: int) -> Assignment:
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.PICKED_UP,
                                  stamp="picked_up_at")  # fmt: skip
    orders.order_mark_picked_up(order_id=assignment.order_id)
    return assignment


@transaction.atomic
def assignment_deliver(*, assignment_id: UUID, driver_id: int) -> Assignment:
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.DELIVERED,
                                  stamp="delivered_at")  # fmt: skip
    orders.order_mark_delivered(order_id=assignment.order_id)
    _driver_free(driver_id)
    return assignment


def _order_back_to_dispatch(order_id: UUID) -> None:
    from delivery.tasks import order_dispatch_task

    # A fresh search, with a fresh timeout: the customer was served by a driver until now.
    DispatchRequest.objects.update_or_create(
        order_id=order_id, defaults={"status": DispatchRequest.Status.WAITING, "waiting_since": timezone.now(),
                                     "attempts": 0, "last_attempt_at": None},
    )  # fmt: skip
    transaction.on_commit(lambda: order_dispatch_task.delay(str(order_id)))


def order_release_driver(*, order_id: UUID) -> Assignment | None:
    """The order was cancelled (customer, staff, no driver): end its assignment and free its driver. Idempotent."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.status != Order.Status.CANCELLED:
            return None
        DispatchRequest.objects.filter(order_id=order_id, status=DispatchRequest.Status.WAITING).update(
            status=DispatchRequest.Status.CANCELLED
        )
        assignment = Assignment.objects.select_for_update().filter(order_id=order_id, status__in=Assignment.ACTIVE)
        assignment = assignment.first()
        if assignment is not None:
            assignment.status, assignment.ended_at = Move.CANCELLED, timezone.now()
            assignment.save(update_fields=["status", "ended_at"])
            _driver_free(assignment.driver_id)
    hot.order_stop_waiting(order_id)
    return assignment


def assignment_reassign(*, assignment_id: UUID, to_driver_id: int) -> Assignment:
    """Staff hand an order (not yet picked up) to another available driver."""
    with transaction.atomic():
        order_id = Assignment.objects.values_list("order_id", flat=True).get(pk=assignment_id)
        Order.objects.select_for_update().get(pk=order_id)
        current = Assignment.objects.select_for_update().get(pk=assignment_id)
        if Move.CANCELLED not in Assignment.TRANSITIONS[current.status]:
            raise InvalidTransition(f"A {current.status} assignment cannot be reassigned.")
        if current.driver_id == to_driver_id:
            raise DriverNotAvailable("The order is already with this driver.")
        current.status, current.ended_at = Move.CANCELLED, timezone.now()
        current.save(update_fields=["status", "ended_at"])
        orders.order_unassign_driver(order_id=order_id, detail="reassigned by staff")
        _driver_free(current.driver_id)
        user_id = _driver_claim(to_driver_id)
        if user_id is None:
            raise DriverNotAvailable("That driver is not available.")
        assignment = Assignment.objects.create(driver_id=to_driver_id, order_id=order_id)
        orders.order_assign_driver(order_id=order_id, driver_id=to_driver_id, driver_user_id=user_id)
    hot.driver_drop_candidate(to_driver_id)
    return assignment


# --- Retention ------------------------------------------------------------------------------------


def positions_prune(*, older_than: datetime, batch_size: int = PRUNE_BATCH_SIZE, max_batches: int = 1000) -> int:
    """Delete history recorded before `older_than`, one short statement per batch (no long lock, no bloat burst)."""
    deleted = 0
    for _ in range(max_batches):
        ids = list(DriverPosition.objects.filter(recorded_at__lt=older_than).values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        deleted += DriverPosition.objects.filter(pk__in=ids)._raw_delete(DriverPosition.objects.db)
    return deleted
