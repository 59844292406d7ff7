"""The saga's two statements (migration orders/0007) on their own: what each writes, and that both are safe twice."""

import pytest
from django.db import connection

from inventory.models import Product, Reservation
from orders.models import Order, OutboxEvent, Payment, TimelineEntry
from orders.tests.helpers import place_order

pytestmark = pytest.mark.django_db


def charge_begin(order_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM orders_charge_begin(%s)", [order_id])
        return cursor.fetchone()


def mark_paid(order_id, reference="ch_1", attempt=1):
    with connection.cursor() as cursor:
        cursor.execute("SELECT orders_mark_paid(%s, %s, %s, %s)", [order_id, reference, attempt, 12.5])
        return cursor.fetchone()[0]


def test_charge_begin_creates_the_payment_and_counts_pending_attempts():
    order = place_order(quantity=2)

    first, second = charge_begin(order.pk), charge_begin(order.pk)

    assert first[:4] == ("reserved", order.total, "EUR", "tok_ok")
    assert (first[5], first[6], second[6]) == ("pending", 1, 2)
    assert Payment.objects.get(order=order).attempts == 2
    Payment.objects.filter(order=order).update(status="succeeded", charge_reference="ch_9")
    assert charge_begin(order.pk)[5:] == ("succeeded", 2, "ch_9")  # not counted once it is no longer pending


def test_charge_begin_leaves_a_finished_order_alone_and_knows_no_stranger():
    order = place_order()
    Order.objects.filter(pk=order.pk).update(status="cancelled", cancel_reason="customer")

    assert charge_begin(order.pk)[0] == "cancelled" and not Payment.objects.exists()
    assert charge_begin("00000000-0000-0000-0000-000000000000") is None


def test_mark_paid_commits_stock_and_records_everything_in_one_commit():
    order = place_order(quantity=3)
    charge_begin(order.pk)

    assert mark_paid(order.pk) == "paid"

    product = Product.objects.get(pk=order.lines.get().product_id)
    assert (product.on_hand, product.reserved) == (7, 0)
    assert Reservation.objects.get(order_id=order.pk).state == "committed"
    assert Payment.objects.get(order=order).status == "succeeded"
    assert Order.objects.get(pk=order.pk).awaiting_driver  # dispatch's to find a driver for
    assert list(TimelineEntry.objects.filter(order=order).values_list("step", "status")) == [
        ("reserve_stock", "succeeded"), ("charge_payment", "succeeded"), ("commit_stock", "succeeded"),
    ]  # fmt: skip
    topics = list(OutboxEvent.objects.filter(payload__order_id=str(order.pk)).values_list("topic", flat=True))
    assert sorted(topics) == ["order.paid", "order.reserved", "order.status_changed"]


def test_mark_paid_twice_changes_nothing_more():
    order = place_order(quantity=1)
    charge_begin(order.pk)
    mark_paid(order.pk)

    assert mark_paid(order.pk, attempt=None) == "paid"

    product = Product.objects.get(pk=order.lines.get().product_id)
    assert (product.on_hand, product.reserved) == (9, 0)
    assert OutboxEvent.objects.filter(topic="order.paid").count() == 1
    assert TimelineEntry.objects.filter(order=order, step="commit_stock").count() == 1


def test_mark_paid_on_a_cancelled_order_only_records_the_money():
    order = place_order(quantity=1)
    charge_begin(order.pk)
    from orders import services

    services.order_cancel(order_id=order.pk, reason="customer")

    assert mark_paid(order.pk) == "cancelled"
    assert Payment.objects.get(order=order).status == "succeeded"  # the caller refunds it next
    assert Product.objects.get(pk=order.lines.get().product_id).reserved == 0
