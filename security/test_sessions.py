"""Cookie-authenticated writes need their CSRF token, and sign-in never redirects off the site
(OWASP API8: security misconfiguration)."""

import pytest
from django.conf import settings
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory
from orders.models import Order
from orders.tests.helpers import place_order, run_saga

pytestmark = pytest.mark.django_db


def session_of(user) -> Client:
    """A browser signed in with a session cookie that, like a real one, must show its CSRF token on writes."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def refused(response) -> None:
    assert response.status_code == 403, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {"permission_denied", "csrf_failed"}


def test_a_cookie_authenticated_api_write_without_its_csrf_token_is_refused(customer, product):
    body = {"store_id": str(product.store_id), "items": [{"product_id": str(product.pk), "quantity": 1}],
            "delivery": {"address": "a", "lat": 1, "lng": 1}, "payment_token": "tok_ok"}  # fmt: skip

    refused(session_of(customer).post("/api/v1/orders", body, content_type="application/json",
                                      HTTP_IDEMPOTENCY_KEY="csrf-1"))  # fmt: skip
    assert not Order.objects.exists()


def test_a_cookie_authenticated_cancel_without_its_csrf_token_is_refused(customer):
    order = place_order(customer=customer)
    run_saga(order)

    refused(session_of(customer).post(f"/api/v1/orders/{order.pk}/cancel", content_type="application/json"))
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_with_its_csrf_token_the_same_cookie_write_goes_through(customer):
    order = place_order(customer=customer)
    client = session_of(customer)
    client.get("/track/")  # a page of ours sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.post(f"/api/v1/orders/{order.pk}/cancel", content_type="application/json", HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 200, response.content
    assert Order.objects.get(pk=order.pk).status == "cancelled"


def test_an_admin_action_without_its_csrf_token_is_refused():
    staff = UserFactory(is_staff=True, is_superuser=True)
    order = place_order()
    run_saga(order)

    response = session_of(staff).post(
        "/admin/orders/order/", {"action": "cancel_with_refund", "_selected_action": [str(order.pk)], "index": 0}
    )

    refused(response)
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.parametrize("path", ["/admin/login/", "/accounts/login/"])
def test_a_sign_in_without_its_csrf_token_is_refused(customer, path):
    response = Client(enforce_csrf_checks=True).post(path, {"username": customer.email, "password": PASSWORD})

    refused(response)
    assert "_auth_user_id" not in Client().session


FOREIGN = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    "https:evil.example",
    "http://testserver@evil.example/",
    "javascript:alert(1)",
    " //evil.example",
]


@pytest.mark.parametrize("target", FOREIGN, ids=repr)
@pytest.mark.parametrize(
    "path, user_kwargs, home",
    [("/accounts/login/", {}, "/track/"), ("/admin/login/", {"is_staff": True}, "/admin/")],
)
def test_sign_in_never_redirects_off_the_site(path, user_kwargs, home, target):
    user = UserFactory(**user_kwargs)

    response = Client().post(f"{path}?next={target}", {"username": user.email, "password": PASSWORD, "next": target})

    assert response.status_code == 302, response.content[:300]
    assert response["Location"] in {home, settings.LOGIN_REDIRECT_URL}  # a foreign `next` is dropped
