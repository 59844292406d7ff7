from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from accounts.tests.factories import UserFactory, bearer_client
from inventory.models import Product, Reservation
from inventory.tests.factories import ProductFactory
from orders.api import OrderOutput
from orders.models import IdempotencyKey, Order

pytestmark = pytest.mark.django_db


def order_body(store, *lines, token="tok_ok", lat=52.52, lng=13.40):
    return {
        "store_id": str(store.pk),
        "items": [{"product_id": str(p.pk), "quantity": q} for p, q in lines],
        "delivery": {"address": "Torstr. 1, Berlin", "lat": lat, "lng": lng},
        "payment_token": token,
    }


@contextmanager
def holding_the_key(user, key: str):
    """Another connection in the middle of placing an order with (user, key): it holds the key's advisory lock."""
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s || ':' || %s, 0))", [str(user.pk), key])
        yield
        other.rollback()


def post_order(api, body, key="key-1"):
    return api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_create_order_holds_stock_and_answers_reserved(customer_api, customer, store, product):
    response = post_order(customer_api, order_body(store, (product, 3)))

    assert response.status_code == 201, response.json()
    order = response.json()
    assert order["status"] == "reserved"
    assert order["total"] == 3 * product.price and order["currency"] == "EUR"
    assert order["items"] == [{"product_id": str(product.pk), "name": product.name, "quantity": 3, "unit_price": 1250}]
    assert order["customer_id"] == str(customer.pk)
    assert order["timeline"][0]["step"] == "reserve_stock"
    product.refresh_from_db()
    assert (product.on_hand, product.reserved, product.available) == (10, 3, 7)


def test_out_of_stock_holds_nothing_and_creates_no_order(customer_api, store, product):
    other = Product.objects.create(store=store, sku="X", name="X", price=100, currency="EUR", on_hand=5)

    response = post_order(customer_api, order_body(store, (product, 11), (other, 2)))

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "out_of_stock"
    assert body["items"] == [{"product_id": str(product.pk), "requested": 11, "available": 10}]
    assert Order.objects.count() == 0 and Reservation.objects.count() == 0
    assert Product.objects.get(pk=other.pk).reserved == 0


def test_same_key_same_body_replays_the_first_answer(customer_api, store, product):
    body = order_body(store, (product, 1))
    first = post_order(customer_api, body)

    again = post_order(customer_api, body)

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=product.pk).reserved == 1


def test_same_key_other_body_is_422(customer_api, store, product):
    post_order(customer_api, order_body(store, (product, 1)))

    response = post_order(customer_api, order_body(store, (product, 2)))

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_key_still_in_flight_is_409(customer_api, customer, store, product):
    body = order_body(store, (product, 1))

    with holding_the_key(customer, "busy"):  # another transaction is placing with this key right now
        response = post_order(customer_api, body, key="busy")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_in_flight"
    assert Order.objects.count() == 0 and IdempotencyKey.objects.count() == 0
    assert post_order(customer_api, body, key="busy").status_code == 201  # free once that transaction ended


def test_the_answer_is_what_the_order_reads_like_afterwards(customer_api, store, product):
    other = ProductFactory(store=store, price=199)

    answer = post_order(customer_api, order_body(store, (other, 2), (product, 1))).json()

    assert answer == OrderOutput(Order.objects.get(pk=answer["id"])).data
    assert [item["product_id"] for item in answer["items"]] == [str(other.pk), str(product.pk)]  # client's order


def test_keys_are_scoped_per_user(customer_api, store, product):

    other_api = bearer_client(UserFactory())
    post_order(customer_api, order_body(store, (product, 1)), key="shared")

    response = post_order(other_api, order_body(store, (product, 2)), key="shared")

    assert response.status_code == 201
    assert Order.objects.count() == 2


def test_out_of_stock_answer_is_replayed_too(customer_api, store, product):
    body = order_body(store, (product, 50))
    first = post_order(customer_api, body)

    again = post_order(customer_api, body)

    assert first.status_code == again.status_code == 409
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.django_db(transaction=True)
def test_a_request_that_fails_midway_leaves_no_claim_and_its_retry_runs():
    product = ProductFactory(on_hand=5)
    api = bearer_client(UserFactory())
    body = order_body(product.store, (product, 1))
    with connection.cursor() as cursor:  # the last insert of the statement fails, as on a dying database
        cursor.execute(
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'disk full'; END $$;"
            "CREATE TRIGGER test_refuse BEFORE INSERT ON orders_idempotencykey EXECUTE FUNCTION test_refuse()"
        )
    api.raise_request_exception = False
    try:
        failed = post_order(api, body)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse ON orders_idempotencykey; DROP FUNCTION test_refuse()")

    assert failed.status_code == 500
    assert (IdempotencyKey.objects.count(), Order.objects.count(), Product.objects.get(pk=product.pk).reserved) == (
        0, 0, 0
    )  # fmt: skip
    retry = post_order(api, body)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry
