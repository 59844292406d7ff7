from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from inventory.models import Product, Reservation
from orders import events, services
from orders.events import ORDER_PAID, outbox_publish
from orders.gateways import get_breaker, get_gateway
from orders.models import Order, OutboxEvent, Payment, TimelineEntry
from orders.tests.helpers import assert_invariants, gateway_books, place_order, run_saga

pytestmark = pytest.mark.django_db


def steps(order):
    return [(e.step, e.status) for e in order.timeline.order_by("at", "id")]


def charges(order):
    return gateway_books(order).charges


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


def _open_breaker(settings, *, fail_max=2):
    settings.PAYMENT_BREAKER_FAIL_MAX = fail_max
    for order in [place_order(token="tok_error") for _ in range(fail_max)]:
        services.order_saga_advance(order_id=order.pk)
    assert get_breaker().current_state == "open"


def test_open_breaker_delays_a_charge_without_using_an_attempt(settings):
    settings.PAYMENT_BREAKER_RESET_SECONDS = 30
    _open_breaker(settings)
    healthy = place_order(token="tok_ok")

    waits = [services.order_saga_advance(order_id=healthy.pk) for _ in range(settings.PAYMENT_MAX_ATTEMPTS + 2)]

    healthy.refresh_from_db()
    assert healthy.status == "reserved" and healthy.payment.attempts == 0
    assert all(30 <= wait <= 30 + 1 + 2 for wait in waits)  # until the breaker half-opens, plus jitter
    assert not healthy.timeline.filter(step="charge_payment").exists()
    assert charges(healthy) == 0  # the open circuit never called the gateway


def test_charge_delayed_by_the_breaker_goes_through_once_it_half_opens(settings):
    settings.PAYMENT_BREAKER_RESET_SECONDS = 30
    _open_breaker(settings)
    healthy = place_order(token="tok_ok")
    assert services.order_saga_advance(order_id=healthy.pk) is not None

    settings.PAYMENT_BREAKER_RESET_SECONDS = 0  # as if the reset time had passed
    run_saga(healthy)

    healthy.refresh_from_db()
    assert healthy.status == "paid" and healthy.payment.attempts == 1 and charges(healthy) == 1
    assert get_breaker().current_state == "closed"
    assert_invariants()


def test_declines_never_open_the_breaker(settings):
    settings.PAYMENT_BREAKER_FAIL_MAX = 2
    for order in [place_order(token="tok_declined") for _ in range(5)]:
        run_saga(order)

    assert get_breaker().current_state == "closed"
    assert get_breaker().fail_counter == 0


def test_a_failing_charge_gives_up_after_the_give_up_time_even_behind_an_open_breaker(settings):
    settings.PAYMENT_BREAKER_RESET_SECONDS = 30
    settings.PAYMENT_GIVE_UP_SECONDS = 45
    failing = place_order(token="tok_error")
    assert services.order_saga_advance(order_id=failing.pk) is not None  # attempt 1: the gateway failed it
    _open_breaker(settings)
    assert services.order_saga_advance(order_id=failing.pk) is not None  # waits for the breaker: 0 + 30 < 45

    TimelineEntry.objects.filter(order=failing).update(at=timezone.now() - timedelta(seconds=20))  # 20 + 30 > 45
    services.order_saga_advance(order_id=failing.pk)

    failing.refresh_from_db()
    assert (failing.status, failing.cancel_reason) == ("cancelled", "payment_failed")
    assert failing.payment.attempts == 1 and failing.payment.status == "failed"  # settling waits for the breaker too
    settings.PAYMENT_BREAKER_RESET_SECONDS = 0
    run_saga(failing)
    failing.payment.refresh_from_db()
    assert failing.payment.status == "voided"
    assert Reservation.objects.get(order_id=failing.pk).state == "released"
    assert_invariants()


def test_crash_between_charge_and_commit_recovers_without_second_charge():
    order = place_order()
    Payment.objects.create(order=order, amount=order.total, currency=order.currency)
    get_gateway().charge(idempotency_key=str(order.pk), reference=str(order.pk), amount=order.total,
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

    assert gateway_books(order).refunded == order.total  # refunded once, in full
    assert [s for s, _ in steps(order)].count("restock") == 1
    assert Product.objects.get(pk=order.lines.get().product_id).on_hand == 10


def test_charge_landing_after_cancel_is_refunded():
    order = place_order()
    Payment.objects.create(order=order, amount=order.total, currency=order.currency)
    services.order_cancel_and_settle(order_id=order.pk, reason="customer")  # nothing charged yet: voided
    order.payment.refresh_from_db()
    assert order.payment.status == "voided"

    get_gateway().charge(idempotency_key=str(order.pk), reference=str(order.pk), amount=order.total,
                          currency=order.currency, token="tok_ok", timeout=5)  # fmt: skip  # a charge in flight lands
    Payment.objects.filter(order=order).update(status="succeeded")  # ... and its saga records it
    run_saga(order)

    order.payment.refresh_from_db()
    assert order.payment.status == "refunded"
    assert gateway_books(order).refunded == order.total  # refunded once, in full
    assert_invariants()


def test_not_cancellable_once_picked_up():
    order = place_order()
    run_saga(order)
    services.order_assign_driver(order_id=order.pk, driver_id=1)
    services.order_mark_picked_up(order_id=order.pk, driver_id=1)

    with pytest.raises(services.NotCancellable):
        services.order_cancel(order_id=order.pk, reason="customer")

    assert Order.objects.get(pk=order.pk).status == "picked_up"


def test_status_never_moves_backwards():
    order = place_order()
    run_saga(order)

    with pytest.raises(services.InvalidTransition):
        services.order_mark_delivered(order_id=order.pk, driver_id=1)

    assert Order.objects.get(pk=order.pk).status == "paid"


def test_placing_an_order_publishes_nothing_itself_the_relay_does(monkeypatch):
    seen = []
    monkeypatch.setitem(events._subscribers, "order.reserved", [seen.append])

    order = place_order()

    event = OutboxEvent.objects.get(topic="order.reserved", payload__order_id=str(order.pk))
    assert seen == [] and event.published_at is None  # nothing on the request's path
    assert outbox_publish() == 1
    assert seen == [{"order_id": str(order.pk)}]
    event.refresh_from_db()
    assert event.published_at is not None


def test_event_a_subscriber_failed_on_is_kept_for_the_next_pass(monkeypatch):
    calls = []

    def flaky(payload):
        calls.append(payload)
        if len(calls) == 1:
            raise ConnectionError("broker down")

    monkeypatch.setitem(events._subscribers, "order.test_flaky", [flaky])
    event = events.outbox_record(topic="order.test_flaky", payload={"n": 1})

    assert outbox_publish(event_ids=[event.pk]) == 0
    event.refresh_from_db()
    assert event.published_at is None

    assert outbox_publish(event_ids=[event.pk]) == 1
    event.refresh_from_db()
    assert event.published_at is not None and len(calls) == 2


def test_sweeper_finds_stuck_orders_once_per_period():
    from django.utils import timezone

    order = place_order()
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=5))

    first = services.orders_claim_stuck(stuck_before=timezone.now() - timezone.timedelta(minutes=1))
    second = services.orders_claim_stuck(stuck_before=timezone.now() - timezone.timedelta(minutes=1))

    assert first == [order.pk] and second == []


def test_a_stuck_saga_the_sweeper_re_drove_is_still_stuck_on_the_dashboard():
    from django.utils import timezone

    from orders import selectors

    order = place_order()
    five_minutes_ago = timezone.now() - timezone.timedelta(minutes=5)
    Order.objects.filter(pk=order.pk).update(updated_at=five_minutes_ago)
    stuck_before = timezone.now() - timezone.timedelta(minutes=1)

    assert services.orders_claim_stuck(stuck_before=stuck_before) == [order.pk]  # the sweep re-drives it

    # Re-driving is not progress: until the saga moves the order, staff see it where it is stuck.
    found = selectors.orders_stuck(
        stuck_before=stuck_before, cancelled_since=timezone.now() - timezone.timedelta(days=1)
    )
    assert found["count"] == 1 and found["oldest"][0].updated_at == five_minutes_ago


def test_check_invariants_catches_stock_drift():
    order = place_order(quantity=2)
    Product.objects.filter(pk=order.lines.get().product_id).update(reserved=5)

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
