"""The customer's sign-in, order list and tracking page; the staff live map inside the admin."""

import json

import pytest
from django.test import Client

from common.testing import UserFactory

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
