"""Request bodies as the real `web` process (uvicorn + the WSGI bridge) receives them from the network."""

import json

import httpx
import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from inventory.tests.factories import ProductFactory, StoreFactory
from orders.models import Order

pytestmark = [pytest.mark.e2e]


def chunks(raw: bytes, size: int = 1000):
    """A generator body: httpx sends it with `Transfer-Encoding: chunked` and no Content-Length."""
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def test_chunked_bodies_are_read_and_bounded(start_process):
    web = start_process("web", WEB_CONCURRENCY="1")
    customer = UserFactory()
    product = ProductFactory(store=StoreFactory(), on_hand=5)
    headers = {
        "Authorization": f"Bearer {RefreshToken.for_user(customer).access_token}",
        "Content-Type": "application/json",
    }
    order = {
        "store_id": str(product.store_id), "items": [{"product_id": str(product.pk), "quantity": 2}],
        "delivery": {"address": "Torstr. 1", "lat": 52.53, "lng": 13.4}, "payment_token": "tok_ok",
    }  # fmt: skip
    http = httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=10)

    placed = http.post("/api/v1/orders", content=chunks(json.dumps(order).encode()),
                       headers={**headers, "Idempotency-Key": "chunked-1"})  # fmt: skip
    padded = {**order, "padding": "x" * 300_000}  # 300 KB, over the 256 KiB limit
    too_large = http.post("/api/v1/orders", content=chunks(json.dumps(padded).encode()),
                          headers={**headers, "Idempotency-Key": "chunked-2"})  # fmt: skip
    empty = http.post("/api/v1/orders", content=chunks(b""), headers={**headers, "Idempotency-Key": "chunked-3"})

    assert placed.request.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in placed.request.headers
    assert placed.status_code == 201, placed.text
    assert too_large.status_code == 413, too_large.text
    assert too_large.headers["Content-Type"] == "application/problem+json"
    assert too_large.json()["code"] == "body_too_large"
    assert empty.status_code == 400 and empty.json()["code"] in {"malformed_request", "validation_error"}
    assert Order.objects.count() == 1
