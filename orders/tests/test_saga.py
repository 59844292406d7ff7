import pytest
from django.core.management.base import CommandError

from inventory.models import Product, Reservation
from orders import events, services
from orders.events import ORDER_PAID, outbox_publish
from orders.gateways import MockGateway
from orders.models import GatewayLedgerEntry, Order, OutboxEvent, Payment
from orders.tests.helpers import assert_invariants, place_order, run_saga

pytestmark = pytest.mark.django_db


def steps(order):
    return [(e.step, e.status) for e in order.timeline.order_by("at", "id")]


def charges(order):
    return GatewayLedgerEntry.objects.filter(reference=str(order.pk), kind="charge").count()


def test_good_payment_commits_stock_and_marks_paid():
    order = place_order(quantity=2)

    run_saga(order)

    order.refresh_from_db()
    product = Product.objects.get(pk=order.lines.get().product_id)
    assert order.status == "paid"
    assert order.payment.status == "succeeded" and order.payment.amount == order.total
    assert (product.on_hand, product.reserved) == (8, 0)
    assert charges(order) == 1
    assert steps(order) == [
        ("reserve_stock", "succeeded"),
        ("charge_payment", "succeeded"),
        ("commit_stock", "succeeded"),
    ]
    assert OutboxEvent.objects.filter(topic=ORDER_PAID, payload__order_id=str(order.pk)).count() == 1
    assert_invariants()


def test_declined_payment_releases_stock_and_cancels():
    order = place_order(token="tok_declined")

    run_saga(order)

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "payment_declined")
    assert order.payment.status == "declined"
    assert Product.objects.get(pk=order.lines.get().product_id).reserved == 0
    assert ("release_stock", "succeeded") in steps(order)
    assert charges(order) == 0
    assert_invariants()


def test_gateway_outage_retries_with_backoff_then_gives_up(settings):
    settings.PAYMENT_MAX_ATTEMPTS = 4
    settings.PAYMENT_BREAKER_FAIL_MAX = 100
    order = place_order(token="tok_error")

    waits = []
    while (wait := services.order_saga_advance(order_id=order.pk)) is not None:
        waits.append(wait)

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "payment_failed")
    assert order.payment.status == "voided" and order.payment.attempts == 4
    assert len(waits) == 3 and all(w > 0 for w in waits)
    assert waits[2] > waits[0]  # exponential: attempt 3 waits in [2b, 4b], attempt 1 in [b/2, b]
    assert [s for s in steps(order) if s[0] == "charge_payment"] == [("charge_payment", "failed")] * 4
    assert Reservation.objects.get(order_id=order.pk).state == "released"
    assert_invariants()


def test_circuit_breaker_opens_after_repeated_failures(settings):
    settings.PAYMENT_BREAKER_FAIL_MAX = 2
    from orders.gateways import get_breaker

    get_breaker.cache_clear()
    try:
        failing = [place_order(token="tok_error") for _ in range(2)]
        for order in failing:
            services.order_saga_advance(order_id=order.pk)
        healthy = place_order(token="tok_ok")

        services.order_saga_advance(order_id=healthy.pk)

        assert healthy.timeline.filter(step="charge_payment", status="failed", detail__contains="circuit open").exists()
        assert charges(healthy) == 0  # the open circuit never called the gateway
    finally:
        get_breaker.cache_clear()


def test_crash_between_charge_and_commit_recovers_without_second_charge():
    order = place_order()
    Payment.objects.create(order=order, amount=order.total, currency=order.currency)
    MockGateway().charge(idempotency_key=str(order.pk), reference=str(order.pk), amount=order.total,
                         currency=order.currency, token="tok_ok", timeout=5)  # fmt: skip  # the worker died here

    run_saga(order)
    run_saga(order)

    order.refresh_from_db()
    assert order.status == "paid" and charges(order) == 1
    assert_invariants()


def test_cancel_after_payment_restocks_and_refunds():
    order = place_order(quantity=3)
    run_saga(order)

    services.order_cancel_and_settle(order_id=order.pk, reason="customer")

    order.refresh_from_db()
    product = Product.objects.get(pk=order.lines.get().product_id)
    assert (order.status, order.cancel_reason) == ("cancelled", "customer")
    assert order.payment.status == "refunded" and order.payment.refunded_amount == order.total
    assert (product.on_hand, product.reserved) == (10, 0)
    assert ("restock", "succeeded") in steps(order) and ("refund_payment", "succeeded") in steps(order)
    assert_invariants()


def test_cancel_is_idempotent():
    order = place_order(quantity=1)
    run_saga(order)

    for _ in range(3):
        services.order_cancel_and_settle(order_id=order.pk, reason="customer")
    run_saga(order)

    assert GatewayLedgerEntry.objects.filter(reference=str(order.pk), kind="refund").count() == 1
    assert [s for s, _ in steps(order)].count("restock") == 1
    assert Product.objects.get(pk=order.lines.get().product_id).on_hand == 10


def test_charge_landing_after_cancel_is_refunded():
    order = place_order()
    Payment.objects.create(order=order, amount=order.total, currency=order.currency)
    services.order_cancel_and_settle(order_id=order.pk, reason="customer")  # nothing charged yet: voided
    order.payment.refresh_from_db()
    assert order.payment.status == "voided"

    MockGateway().charge(idempotency_key=str(order.pk), reference=str(order.pk), amount=order.total,
                         currency=order.currency, token="tok_ok", timeout=5)  # fmt: skip  # a charge in flight lands
    Payment.objects.filter(order=order).update(status="succeeded")  # ... and its saga records it
    run_saga(order)

    order.payment.refresh_from_db()
    assert order.payment.status == "refunded"
    assert GatewayLedgerEntry.objects.filter(reference=str(order.pk), kind="refund").count() == 1
    assert_invariants()


def test_not_cancellable_once_picked_up():
    order = place_order()
    run_saga(order)
    services.order_assign_driver(order_id=order.pk, driver_id=1, driver_user_id=order.customer_id)
    services.order_mark_picked_up(order_id=order.pk)

    with pytest.raises(services.NotCancellable):
        services.order_cancel(order_id=order.pk, reason="customer")

    assert Order.objects.get(pk=order.pk).status == "picked_up"


def test_status_never_moves_backwards():
    order = place_order()
    run_saga(order)

    with pytest.raises(services.InvalidTransition):
        services.order_mark_delivered(order_id=order.pk)

    assert Order.objects.get(pk=order.pk).status == "paid"


def test_outbox_relay_runs_subscribers_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    seen = []
    monkeypatch.setitem(events._subscribers, "order.reserved", [*events._subscribers["order.reserved"], seen.append])

    with django_capture_on_commit_callbacks(execute=True):
        order = place_order()

    assert {"order_id": str(order.pk)} in seen
    assert OutboxEvent.objects.get(topic="order.reserved", payload__order_id=str(order.pk)).published_at is not None


def test_event_a_subscriber_failed_on_is_kept_for_the_sweeper(django_capture_on_commit_callbacks, monkeypatch):
    calls = []

    def flaky(payload):
        calls.append(payload)
        if len(calls) == 1:
            raise ConnectionError("broker down")

    monkeypatch.setitem(events._subscribers, "order.test_flaky", [flaky])

    with django_capture_on_commit_callbacks(execute=True):
        event = events.outbox_record(topic="order.test_flaky", payload={"n": 1})
    event.refresh_from_db()
    assert event.published_at is None

    assert outbox_publish(event_ids=[event.pk]) == 1
    event.refresh_from_db()
    assert event.published_at is not None and len(calls) == 2


def test_sweeper_finds_stuck_orders_once_per_period():
    from django.utils import timezone

    order = place_order()
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=5))

    first = services.orders_needing_saga(stuck_before=timezone.now() - timezone.timedelta(minutes=1))
    second = services.orders_needing_saga(stuck_before=timezone.now() - timezone.timedelta(minutes=1))

    assert first == [order.pk] and second == []


def test_check_invariants_catches_stock_drift():
    order = place_order(quantity=2)
    Product.objects.filter(pk=order.lines.get().product_id).update(reserved=5)

    with pytest.raises(CommandError):
        assert_invariants()


def test_check_invariants_catches_a_paid_order_without_a_charge():
    order = place_order()
    run_saga(order)
    GatewayLedgerEntry.objects.filter(reference=str(order.pk)).delete()

    with pytest.raises(CommandError):
        assert_invariants()


@pytest.mark.parametrize(("recorded", "reason"), [("declined", "payment_declined"), ("failed", "payment_failed")])
def test_crash_after_recording_a_failed_payment_still_cancels(recorded, reason):
    order = place_order()
    Payment.objects.create(order=order, amount=order.total, currency=order.currency, status=recorded)

    run_saga(order)

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", reason)
    assert Reservation.objects.get(order_id=order.pk).state == "released"
    assert_invariants()
