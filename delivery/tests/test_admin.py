from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from delivery.models import Assignment, DispatchRequest, Driver
from delivery.services import dispatch
from delivery.tests.helpers import make_driver, offset, paid_order, point, send_points
from orders.models import Order
from orders.tests.helpers import assert_invariants

pytestmark = pytest.mark.django_db


def test_driver_list_filter_and_change_page_show_position_and_track(admin_client):
    driver = make_driver(at=offset(1), name="Tracked Tom")
    send_points(driver, [point(*offset(1.1), seconds_ago=-1)])
    make_driver(at=None, status="offline", name="Offline Olga")

    listing = admin_client.get("/admin/delivery/driver/?status__exact=available")
    page = admin_client.get(f"/admin/delivery/driver/{driver.pk}/change/")

    assert listing.status_code == 200 and "Tracked Tom" in listing.text and "Offline Olga" not in listing.text
    assert "openstreetmap.org" in listing.text
    assert page.status_code == 200 and page.text.count("<tr><td>") == 2  # the recent track, newest first


def test_staff_add_a_driver_through_the_service(admin_client):
    user = UserFactory()

    response = admin_client.post("/admin/delivery/driver/add/", {"user": user.pk}, follow=True)

    assert response.status_code == 200
    assert Driver.objects.get(user=user).status == "offline"


def test_reassign_action_hands_the_order_to_the_given_driver(admin_client):
    first, second = make_driver(at=offset(0.1)), make_driver(at=offset(2))
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(order=order)

    response = admin_client.post(
        "/admin/delivery/assignment/",
        {"action": "reassign", "_selected_action": [str(assignment.pk)], "driver_id": str(second.pk), "index": 0},
        follow=True,
    )

    order.refresh_from_db()
    assert response.status_code == 200
    assert order.driver.id == second.pk
    assert Driver.objects.get(pk=first.pk).status == "available"
    assert_invariants()


def test_reassign_to_a_busy_driver_is_refused_and_changes_nothing(admin_client):
    first = make_driver()
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(order=order)
    busy = make_driver(at=offset(1))
    dispatch.order_dispatch(order_id=paid_order().pk)

    response = admin_client.post(
        "/admin/delivery/assignment/",
        {"action": "reassign", "_selected_action": [str(assignment.pk)], "driver_id": str(busy.pk), "index": 0},
        follow=True,
    )

    assert "not available" in response.text
    assert Order.objects.get(pk=order.pk).driver.id == first.pk
    assert Assignment.objects.get(pk=assignment.pk).status == "assigned"
    assert_invariants()


def test_sweeper_finds_dispatches_nobody_drives():
    forgotten, fresh = paid_order(), paid_order()
    dispatch.order_dispatch(order_id=forgotten.pk)  # no driver: parked until its deadline, not forgotten
    assert dispatch.dispatches_claim_forgotten(stale_before=timezone.now() - timedelta(seconds=45)) == []
    # its attempt was due 5 minutes ago and never ran (a lost task): forgotten
    DispatchRequest.objects.filter(order=forgotten).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    Order.objects.filter(pk=fresh.pk).update(updated_at=timezone.now() - timedelta(minutes=5))  # never dispatched

    found = dispatch.dispatches_claim_forgotten(stale_before=timezone.now() - timedelta(seconds=45))

    assert set(found) == {forgotten.pk, fresh.pk}
    assert dispatch.dispatches_claim_forgotten(stale_before=timezone.now() - timedelta(seconds=45)) == [fresh.pk]


def test_reassign_first_offers_the_available_drivers_nearest_the_store(admin_client):
    current = make_driver(at=offset(0.1), name="Current Cara")
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(order=order)
    make_driver(at=offset(3), name="Farther Finn")
    make_driver(at=offset(1), name="Nearer Nia")
    make_driver(at=offset(40), name="Out Of Range Otto")
    make_driver(at=offset(0.5), status="offline", name="Offline Olga")

    page = admin_client.post(
        "/admin/delivery/assignment/", {"action": "reassign", "_selected_action": [str(assignment.pk)], "index": 0}
    )

    assert page.status_code == 200
    assert 'type="text"' not in page.text  # a choice, not a typed id
    offered = page.text.split('id="reassign-form"')[1]
    assert offered.index("Nearer Nia") < offered.index("Farther Finn")
    assert "Out Of Range Otto" not in offered and "Offline Olga" not in offered and current.user.name not in offered
    assert "1.0 km from the store" in offered


def test_a_driver_outside_the_offered_choice_is_refused(admin_client):
    make_driver(at=offset(0.1))
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(order=order)
    far = make_driver(at=offset(40), name="Far Away")

    response = admin_client.post(
        "/admin/delivery/assignment/",
        {"action": "reassign", "_selected_action": [str(assignment.pk)], "driver_id": str(far.pk), "index": 0},
        follow=True,
    )

    assert "not available near the store" in response.text
    assert Order.objects.get(pk=order.pk).driver.id != far.pk


def test_drivers_last_seen_reads_as_time_ago_with_names_in_the_assignment_list(admin_client):
    make_driver(name="Seen Sally")
    earlier = make_driver(at=None, name="Earlier Eli")
    send_points(earlier, [point(*offset(0.2), seconds_ago=120)])
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)

    drivers = admin_client.get("/admin/delivery/driver/").text
    assignments = admin_client.get("/admin/delivery/assignment/").text

    assert "2\xa0minutes ago</span>" in drivers and "just now</span>" in drivers and "+00:00" not in drivers
    assert "Seen Sally" in assignments and f'title="{order.pk}">{str(order.pk)[:8]}</a>' in assignments
