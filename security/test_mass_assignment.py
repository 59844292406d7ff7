"""Fields a client may not set are ignored or refused, never written (OWASP API3: broken object property level
authorization): status, totals, stock counters, staff flags."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import bearer_client
from delivery.tests.helpers import make_driver
from inventory.models import Product
from orders.models import Order, Payment

pytestmark = pytest.mark.django_db


def test_register_cannot_make_staff_or_choose_an_id():
    body = {"email": "eve@example.com", "password": "a sturdy passphrase 42", "name": "Eve", "is_staff": True,
            "is_superuser": True, "is_active": False, "id": 1, "driver_id": "1"}  # fmt: skip

    response = APIClient().post("/api/v1/auth/register", body, format="json")

    assert response.status_code == 201, response.content
    eve = User.objects.get(email="eve@example.com")
    assert (eve.is_staff, eve.is_superuser, eve.is_active) == (False, False, True)
    assert not hasattr(eve, "driver")


def test_an_order_cannot_set_its_status_total_price_customer_or_payment(customer, customer_api, store, product, staff):
    body = {
        "store_id": str(store.pk), "items": [{"product_id": str(product.pk), "quantity": 2, "unit_price": 1}],
        "delivery": {"address": "Torstr. 1", "lat": 52.5, "lng": 13.4}, "payment_token": "tok_ok",
        "status": "delivered", "total": 1, "currency": "XXX", "customer_id": str(staff.pk),
        "payment": {"status": "succeeded", "amount": 1}, "cancel_reason": "staff", "driver": {"id": "1"},
    }  # fmt: skip

    response = customer_api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="mass-1")

    assert response.status_code == 201, response.content
    order = Order.objects.get()
    assert (order.status, order.total, order.currency, order.customer_id) == (
        "reserved", 2 * product.price, product.currency, customer.pk
    )  # fmt: skip
    assert order.lines.get().unit_price == product.price and order.driver is None
    assert not Payment.objects.exists()


def test_a_new_product_cannot_set_its_reserved_or_available_stock(staff_api, store):
    body = {"store_id": str(store.pk), "sku": "MASS-1", "name": "Bread", "price": 250, "currency": "EUR", "stock": 5,
            "reserved": 5, "on_hand": 999, "available": 999}  # fmt: skip

    response = staff_api.post("/api/v1/products", body, format="json")

    assert response.status_code == 201, response.content
    product = Product.objects.get(sku="MASS-1")
    assert (product.on_hand, product.reserved, response.json()["available"]) == (5, 0, 5)


def test_restock_moves_only_on_hand(staff_api, product):
    response = staff_api.post(f"/api/v1/products/{product.pk}/restock", {"quantity": 3, "reserved": 7}, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.on_hand, product.reserved) == (13, 0)


@pytest.mark.parametrize("status", ["busy", "BUSY", "delivering", None])
def test_a_driver_cannot_declare_itself_busy_or_anything_but_available_or_offline(status):
    driver = make_driver(at=None, status="offline")

    response = bearer_client(driver.user).post("/api/v1/drivers/me/status", {"status": status}, format="json")

    assert response.status_code == 400
    driver.refresh_from_db()
    assert driver.status == "offline"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_orders_and_products_cannot_be_edited_through_the_api(customer_api, staff_api, product, method):
    order = customer_api.post(
        "/api/v1/orders",
        {"store_id": str(product.store_id), "items": [{"product_id": str(product.pk), "quantity": 1}],
         "delivery": {"address": "a", "lat": 1, "lng": 1}, "payment_token": "tok_ok"},
        format="json", HTTP_IDEMPOTENCY_KEY="mass-2",
    ).json()  # fmt: skip

    as_customer = getattr(customer_api, method)(f"/api/v1/orders/{order['id']}", {"status": "delivered"}, format="json")
    as_staff = getattr(staff_api, method)(f"/api/v1/products/{product.pk}", {"reserved": 0}, format="json")

    assert as_customer.status_code == as_staff.status_code == 405
    assert Order.objects.get().status == "reserved"
