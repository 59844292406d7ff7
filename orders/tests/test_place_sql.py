"""`orders_place` (migration orders/0006) on its own: one statement, every outcome, and what each one writes."""

import json
import uuid

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from inventory.models import Product, Reservation
from inventory.tests.factories import ProductFactory, StoreFactory
from orders.models import IdempotencyKey, Order, OrderLine, OutboxEvent, TimelineEntry

pytestmark = pytest.mark.django_db

OUT_OF_STOCK = {"code": "out_of_stock", "status": 409}


def place(customer, store, lines, key="k1", fingerprint="f1"):
    """Call the function as `order_place` does; lines are (product id or None, quantity)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT outcome, status, body FROM orders_place(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [customer.pk, key, fingerprint, store.pk, [p for p, _ in lines], [q for _, q in lines], "Torstr. 1",
             52.5, 13.4, "tok_ok", json.dumps(OUT_OF_STOCK)],
        )  # fmt: skip
        outcome, status, body = cursor.fetchone()
    return outcome, status, json.loads(body) if body else None


def counts() -> tuple:
    return tuple(m.objects.count() for m in (Order, OrderLine, Reservation, TimelineEntry, OutboxEvent, IdempotencyKey))


@pytest.fixture
def shop():
    store = StoreFactory()
    return store, ProductFactory(store=store, on_hand=5, price=300), ProductFactory(store=store, on_hand=5, price=20)


def test_created_writes_everything_once_and_answers_the_order(customer, shop):
    store, first, second = shop

    outcome, status, body = place(customer, store, [(second.pk, 2), (first.pk, 1)])

    assert (outcome, status) == ("created", 201)
    assert counts() == (1, 2, 2, 1, 1, 1)
    assert (body["total"], body["currency"], body["status"]) == (2 * 20 + 300, "EUR", "reserved")
    assert [(i["product_id"], i["quantity"]) for i in body["items"]] == [(str(second.pk), 2), (str(first.pk), 1)]
    assert [(p.pk, p.reserved) for p in Product.objects.order_by("pk")] == [(first.pk, 1), (second.pk, 2)]
    assert OutboxEvent.objects.get().payload == {"order_id": body["id"]}
    assert IdempotencyKey.objects.get().response_body == body


def test_the_same_key_replays_and_another_body_is_refused(customer, shop):
    store, product, _ = shop
    _, _, first = place(customer, store, [(product.pk, 1)])

    assert place(customer, store, [(product.pk, 1)]) == ("replayed", 201, first)
    assert place(customer, store, [(product.pk, 2)], fingerprint="f2") == ("reused", 422, None)
    assert counts() == (1, 1, 1, 1, 1, 1)


def test_no_key_means_no_idempotency_row(customer, shop):
    store, product, _ = shop

    assert place(customer, store, [(product.pk, 1)], key=None)[0] == "created"
    assert place(customer, store, [(product.pk, 1)], key=None)[0] == "created"
    assert counts() == (2, 2, 2, 2, 2, 0)


def test_out_of_stock_holds_nothing_and_keeps_its_answer(customer, shop):
    store, plenty, scarce = shop

    outcome, status, body = place(customer, store, [(plenty.pk, 1), (scarce.pk, 6)])

    assert (outcome, status) == ("out_of_stock", 409)
    assert body == {**OUT_OF_STOCK, "items": [{"product_id": str(scarce.pk), "requested": 6, "available": 5}]}
    assert counts() == (0, 0, 0, 0, 0, 1)
    assert set(Product.objects.values_list("reserved", flat=True)) == {0}
    assert place(customer, store, [(plenty.pk, 1), (scarce.pk, 6)]) == ("replayed", 409, body)


@pytest.mark.parametrize(
    "make_lines, problems",
    [
        (lambda p, q, x: [(p.pk, 1), (None, 1)], [{"line": 1, "code": "unknown_product"}]),
        (lambda p, q, x: [(p.pk, 1), (999999, 1)], [{"line": 1, "code": "unknown_product"}]),
        (lambda p, q, x: [(p.pk, 1), (q.pk, 1), (p.pk, 2)], [{"line": 2, "code": "duplicate"}]),
        (lambda p, q, x: [(x.pk, 1), (p.pk, 1)], [{"line": 0, "code": "wrong_store"}]),
        (lambda p, q, x: [(None, 1), (None, 1)], [{"line": 0, "code": "unknown_product"},
                                                  {"line": 1, "code": "unknown_product"}]),
    ],
    ids=["unparseable id", "missing product", "duplicate", "other store", "two unparseable ids"],
)  # fmt: skip
def test_business_rules_write_nothing(customer, shop, make_lines, problems):
    store, product, other = shop
    elsewhere = ProductFactory(store=StoreFactory())

    assert place(customer, store, make_lines(product, other, elsewhere)) == ("invalid", 400, problems)
    assert counts() == (0, 0, 0, 0, 0, 0)
    assert set(Product.objects.values_list("reserved", flat=True)) == {0}


def test_an_inactive_product_or_store_is_refused(customer, shop):
    store, product, retired = shop
    Product.objects.filter(pk=retired.pk).update(is_active=False)

    assert place(customer, store, [(product.pk, 1), (retired.pk, 1)])[2] == [{"line": 1, "code": "unknown_product"}]
    store.is_active = False
    store.save()
    assert place(customer, store, [(product.pk, 1)])[2] == [{"line": None, "code": "unknown_store"}]
    assert place(customer, StoreFactory.build(id=uuid.uuid4()), [(product.pk, 1)])[0] == "invalid"
    assert counts() == (0, 0, 0, 0, 0, 0)


def test_mixed_currencies_are_refused_not_summed(customer, shop):
    store, euros, _ = shop
    dollars = ProductFactory(store=store, currency="USD")

    assert place(customer, store, [(euros.pk, 1), (dollars.pk, 1)]) == (
        "invalid", 400, [{"line": 1, "code": "mixed_currency"}]
    )  # fmt: skip
    assert counts() == (0, 0, 0, 0, 0, 0)


def test_keys_are_per_customer(shop):
    store, product, _ = shop
    first, second = UserFactory(), UserFactory()

    assert place(first, store, [(product.pk, 1)], key="same")[0] == "created"
    assert place(second, store, [(product.pk, 1)], key="same", fingerprint="other")[0] == "created"
