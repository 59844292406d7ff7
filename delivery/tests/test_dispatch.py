import time
from datetime import timedelta

import pytest
from django.utils import timezone

from common.errors import Conflict
from delivery import hot
from delivery.invariants import GRACE, paid_orders_are_dispatched
from delivery.models import Assignment, DispatchRequest, Driver
from delivery.services import assignments, dispatch, drivers, retention
from delivery.tests.helpers import make_driver, offset, paid_order, point, send_points
from inventory.models import Product
from orders import services as orders
from orders.models import Order
from orders.tests.helpers import assert_invariants, run_saga

pytestmark = pytest.mark.django_db


def test_nearest_available_driver_wins():
    far = make_driver(at=offset(5))
    near = make_driver(at=offset(1))
    make_driver(at=offset(0.1), status="offline")
    order = paid_order()

    retry = dispatch.order_dispatch(order_id=order.pk)

    order.refresh_from_db()
    assert retry is None
    assert (order.status, order.driver.id, order.driver.name) == ("assigned", near.pk, near.user.name)
    assignment = Assignment.objects.get(order=order)
    assert (assignment.driver_id, assignment.status) == (near.pk, "assigned")
    assert Driver.objects.get(pk=near.pk).status == "busy"
    assert Driver.objects.get(pk=far.pk).status == "available"
    assert ("assign_driver", "succeeded") in [(t.step, t.status) for t in order.timeline.all()]
    assert str(near.pk) not in hot.connection().zrange(hot.AVAILABLE_GEO, 0, -1)
    assert_invariants()


def test_driver_outside_the_radius_is_not_dispatched(settings):
    settings.DISPATCH_RADIUS_KM = 3
    make_driver(at=offset(4))
    order = paid_order()

    retry = dispatch.order_dispatch(order_id=order.pk)

    order.refresh_from_db()
    assert retry is not None and retry > 0
    assert (order.status, order.driver) == ("paid", None)
    assert DispatchRequest.objects.get(order=order).status == "waiting"
    assert not Assignment.objects.exists()
    assert_invariants()


def test_with_no_free_driver_within_reach_the_order_is_parked_until_its_deadline(settings):
    # Retrying cannot help: the next attempt is the one that gives up, unless a driver frees up nearby first.
    settings.DISPATCH_TIMEOUT_SECONDS = 600
    settings.DISPATCH_RADIUS_KM = 3
    make_driver(at=offset(4))
    order = paid_order()

    retry = dispatch.order_dispatch(order_id=order.pk)

    assert 590 < retry <= 600
    assert str(order.pk) in hot.connection().zrange(hot.WAITING_GEO, 0, -1)
    near = make_driver(at=offset(1))
    assert dispatch.dispatch_waiting_near(driver_id=near.pk) == 1
    order.refresh_from_db()
    assert (order.status, order.driver.id) == ("assigned", near.pk)


def test_driver_whose_live_position_expired_is_not_a_candidate(settings):
    settings.POSITION_TTL_SECONDS = 2
    stale = make_driver(at=offset(0.5))
    time.sleep(2.2)  # its live position expires; the GEO set still names it
    fresh = make_driver(at=offset(3))
    order = paid_order()

    dispatch.order_dispatch(order_id=order.pk)

    order.refresh_from_db()
    assert order.driver.id == fresh.pk
    assert hot.live_position(stale.pk) is None
    assert str(stale.pk) not in hot.connection().zrange(hot.AVAILABLE_GEO, 0, -1)  # pruned on the way
    assert_invariants()


def test_point_older_than_the_ttl_never_becomes_live(settings):
    settings.POSITION_TTL_SECONDS = 60
    driver = make_driver(at=None)

    send_points(driver, [point(*offset(1), seconds_ago=61)])

    assert hot.live_position(driver.pk) is None
    order = paid_order()
    assert dispatch.order_dispatch(order_id=order.pk) is not None


def test_decline_sends_the_order_back_and_never_re_offers_it():
    near = make_driver(at=offset(0.5))
    far = make_driver(at=offset(2))
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    first = Assignment.objects.get(order=order, driver=near)

    assignments.assignment_decline(assignment_id=first.pk, driver_id=near.pk)

    order.refresh_from_db()
    assert (order.status, order.driver) == ("assigned", None)
    assert Driver.objects.get(pk=near.pk).status == "available"
    assert DispatchRequest.objects.get(order=order).status == "waiting"
    send_points(near, [point(*offset(0.5))])  # back in the GEO set, still the nearest

    dispatch.order_dispatch(order_id=order.pk)

    order.refresh_from_db()
    assert order.driver.id == far.pk
    second = Assignment.objects.get(order=order, status="assigned")
    assignments.assignment_decline(assignment_id=second.pk, driver_id=far.pk)
    assert dispatch.order_dispatch(order_id=order.pk) is not None  # both declined: nobody left to offer
    order.refresh_from_db()
    assert (order.status, order.driver) == ("assigned", None)
    assert list(Assignment.objects.filter(order=order).values_list("status", flat=True)) == ["declined"] * 2
    assert_invariants()


def test_no_driver_past_the_timeout_cancels_refunds_and_restocks():
    order = paid_order(quantity=3)
    product = Product.objects.get(pk=order.lines.get().product_id)
    assert product.on_hand == 7
    assert dispatch.order_dispatch(order_id=order.pk) is not None
    DispatchRequest.objects.filter(order=order).update(waiting_since=timezone.now() - timedelta(hours=1))

    assert dispatch.order_dispatch(order_id=order.pk) is None
    run_saga(order)  # the refund is the saga's, started by the cancellation's outbox event

    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "no_driver")
    assert order.payment.status == "refunded" and order.payment.refunded_amount == order.total
    assert product.on_hand == 10
    steps = [(t.step, t.status) for t in order.timeline.all()]
    assert ("assign_driver", "failed") in steps and ("restock", "succeeded") in steps
    assert ("refund_payment", "succeeded") in steps
    assert DispatchRequest.objects.get(order=order).status == "cancelled"
    assert_invariants()


def test_the_timeout_counts_from_payment_even_when_the_first_attempt_comes_late():
    order = paid_order()
    # A backlog held its first dispatch attempt back until past the timeout.
    order.__class__.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert dispatch.order_dispatch(order_id=order.pk) is None

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "no_driver")
    assert_invariants()


def test_the_sweep_gives_up_on_overdue_orders_without_waiting_for_their_attempts(settings):
    settings.DISPATCH_TIMEOUT_SECONDS = 600
    never_tried, retried, in_time = paid_order(), paid_order(), paid_order()
    dispatch.order_dispatch(order_id=retried.pk)  # waited once: its request says since when
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Order.objects.filter(pk__in=[never_tried.pk, in_time.pk]).update(updated_at=an_hour_ago)
    DispatchRequest.objects.filter(order=retried).update(waiting_since=an_hour_ago)
    Order.objects.filter(pk=in_time.pk).update(updated_at=timezone.now())  # paid just now

    assert dispatch.dispatches_give_up_overdue() == 2

    outcome = dict(Order.objects.values_list("pk", "cancel_reason"))
    assert (outcome[never_tried.pk], outcome[retried.pk], outcome[in_time.pk]) == ("no_driver", "no_driver", None)
    assert dispatch.dispatches_give_up_overdue() == 0
    assert_invariants()


def test_a_late_first_attempt_waits_only_what_is_left_of_the_timeout(settings):
    settings.DISPATCH_TIMEOUT_SECONDS = 600
    order = paid_order()
    order.__class__.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(seconds=599))

    retry_in = dispatch.order_dispatch(order_id=order.pk)

    assert retry_in is not None and retry_in <= 1.5
    assert DispatchRequest.objects.get(order=order).waiting_since < timezone.now() - timedelta(seconds=598)


def test_timeout_never_cancels_an_order_that_found_a_driver():
    driver = make_driver()
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    DispatchRequest.objects.filter(order=order).update(waiting_since=timezone.now() - timedelta(hours=1))

    dispatch.order_dispatch(order_id=order.pk)  # a duplicate, late task

    order.refresh_from_db()
    assert (order.status, order.driver.id) == ("assigned", driver.pk)


def test_cancelled_order_frees_its_driver():
    driver = make_driver()
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)

    orders.order_cancel_and_settle(order_id=order.pk, reason="customer")
    assignments.order_release_driver(order_id=order.pk)
    assignments.order_release_driver(order_id=order.pk)  # at least once: twice is harmless

    assert Assignment.objects.get(order=order).status == "cancelled"
    assert Driver.objects.get(pk=driver.pk).status == "available"
    assert_invariants()


def test_driver_freed_by_a_delivery_is_dispatched_to_a_waiting_order_at_once():
    driver = make_driver()
    first, waiting = paid_order(), paid_order()
    dispatch.order_dispatch(order_id=first.pk)
    assert dispatch.order_dispatch(order_id=waiting.pk) is not None
    assignment = Assignment.objects.get(order=first)
    for move in (assignments.assignment_accept, assignments.assignment_pick_up, assignments.assignment_deliver):
        move(assignment_id=assignment.pk, driver_id=driver.pk)
    hot.driver_make_candidate(driver.pk)  # what the after-commit hook does

    assert dispatch.dispatch_waiting_near(driver_id=driver.pk) == 1

    waiting.refresh_from_db()
    assert (waiting.status, waiting.driver.id) == ("assigned", driver.pk)
    assert_invariants()


def test_busy_driver_cannot_go_offline():
    driver = make_driver()
    dispatch.order_dispatch(order_id=paid_order().pk)

    with pytest.raises(Conflict) as error:
        drivers.driver_set_status(driver_id=driver.pk, status="offline")

    assert error.value.code == "active_delivery"
    assert Driver.objects.get(pk=driver.pk).status == "busy"
    assert drivers.driver_set_status(driver_id=driver.pk, status="available").status == "busy"


def test_staff_reassign_moves_the_order_to_another_available_driver():
    first = make_driver(at=offset(0.1))
    second = make_driver(at=offset(1))
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    current = Assignment.objects.get(order=order)

    assignments.assignment_reassign(assignment_id=current.pk, to_driver_id=second.pk)

    order.refresh_from_db()
    assert order.driver.id == second.pk
    assert Driver.objects.get(pk=first.pk).status == "available"
    assert Driver.objects.get(pk=second.pk).status == "busy"
    with pytest.raises(Conflict):  # the first is free again, but this one is busy: not available
        assignments.assignment_reassign(assignment_id=current.pk, to_driver_id=second.pk)
    assert_invariants()


def test_prune_deletes_only_old_history_in_batches():
    driver = make_driver(at=None)
    send_points(driver, [point(52.5, 13.4, seconds_ago=3600 * 24 * 40 + i) for i in range(5)])
    send_points(driver, [point(52.5, 13.4, seconds_ago=10)])

    deleted = retention.positions_prune(older_than=timezone.now() - timedelta(days=30), batch_size=2)

    assert deleted == 5
    from delivery.models import DriverPosition

    assert DriverPosition.objects.filter(driver=driver).count() == 1


def test_an_order_behind_a_dispatch_backlog_is_no_violation_until_the_timeout(settings):
    late = paid_order()  # paid, and no dispatch task has reached it yet: a backlog, or a lost task
    assert paid_orders_are_dispatched() == []

    Order.objects.filter(pk=late.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.DISPATCH_TIMEOUT_SECONDS) - GRACE - timedelta(seconds=1)
    )
    assert paid_orders_are_dispatched() == [f"order {late.pk} has waited for a driver past the dispatch timeout"]
