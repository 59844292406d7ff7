"""Invariants under load: many threads against the real PostgreSQL, each with its own connection."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import close_old_connections

from accounts.tests.factories import UserFactory, bearer_client
from inventory.models import Product
from inventory.tests.factories import ProductFactory
from orders import services
from orders.models import Order
from orders.tests.helpers import assert_invariants, gateway_books, place_order
from orders.tests.test_create_api import order_body

pytestmark = pytest.mark.django_db(transaction=True)


def hammer(n: int, work):
    """Run `work(i)` on n threads released at the same instant; returns the results in order."""
    barrier = Barrier(n)

    def run(i):
        try:
            barrier.wait()
            return work(i)
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_no_oversell_when_many_buyers_race_for_few_units():
    product = ProductFactory(on_hand=10)
    buyers = [bearer_client(UserFactory()) for _ in range(40)]

    statuses = hammer(40, lambda i: buyers[i].post(
        "/api/v1/orders", order_body(product.store, (product, 1)), format="json", HTTP_IDEMPOTENCY_KEY=f"k{i}"
    ).status_code)  # fmt: skip

    product.refresh_from_db()
    assert statuses.count(201) == 10 and statuses.count(409) == 30
    assert (product.on_hand, product.reserved, product.available) == (10, 10, 0)
    assert Order.objects.count() == 10
    assert_invariants()


def test_multi_line_orders_never_deadlock_or_oversell():
    store_product = ProductFactory(on_hand=30)
    other = ProductFactory(store=store_product.store, on_hand=30)
    buyers = [bearer_client(UserFactory()) for _ in range(24)]

    def buy(i):
        lines = [(store_product, 2), (other, 2)] if i % 2 else [(other, 2), (store_product, 2)]
        return buyers[i].post("/api/v1/orders", order_body(store_product.store, *lines), format="json",
                              HTTP_IDEMPOTENCY_KEY=f"k{i}").status_code  # fmt: skip

    statuses = hammer(24, buy)

    assert statuses.count(201) == 15 and statuses.count(409) == 9
    assert set(Product.objects.values_list("reserved", flat=True)) == {30}
    assert_invariants()


def test_concurrent_retries_with_one_key_make_one_order():
    product = ProductFactory(on_hand=100)
    customer = UserFactory()
    clients = [bearer_client(customer) for _ in range(16)]
    body = order_body(product.store, (product, 1))

    responses = hammer(
        16, lambda i: clients[i].post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=product.pk).reserved == 1
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    assert all(r.json()["code"] == "idempotency_in_flight" for r in responses if r.status_code == 409)


def test_charge_step_running_concurrently_charges_once():
    order = place_order(quantity=3)

    hammer(8, lambda i: services.order_saga_advance(order_id=order.pk))

    order.refresh_from_db()
    product = Product.objects.get(pk=order.lines.get().product_id)
    assert order.status == "paid"
    assert gateway_books(order).charges == 1
    assert (product.on_hand, product.reserved) == (7, 0)
    assert order.timeline.filter(step="commit_stock").count() == 1
    assert_invariants()


def test_cancel_racing_the_saga_leaves_money_and_stock_consistent():
    orders = [place_order(quantity=1) for _ in range(10)]

    def work(i):
        order = orders[i // 2]
        if i % 2:
            services.order_saga_advance(order_id=order.pk)
        else:
            services.order_cancel_and_settle(order_id=order.pk, reason="customer")
        services.order_saga_advance(order_id=order.pk)  # what the outbox-driven saga does next

    hammer(20, work)

    assert set(Order.objects.values_list("status", flat=True)) == {"cancelled"}
    assert_invariants()
