"""The operations dashboard (the admin's home), its figures (orders and delivery selectors) and the landing page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from delivery.selectors import drivers_by_status
from delivery.services import assignments, dispatch, drivers
from orders import selectors
from orders.models import Order, TimelineEntry
from orders.tests.helpers import place_order, run_saga
from tracking.admin import orders_chart
from tracking.selectors import operations_dashboard
from tracking.tests.conftest import make_driver

pytestmark = pytest.mark.django_db


def age(order: Order, **delta) -> None:
    """Move an order (its creation, last change and saga timeline) back in time, as if placed `delta` ago."""
    shift = timedelta(**delta)
    order.refresh_from_db()
    Order.objects.filter(pk=order.pk).update(created_at=order.created_at - shift, updated_at=order.updated_at - shift)
    for entry in TimelineEntry.objects.filter(order=order):
        TimelineEntry.objects.filter(pk=entry.pk).update(at=entry.at - shift)


def set_step_time(order: Order, step: str, at) -> None:
    TimelineEntry.objects.filter(order=order, step=step, status="succeeded").update(at=at)


def test_active_orders_are_counted_by_status_with_those_waiting_for_a_driver_apart():
    reserved = place_order()
    paid = place_order()
    run_saga(paid)
    declined = place_order(token="tok_declined")
    run_saga(declined)
    make_driver(name="Keeping Kim")
    kept = place_order()
    run_saga(kept)
    dispatch.order_dispatch(order_id=kept.pk)
    giver = make_driver(name="Giving Gus")
    given_back = place_order()
    run_saga(given_back)
    dispatch.order_dispatch(order_id=given_back.pk)
    assignment = given_back.assignments.get()
    assert assignment.driver_id == giver.pk
    assignments.assignment_decline(assignment_id=assignment.pk, driver_id=giver.pk)

    counts = selectors.orders_active_by_status()

    # the paid one and the one given back wait; only the kept one counts as assigned
    assert counts == {"reserved": 1, "paid": 0, "awaiting_driver": 2, "assigned": 1, "picked_up": 0}
    assert reserved.status == "reserved"


def test_finished_orders_count_only_the_last_hour():
    recent = place_order(token="tok_declined")
    run_saga(recent)
    old = place_order(token="tok_declined")
    run_saga(old)
    age(old, hours=2)

    finished = selectors.orders_finished_since(since=timezone.now() - timedelta(hours=1))

    assert finished == {"delivered": 0, "cancelled": 1}


def test_orders_per_minute_fills_every_minute_and_counts_payment_failures():
    ok = place_order()
    run_saga(ok)
    declined = place_order(token="tok_declined")
    run_saga(declined)
    older, too_old = place_order(), place_order()
    # Each placed at a known minute: `now + 1 s` as the window's end crossed into the next minute (a 61st entry)
    # whenever the test ran in a minute's last second.
    this_minute = timezone.now().replace(second=0, microsecond=0)
    for order, minutes_ago in ((ok, 0), (declined, 0), (older, 5), (too_old, 90)):
        Order.objects.filter(pk=order.pk).update(created_at=this_minute + timedelta(seconds=1, minutes=-minutes_ago))

    until = this_minute + timedelta(minutes=1)
    series = selectors.orders_per_minute(since=this_minute - timedelta(minutes=59), until=until)

    assert len(series) == 60
    assert series[0]["minute"] == this_minute - timedelta(minutes=59)
    assert series[-1] == {"minute": this_minute, "orders": 2, "payment_failures": 1}
    assert series[-6]["orders"] == 1 and series[-6]["payment_failures"] == 0
    assert sum(minute["orders"] for minute in series) == 3


def test_dispatch_latency_is_paid_to_assigned_percentiles_over_the_last_hour(customer, product):
    now = timezone.now()
    latencies = [2, 4, 6, 8, 100]
    for seconds in latencies:
        order = place_order()
        run_saga(order)
        driver = make_driver()
        dispatch.order_dispatch(order_id=order.pk)
        order.refresh_from_db()
        assert order.status == "assigned" and order.driver.id == driver.pk
        assignments.assignment_accept(assignment_id=order.assignments.get().pk, driver_id=driver.pk)
        set_step_time(order, "commit_stock", now - timedelta(minutes=10))
        set_step_time(order, "assign_driver", now - timedelta(minutes=10) + timedelta(seconds=seconds))
    waiting = place_order()  # paid, no driver: not part of the figure
    run_saga(waiting)
    old = Order.objects.filter(status="assigned").first()
    age(old, hours=2)  # placed before the window: left out (the 2 s one or another, either way 4 remain)

    latency = selectors.dispatch_latency(since=now - timedelta(hours=1))

    remaining = sorted(
        (
            TimelineEntry.objects.get(order=o, step="assign_driver").at
            - TimelineEntry.objects.get(order=o, step="commit_stock").at
        ).total_seconds()
        for o in Order.objects.filter(status="assigned", created_at__gte=now - timedelta(hours=1))
    )
    assert latency["orders"] == 4 == len(remaining)
    assert latency["p50"] == pytest.approx((remaining[1] + remaining[2]) / 2)
    assert latency["p95"] == pytest.approx(remaining[2] + 0.85 * (remaining[3] - remaining[2]))


def test_dispatch_latency_with_no_assigned_order_is_empty():
    assert selectors.dispatch_latency(since=timezone.now() - timedelta(hours=1)) == {
        "p50": None,
        "p95": None,
        "orders": 0,
    }


def test_stuck_orders_are_reserved_or_unsettled_and_untouched():
    now = timezone.now()
    stuck = place_order()
    age(stuck, minutes=5)
    fresh = place_order()
    settled = place_order(token="tok_declined")
    run_saga(settled)
    age(settled, minutes=5)

    found = selectors.orders_stuck(stuck_before=now - timedelta(seconds=60), cancelled_since=now - timedelta(days=1))

    assert found["count"] == 1
    assert [order.pk for order in found["oldest"]] == [stuck.pk]
    assert fresh.status == "reserved"


def test_riders_are_counted_by_status():
    make_driver()
    make_driver()
    offline = make_driver()
    drivers.driver_set_status(driver_id=offline.pk, status="offline")

    assert drivers_by_status() == {"offline": 1, "available": 2, "busy": 0}


def test_the_chart_has_a_bar_pair_per_minute_scaled_to_the_peak():
    start = timezone.now().replace(second=0, microsecond=0)
    per_minute = [
        {"minute": start + timedelta(minutes=i), "orders": i, "payment_failures": 1 if i == 3 else 0} for i in range(5)
    ]

    svg = str(orders_chart(per_minute))

    assert svg.startswith("<svg") and svg.count('class="bar-orders"') == 5 and svg.count('class="bar-failures"') == 5
    assert "4 / min" in svg
    assert f"{start + timedelta(minutes=3):%H:%M} UTC: 3 orders, 1 payment failures" in svg


def test_the_admin_home_is_the_dashboard(admin_client):
    stuck = place_order()
    age(stuck, minutes=5)
    paid = place_order()
    run_saga(paid)
    make_driver()

    response = admin_client.get("/admin/")
    html = response.content.decode()

    assert response.status_code == 200
    assert "Courier operations" in html and "Django administration" not in html
    assert response.context["dashboard"]["active"]["awaiting_driver"] == 1
    for tile in response.context["status_tiles"]:  # every tile opens the order list, filtered
        assert admin_client.get(tile["url"]).status_code == 200, tile["url"]
    assert 'id="riders-available">1<' in html
    assert 'id="stuck-count" class="bad">1<' in html
    assert 'href="/admin/orders/order/?stuck=yes"' in html
    assert "<svg" in html and 'href="/admin/live-map/"' in html
    assert 'href="/" ' in html or 'href="/">' in html  # "View site" leads to the landing page


def test_the_stuck_filter_lists_what_the_dashboard_counts(admin_client):
    stuck = place_order()
    age(stuck, minutes=5)
    fresh = place_order()

    response = admin_client.get("/admin/orders/order/?stuck=yes")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [Order.objects.get(pk=stuck.pk)]
    assert fresh.pk not in [order.pk for order in response.context["cl"].result_list]


def test_the_dashboard_needs_staff(customer):
    client = Client()
    client.force_login(customer)

    response = client.get("/admin/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_operations_dashboard_collects_every_figure():
    dashboard = operations_dashboard(now=timezone.now())

    assert len(dashboard["per_minute"]) == 60
    assert dashboard["orders_last_hour"] == 0 and dashboard["stuck"]["count"] == 0
    assert set(dashboard) >= {"active", "finished", "dispatch", "drivers", "stuck"}


def test_the_landing_page_says_what_courier_is_and_links_onwards():
    response = Client().get("/")
    html = response.content.decode()

    assert response.status_code == 200
    assert "order-and-delivery platform" in html
    for link in ('href="/accounts/login/"', 'href="/api/docs/"', 'href="/admin/"'):
        assert link in html


def test_the_landing_page_is_served_in_debug_too(settings):
    settings.DEBUG = True  # where `make run` showed Django's technical 404 listing the URL patterns

    response = Client().get("/")

    assert response.status_code == 200 and b"URLconf" not in response.content


def test_the_indexes_the_dashboard_plans_rest_on_exist():
    """On a million orders every dashboard query is an index range over one of these (plans in BENCHMARKS.md,
    "operations dashboard"); without them each becomes a scan of every order. A test database is too small for
    the planner to show it, so this checks the indexes themselves."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "orders_order")
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"]}
    assert ("created_at",) in indexed  # orders per minute, paid -> assigned (orders placed in the last hour)
    assert ("status", "updated_at") in indexed  # active by status, finished in the last hour, stuck sagas
