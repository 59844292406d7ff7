"""The customer's sign-in, order list and tracking page; the staff live map inside the admin."""

import json

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from tracking.tests.conftest import place_order

PASSWORD = "correct horse battery staple"


def page_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="tracking-page" type="application/json">') + len(
        '<script id="tracking-page" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_anonymous_visitors_are_sent_to_the_login_page(assigned_order):
    response = Client().get(f"/track/{assigned_order.pk}/")

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/track/{assigned_order.pk}/"


def test_the_customer_signs_in_and_lands_on_the_tracking_page(assigned_order, customer):
    client = Client()
    login_page = client.get("/accounts/login/")

    response = client.post(
        "/accounts/login/",
        {"username": customer.email, "password": PASSWORD, "next": f"/track/{assigned_order.pk}/"},
    )

    assert login_page.status_code == 200 and b'name="password"' in login_page.content
    assert response.status_code == 302 and response["Location"] == f"/track/{assigned_order.pk}/"
    assert client.get(response["Location"]).status_code == 200


def test_a_wrong_password_shows_the_form_again_with_an_error(customer):
    response = Client().post("/accounts/login/", {"username": customer.email, "password": "nope"})

    assert response.status_code == 200
    assert b'role="alert"' in response.content


def test_login_without_next_goes_to_the_customers_orders(assigned_order, customer):
    client = Client()

    response = client.post("/accounts/login/", {"username": customer.email, "password": PASSWORD})
    orders = client.get(response["Location"])

    assert response["Location"] == "/track/"
    assert f"/track/{assigned_order.pk}/".encode() in orders.content


def test_login_does_not_redirect_off_site(customer):
    response = Client().post(
        "/accounts/login/", {"username": customer.email, "password": PASSWORD, "next": "https://evil.example/"}
    )

    assert response["Location"] == "/track/"


def test_the_tracking_page_carries_the_places_steps_and_socket(assigned_order, customer):
    client = Client()
    client.force_login(customer)

    response = client.get(f"/track/{assigned_order.pk}/")
    data = page_data(response)

    assert response.status_code == 200
    assert b"leaflet/leaflet.js" in response.content and b"tracking/track.js" in response.content
    assert data["ws_path"] == f"/ws/orders/{assigned_order.pk}/"
    assert data["status"] == "assigned"
    assert data["store"]["lat"] == pytest.approx(52.5219)
    assert data["destination"] == {"address": "Torstrasse 1, Berlin", "lat": 52.53, "lng": 13.40}
    assert [step["status"] for step in data["steps"]] == ["reserved", "paid", "assigned", "picked_up", "delivered"]
    assert all(step["at"] for step in data["steps"][:3]) and data["steps"][3]["at"] is None


def test_someone_elses_order_is_404_like_a_missing_one(assigned_order):
    client = Client()
    client.force_login(UserFactory())

    assert client.get(f"/track/{assigned_order.pk}/").status_code == 404
    assert client.get("/track/00000000-0000-4000-8000-000000000000/").status_code == 404


def test_the_map_library_is_served_from_its_package(db):
    response = Client().get("/static/leaflet/leaflet.js")

    assert response.status_code == 200
    assert b"Leaflet" in b"".join(response.streaming_content if response.streaming else [response.content])


def test_the_live_map_is_inside_the_admin_for_staff_only(staff, customer):
    staff_client, customer_client = Client(), Client()
    staff_client.force_login(staff)
    customer_client.force_login(customer)

    page = staff_client.get("/admin/live-map/")
    refused = customer_client.get("/admin/live-map/")

    assert page.status_code == 200
    assert b"fleet-map" in page.content and b'id="header"' in page.content  # the admin's own chrome
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")


def test_the_tracking_page_says_what_was_ordered_and_where_it_is(assigned_order, customer):
    client = Client()
    client.force_login(customer)

    html = client.get(f"/track/{assigned_order.pk}/").content.decode()

    assert f'Order <span id="order-number" title="{assigned_order.pk}">{str(assigned_order.pk)[:8].upper()}<' in html
    assert "1 × " in html and "12.50 EUR" in html  # the line and the total, from minor units
    rider = assigned_order.driver.name
    assert f"{rider} is on the way to the store to pick up your order." in html
    assert "52.53" not in html.split('<script id="tracking-page"')[0]  # no raw coordinates on the page


def test_a_cancelled_order_says_why_and_what_happened_to_the_money(customer, product):
    from orders import services as orders

    order = place_order(customer, product)  # paid
    orders.order_cancel_and_settle(order_id=order.pk, reason="no_driver")
    client = Client()
    client.force_login(customer)

    html = client.get(f"/track/{order.pk}/").content.decode()

    assert "Cancelled: no rider was free near the store." in html
    assert "12.50 EUR refunded to your payment method." in html
    assert (
        'id="rider-line" hidden' in html
        and 'id="eta-line" hidden' in html
        and 'id="timeline" class="timeline" hidden' in html
    )


def test_a_declined_order_says_nothing_was_charged(customer, product):
    from orders import services as orders

    order = orders.order_create(
        customer=customer, store=product.store, lines=[orders.LineInput(product=product, quantity=1)],
        delivery_address="Torstrasse 1, Berlin", delivery_lat=52.53, delivery_lng=13.4, payment_token="tok_declined",
    )  # fmt: skip
    while orders.order_saga_advance(order_id=order.pk) is not None:
        pass
    client = Client()
    client.force_login(customer)

    html = client.get(f"/track/{order.pk}/").content.decode()

    assert "Cancelled: your payment was declined." in html and "You were not charged." in html


def test_the_order_list_tells_orders_apart(customer, product):
    first = place_order(customer, product)
    second = place_order(customer, product)
    client = Client()
    client.force_login(customer)

    html = client.get("/track/").content.decode()

    for order in (first, second):
        assert f"Order {str(order.pk)[:8].upper()}" in html
    assert html.count(f"1 × {product.name}") == 2 and html.count("12.50 EUR") == 2
    assert html.index(str(second.pk)) < html.index(str(first.pk))  # newest first
    assert "Paid" in html


def test_a_refund_not_settled_yet_is_on_its_way_and_the_page_looks_again(customer, product):
    from orders import services as orders

    order = place_order(customer, product)  # paid
    orders.order_cancel(order_id=order.pk, reason="customer")  # the refund comes after, in the saga
    client = Client()
    client.force_login(customer)

    response = client.get(f"/track/{order.pk}/")

    assert "Your refund of 12.50 EUR is on its way." in response.content.decode()
    assert page_data(response)["refund_pending"] is True


def test_an_order_given_back_by_its_rider_says_a_new_one_is_being_found(assigned_order, customer):
    from delivery.services import assignments

    assignment = assigned_order.assignments.get()
    assignments.assignment_decline(assignment_id=assignment.pk, driver_id=assignment.driver_id)
    client = Client()
    client.force_login(customer)

    html = client.get(f"/track/{assigned_order.pk}/").content.decode()

    assert "Paid. We are finding a rider near the store." in html
