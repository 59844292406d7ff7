"""Who drives an order is delivery's record alone, its assignments; the order's API, its visibility to the driver,
the admin and the staff map all read it from there."""

import pytest

from accounts.tests.factories import bearer_client
from delivery.models import Assignment
from delivery.services import assignments, dispatch
from delivery.tests.helpers import make_driver, offset, paid_order
from orders import services as orders
from orders.models import Order
from orders.selectors import orders_with_drivers
from orders.tests.helpers import assert_invariants

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders"


def dispatched(driver_near=0.1):
    driver = make_driver(at=offset(driver_near), name="Dana Driver")
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    return order, driver, Assignment.objects.get(order=order, driver=driver)


def seen_by(user, order) -> tuple[int, dict | None]:
    answer = bearer_client(user).get(f"{ORDERS}/{order.pk}")
    return answer.status_code, answer.json().get("driver")


def test_the_driver_of_the_assignment_is_the_order_s_and_may_read_it_but_not_cancel_it():
    order, driver, _ = dispatched()

    assert seen_by(driver.user, order) == (200, {"id": str(driver.pk), "name": "Dana Driver"})
    assert seen_by(order.customer, order) == (200, {"id": str(driver.pk), "name": "Dana Driver"})
    cancel = bearer_client(driver.user).post(f"{ORDERS}/{order.pk}/cancel")
    assert (cancel.status_code, cancel.json()["code"]) == (403, "permission_denied")
    assert Order.objects.get(pk=order.pk).status == "assigned"
    assert_invariants()


def test_a_driver_who_declined_no_longer_drives_nor_sees_the_order():
    order, driver, assignment = dispatched()

    assignments.assignment_decline(assignment_id=assignment.pk, driver_id=driver.pk)

    assert seen_by(order.customer, order) == (200, None)
    assert seen_by(driver.user, order)[0] == 404
    assert_invariants()


def test_after_staff_reassign_the_new_driver_drives_and_the_old_one_sees_it_no_more():
    order, first, assignment = dispatched()
    second = make_driver(at=offset(2), name="Sam Second")

    assignments.assignment_reassign(assignment_id=assignment.pk, to_driver_id=second.pk)

    assert seen_by(second.user, order) == (200, {"id": str(second.pk), "name": "Sam Second"})
    assert seen_by(first.user, order)[0] == 404
    assert_invariants()


def test_a_delivered_or_cancelled_order_keeps_the_driver_it_had():
    delivered, driver, assignment = dispatched()
    for move in (assignments.assignment_accept, assignments.assignment_pick_up, assignments.assignment_deliver):
        move(assignment_id=assignment.pk, driver_id=driver.pk)
    cancelled, other, _ = dispatched(driver_near=0.2)
    orders.order_cancel_and_settle(order_id=cancelled.pk, reason="staff")

    assert seen_by(driver.user, delivered) == (200, {"id": str(driver.pk), "name": "Dana Driver"})
    assert seen_by(other.user, cancelled) == (200, {"id": str(other.pk), "name": "Dana Driver"})


def test_a_list_of_orders_reads_all_their_drivers_in_one_query(django_assert_num_queries):
    held = [dispatched(driver_near=0.1 * n)[0] for n in range(1, 4)]
    waiting = paid_order()

    listed = list(Order.objects.filter(pk__in=[o.pk for o in [*held, waiting]]))
    with django_assert_num_queries(1):
        orders_with_drivers(listed)
        drivers = {order.pk: order.driver for order in listed}

    assert drivers[waiting.pk] is None
    assert {drivers[o.pk].id for o in held} == set(Assignment.objects.values_list("driver_id", flat=True))


def test_the_order_admin_names_and_links_the_driver(admin_client):
    order, driver, _ = dispatched()

    page = admin_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    listing = admin_client.get("/admin/orders/order/").content.decode()

    assert f'href="/admin/delivery/driver/{driver.pk}/change/">Dana Driver</a> (driver #{driver.pk})' in page
    assert "Dana Driver" in listing
