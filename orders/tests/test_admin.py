import json
import re

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from inventory.models import Product, Reservation
from inventory.tests.factories import ProductFactory, StoreFactory
from orders import services
from orders.models import Order
from orders.tests.helpers import assert_invariants, place_order, run_saga

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/orders/order/"


def run_action(client, action, *orders):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(o.pk) for o in orders], "index": 0}, follow=True
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def picked_up_order():
    order = place_order()
    run_saga(order)
    services.order_assign_driver(order_id=order.pk, driver_id=7)
    services.order_mark_picked_up(order_id=order.pk, driver_id=7)
    return order


def saga_queue() -> list[dict]:
    """The messages waiting in the broker's `saga` queue (the test Redis database)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return [json.loads(raw) for raw in broker.lrange("saga", 0, -1)]


def test_changelist_renders_with_every_filter_and_search(admin_client):
    order = place_order()
    customer_email = order.customer.email

    for query in [
        "", "?status__exact=reserved", "?status__exact=cancelled", f"?store__id__exact={order.store_id}",
        "?created_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00", "?cancel_reason__exact=staff", f"?q={order.pk}",
        f"?q={customer_email}", f"?q={customer_email.split('@')[0]}", "?q=nobody", "?o=6",
    ]:  # fmt: skip
        response = admin_client.get(CHANGELIST + query)
        assert response.status_code == 200, query

    assert str(order.pk) in admin_client.get(f"{CHANGELIST}?q={order.pk}").content.decode()
    assert str(order.pk) in admin_client.get(f"{CHANGELIST}?q={customer_email.upper()}").content.decode()
    assert str(order.pk) not in admin_client.get(f"{CHANGELIST}?q=nobody@example.com").content.decode()


def test_changelist_query_count_does_not_grow_with_orders(admin_client):
    place_order()
    with CaptureQueriesContext(connection) as one:
        admin_client.get(CHANGELIST)
    for _ in range(6):
        run_saga(place_order())

    with CaptureQueriesContext(connection) as seven:
        response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert len(seven) == len(one)


def test_change_page_shows_lines_payment_and_timeline_read_only(admin_client):
    order = place_order(quantity=3)
    run_saga(order)

    response = admin_client.get(f"{CHANGELIST}{order.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    for text in ["charge_payment", "commit_stock", "reserve_stock", "succeeded", "37.50 EUR"]:
        assert text in page
    assert 'name="_save"' not in page  # nothing to save: the order changes only through actions
    assert 'name="status"' not in page and 'name="total"' not in page


def test_change_page_query_count_does_not_grow_with_lines(admin_client):
    store = StoreFactory()
    small = services.order_create(
        customer=UserFactory(), store=store,
        lines=[services.LineInput(product=ProductFactory(store=store), quantity=1)],
        delivery_address="x", delivery_lat=0, delivery_lng=0, payment_token="tok_ok",
    )  # fmt: skip
    big = services.order_create(
        customer=UserFactory(), store=store,
        lines=[services.LineInput(product=ProductFactory(store=store), quantity=1) for _ in range(8)],
        delivery_address="x", delivery_lat=0, delivery_lng=0, payment_token="tok_ok",
    )  # fmt: skip

    with CaptureQueriesContext(connection) as one_line:
        admin_client.get(f"{CHANGELIST}{small.pk}/change/")
    with CaptureQueriesContext(connection) as eight_lines:
        admin_client.get(f"{CHANGELIST}{big.pk}/change/")

    assert len(eight_lines) == len(one_line)


def test_posting_the_change_form_changes_nothing(admin_client):
    order = place_order()

    response = admin_client.post(f"{CHANGELIST}{order.pk}/change/", {"status": "delivered", "total": 1})

    assert response.status_code == 403
    order.refresh_from_db()
    assert (order.status, order.total) == ("reserved", 2500)


def test_cancel_with_refund_on_a_reserved_order_releases_stock(admin_client):
    order = place_order(quantity=4)
    product = Product.objects.get(pk=order.lines.get().product_id)

    response = run_action(admin_client, "cancel_with_refund", order)

    assert response.status_code == 200
    assert "Cancelled 1 order(s)" in " ".join(messages_of(response))
    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "staff")
    assert (product.on_hand, product.reserved) == (10, 0)
    assert Reservation.objects.get(order_id=order.pk).state == "released"
    assert_invariants()


def test_cancel_with_refund_on_a_paid_order_refunds_and_restocks(admin_client):
    order = place_order(quantity=2)
    run_saga(order)
    product = Product.objects.get(pk=order.lines.get().product_id)
    assert (product.on_hand, product.reserved) == (8, 0)

    run_action(admin_client, "cancel_with_refund", order)

    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "staff")
    assert (order.payment.status, order.payment.refunded_amount) == ("refunded", order.total)
    assert (product.on_hand, product.reserved) == (10, 0)
    assert_invariants()


def test_cancel_reports_each_order_it_could_not_cancel(admin_client):
    cancellable = place_order()
    on_its_way = picked_up_order()
    already = place_order()
    services.order_cancel(order_id=already.pk, reason="customer")

    response = run_action(admin_client, "cancel_with_refund", cancellable, on_its_way, already)

    text = " | ".join(messages_of(response))
    assert "Cancelled 1 order(s)" in text
    assert f"Not cancelled: {on_its_way.pk}" in text and "not_cancellable" in text
    assert "1 order(s) were already cancelled" in text
    assert Order.objects.get(pk=on_its_way.pk).status == "picked_up"
    assert Order.objects.get(pk=already.pk).cancel_reason == "customer"  # the first reason stands
    assert Order.objects.get(pk=cancellable.pk).status == "cancelled"


def test_redrive_queues_the_saga_task_for_reserved_and_cancelled_orders(admin_client):
    stuck = place_order()
    unsettled = place_order()
    services.order_cancel(order_id=unsettled.pk, reason="staff")
    delivered_soon = picked_up_order()

    response = run_action(admin_client, "redrive_saga", stuck, unsettled, delivered_soon)

    text = " | ".join(messages_of(response))
    assert "Queued the saga for 2 order(s)" in text and "1 order(s) skipped" in text
    queued = saga_queue()
    assert {m["headers"]["task"] for m in queued} == {"orders.tasks.order_saga_task"}
    assert sorted(m["headers"]["argsrepr"] for m in queued) == sorted(
        [repr((str(stuck.pk),)), repr((str(unsettled.pk),))]
    )


def test_non_staff_are_sent_to_the_login_page(customer):
    client = Client()
    client.force_login(customer)

    for url in [CHANGELIST, "/admin/inventory/product/", "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    assert Client().get(CHANGELIST).status_code == 302


def test_non_staff_cannot_run_actions(customer):
    order = place_order()
    client = Client()
    client.force_login(customer)

    response = run_action(client, "cancel_with_refund", order)

    assert response.redirect_chain[0][0].startswith("/admin/login/")
    assert Order.objects.get(pk=order.pk).status == "reserved"


def test_staff_who_may_only_view_orders_get_no_actions(staff):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_order"))
    order = place_order()
    client = Client()
    client.force_login(staff)

    changelist = client.get(CHANGELIST)
    assert changelist.status_code == 200
    assert "cancel_with_refund" not in changelist.content.decode()
    detail = client.get(f"{CHANGELIST}{order.pk}/change/")
    assert detail.status_code == 200 and "reserve_stock" in detail.content.decode()  # the timeline inline too
    run_action(client, "cancel_with_refund", order)

    assert Order.objects.get(pk=order.pk).status == "reserved"


def test_outbox_changelist_renders(admin_client):
    place_order()

    assert admin_client.get("/admin/orders/outboxevent/").status_code == 200
    assert admin_client.get("/admin/orders/outboxevent/?published_at__isempty=1").status_code == 200


def test_the_order_page_formats_money_and_times_for_people(admin_client):
    order = place_order()
    run_saga(order)

    html = admin_client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()

    assert "Succeeded 25.00 EUR" in html and "2500 EUR" not in html  # the payment's header
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3}", html)  # saga times to the millisecond
    assert f'href="/track/{order.pk}/"' in html and 'href="/admin/live-map/"' in html


def test_the_order_list_shows_short_ids_linking_to_the_full_order(admin_client):
    order = place_order(token="tok_declined")
    run_saga(order)

    html = admin_client.get(CHANGELIST).content.decode()

    assert f'href="/admin/orders/order/{order.pk}/change/" title="{order.pk}">{str(order.pk)[:8]}</a>' in html
    assert "Cancelled (payment declined)" in html and "25.00 EUR" in html
