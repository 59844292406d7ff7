import time
import uuid

import httpx
import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from delivery.models import Driver
from delivery.tests.helpers import now_utc
from inventory.tests.factories import ProductFactory, StoreFactory
from orders.tests.helpers import assert_invariants

pytestmark = [pytest.mark.e2e]


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


def wait_for_status(http, order_id, headers, wanted: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = http.get(f"/api/v1/orders/{order_id}", headers=headers).json()
        if order["status"] == wanted:
            return order
        time.sleep(0.1)
    raise AssertionError(f"order stayed {order['status']}, never {wanted}: {order['timeline']}")


def test_order_is_paid_dispatched_and_delivered_through_http_and_real_workers(start_process):
    web = start_process("web")
    start_process("worker")
    start_process("dispatch")
    start_process("relay")
    staff, rider, customer = UserFactory(is_staff=True), UserFactory(name="Rex Rider"), UserFactory()
    store = StoreFactory()
    product = ProductFactory(store=store, on_hand=5)
    http = httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=10)

    made = http.post("/api/v1/drivers", json={"email": rider.email}, headers=bearer(staff))
    assert made.status_code == 201, made.text
    as_rider = bearer(rider)
    assert http.post("/api/v1/drivers/me/status", json={"status": "available"}, headers=as_rider).status_code == 200
    position = {"lat": store.lat + 0.005, "lng": store.lng, "recorded_at": now_utc().isoformat()}
    assert http.post("/api/v1/drivers/me/locations", json={"points": [position]}, headers=as_rider).status_code == 202

    as_customer = bearer(customer)
    placed = http.post(
        "/api/v1/orders",
        json={"store_id": str(store.pk), "items": [{"product_id": str(product.pk), "quantity": 1}],
              "delivery": {"address": "Torstr. 1", "lat": 52.53, "lng": 13.40}, "payment_token": "tok_ok"},
        headers={**as_customer, "Idempotency-Key": str(uuid.uuid4())},
    )  # fmt: skip
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    assigned = wait_for_status(http, order_id, as_customer, "assigned")
    assert assigned["driver"] == {"id": made.json()["id"], "name": "Rex Rider"}
    tracking = http.get(f"/api/v1/orders/{order_id}/tracking", headers=as_customer).json()
    assert tracking["position"]["lat"] == position["lat"] and tracking["eta_seconds"] > 0
    assignment = http.get("/api/v1/drivers/me/assignment", headers=as_rider).json()
    for move in ("accept", "pickup", "deliver"):
        answer = http.post(f"/api/v1/assignments/{assignment['id']}/{move}", headers=as_rider)
        assert answer.status_code == 200, answer.text

    delivered = wait_for_status(http, order_id, as_customer, "delivered", timeout=5)
    steps = [entry["step"] for entry in delivered["timeline"]]
    assert steps[:4] == ["reserve_stock", "charge_payment", "commit_stock", "assign_driver"]
    assert steps[-3:] == ["accept_delivery", "pick_up", "deliver"]
    assert Driver.objects.get(user=rider).status == "available"
    assert http.get("/api/v1/drivers/me/assignment", headers=as_rider).status_code == 204
    assert_invariants()
