"""Hostile JSON bodies: deeply nested, NUL-laden, oversized. Refused as 4xx problems, never a 500."""

import json

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import bearer_client
from common.parsers import MAX_JSON_DEPTH
from delivery.tests.helpers import make_driver
from orders.models import Order

pytestmark = pytest.mark.django_db

NESTED_ARRAYS = "[" * 1000 + "]" * 1000  # 2 KB: Python's decoder gives up with RecursionError
NESTED_OBJECTS = '{"a":' * 1000 + "1" + "}" * 1000


def nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def endpoints(customer):
    driver = make_driver(at=None)
    anonymous, signed_in = APIClient(), bearer_client(customer)
    return {
        "register": (anonymous, "/api/v1/auth/register"),
        "token": (anonymous, "/api/v1/auth/token"),
        "refresh": (anonymous, "/api/v1/auth/token/refresh"),
        "orders": (signed_in, "/api/v1/orders"),
        "locations": (bearer_client(driver.user), "/api/v1/drivers/me/locations"),
    }


@pytest.mark.parametrize("name", ["register", "token", "refresh", "orders", "locations"])
@pytest.mark.parametrize("raw", [NESTED_ARRAYS, NESTED_OBJECTS, json.dumps({"items": nested(MAX_JSON_DEPTH)})])
def test_deeply_nested_json_is_a_400_problem(customer, name, raw):
    client, path = endpoints(customer)[name]

    response = client.post(path, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nested")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "malformed_request"
    assert not Order.objects.exists()


def test_nesting_up_to_the_limit_is_parsed_and_validated(customer):
    client, path = endpoints(customer)["orders"]
    raw = json.dumps({"items": nested(MAX_JSON_DEPTH - 1)})  # with the object around it: exactly the limit

    response = client.post(path, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nested")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"  # read, then refused for its content


NUL = "a\u0000b"


@pytest.mark.parametrize(
    "name, body",
    [
        ("register", {"email": "nul@example.com", "password": "a sturdy passphrase 42", "name": NUL}),
        ("register", {"email": "n\u0000l@example.com", "password": "a sturdy passphrase 42", "name": "Nul"}),
        ("register", {"email": "nul@example.com", "password": "a sturdy \u0000 passphrase", "name": "Nul"}),
        ("token", {"email": "n\u0000l@example.com", "password": "x"}),
        ("refresh", {"refresh": NUL}),
        ("locations", {"points": [{"lat": 1, "lng": 1, "recorded_at": "2026-11-21T10:00:00\u0000Z"}]}),
    ],
    ids=repr,
)
def test_nul_characters_are_refused_not_stored_or_crashing(customer, name, body):
    client, path = endpoints(customer)[name]

    response = client.post(path, body, format="json")

    assert response.status_code in {400, 401}, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert not User.objects.filter(email__startswith="n").exists()


@pytest.mark.parametrize("field", ["address", "payment_token", "product_id", "store_id"])
def test_nul_characters_in_an_order_are_400_and_nothing_is_written(customer, store, product, field):
    client, path = endpoints(customer)["orders"]
    body = {"store_id": str(store.pk), "items": [{"product_id": str(product.pk), "quantity": 1}],
            "delivery": {"address": "Torstr. 1", "lat": 52.5, "lng": 13.4}, "payment_token": "tok_ok"}  # fmt: skip
    if field == "address":
        body["delivery"]["address"] = NUL
    elif field == "product_id":
        body["items"][0]["product_id"] = f"{product.pk}\u0000"
    else:
        body[field] = f"{body[field]}\u0000"

    response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="nul")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert not Order.objects.exists()


@pytest.mark.parametrize("name", ["register", "token", "refresh", "orders", "locations"])
def test_a_body_over_the_limit_is_413_on_every_endpoint(customer, name, settings):
    client, path = endpoints(customer)[name]
    raw = json.dumps({"padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})

    response = client.post(path, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big")

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert not Order.objects.exists()
