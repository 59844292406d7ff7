"""Assignments: the driver's moves (accept, decline, pick up, deliver), staff reassignment, release on cancel."""

from uuid import UUID

from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, NotFound
from delivery import hot
from delivery.models import Assignment, DispatchRequest
from delivery.services.dispatch import dispatch_request_restart
from delivery.services.drivers import driver_claim, driver_free
from orders import services as orders
from orders.models import Order, TimelineEntry
from orders.services import InvalidTransition

Move = Assignment.Status


class DriverNotAvailable(Conflict):
    default_code = "driver_not_available"


@transaction.atomic
def assignment_accept(*, assignment_id: UUID, driver_id: int) -> Assignment:
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.ACCEPTED,
                                  stamp="accepted_at")  # fmt: skip
    orders.timeline_add(order_id=assignment.order_id, step=TimelineEntry.Step.ACCEPT_DELIVERY,
                        status=TimelineEntry.Status.SUCCEEDED, detail=f"driver {driver_id}")  # fmt: skip
    return assignment


@transaction.atomic
def assignment_decline(*, assignment_id: UUID, driver_id: int) -> Assignment:
    """Back to dispatch: the order stays `assigned` without a driver, and this driver is never offered it again."""
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.DECLINED)
    orders.order_unassign_driver(order_id=assignment.order_id, driver_id=driver_id, detail="declined")
    driver_free(driver_id=driver_id)
    dispatch_request_restart(order_id=assignment.order_id)
    return assignment


@transaction.atomic
def assignment_pick_up(*, assignment_id: UUID, driver_id: int) -> Assignment:
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.PICKED_UP,
                                  stamp="picked_up_at")  # fmt: skip
    orders.order_mark_picked_up(order_id=assignment.order_id, driver_id=driver_id)
    return assignment


@transaction.atomic
def assignment_deliver(*, assignment_id: UUID, driver_id: int) -> Assignment:
    assignment = _assignment_move(assignment_id=assignment_id, driver_id=driver_id, to=Move.DELIVERED,
                                  stamp="delivered_at")  # fmt: skip
    orders.order_mark_delivered(order_id=assignment.order_id, driver_id=driver_id)
    driver_free(driver_id=driver_id)
    return assignment


def _assignment_move(*, assignment_id: UUID, driver_id: int, to: str, stamp: str | None = None) -> Assignment:
    """Check and apply one transition (inside the caller's transaction): only the assignment's own driver
    may act; anyone else gets a 404, as if it did not exist."""
    order_id = Assignment.objects.filter(pk=assignment_id, driver_id=driver_id).values_list("order_id", flat=True)
    order_id = order_id.first()
    if order_id is None:
        raise NotFound("No such assignment.")
    orders.order_lock(order_id=order_id)
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


def assignment_reassign(*, assignment_id: UUID, to_driver_id: int) -> Assignment:
    """Staff hand an order (not yet picked up) to another available driver."""
    with transaction.atomic():
        order_id = Assignment.objects.values_list("order_id", flat=True).get(pk=assignment_id)
        orders.order_lock(order_id=order_id)
        current = Assignment.objects.select_for_update().get(pk=assignment_id)
        if Move.CANCELLED not in Assignment.TRANSITIONS[current.status]:
            raise InvalidTransition(f"A {current.status} assignment cannot be reassigned.")
        if current.driver_id == to_driver_id:
            raise DriverNotAvailable("The order is already with this driver.")
        current.status, current.ended_at = Move.CANCELLED, timezone.now()
        current.save(update_fields=["status", "ended_at"])
        orders.order_unassign_driver(order_id=order_id, driver_id=current.driver_id, detail="reassigned by staff")
        driver_free(driver_id=current.driver_id)
        if not driver_claim(driver_id=to_driver_id):
            raise DriverNotAvailable("That driver is not available.")
        assignment = Assignment.objects.create(driver_id=to_driver_id, order_id=order_id)
        orders.order_assign_driver(order_id=order_id, driver_id=to_driver_id)
    hot.driver_drop_candidate(to_driver_id)
    return assignment


def order_release_driver(*, order_id: UUID) -> Assignment | None:
    """The order was cancelled (customer, staff, no driver): end its assignment and free its driver. Idempotent."""
    with transaction.atomic():
        order = orders.order_lock(order_id=order_id)
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
            driver_free(driver_id=assignment.driver_id)
    hot.order_stop_waiting(order_id)
    return assignment
