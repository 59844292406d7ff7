"""The outbox relay is its own process: SIGKILLed mid-stream and restarted, it still delivers every event."""

import pytest

from orders.models import Order, OutboxEvent
from orders.tests.helpers import assert_invariants, gateway_books, place_order
from orders.tests.test_crash import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_relay_killed_and_restarted_delivers_every_event(start_process):
    start_process("worker")
    placed = [place_order(token="tok_ok") for _ in range(20)]
    # Small batches and a slow poll, so the kill lands while events are still waiting.
    relay = start_process("relay", OUTBOX_RELAY_BATCH="2", OUTBOX_RELAY_POLL_SECONDS="0.3")
    assert wait_until(lambda: OutboxEvent.objects.filter(published_at__isnull=False).exists(), timeout=30)
    relay.kill()  # SIGKILL: whatever batch it held is rolled back with its connection
    placed += [place_order(token="tok_ok") for _ in range(10)]  # while no relay runs
    assert OutboxEvent.objects.filter(topic="order.reserved", published_at__isnull=True).count() >= 10

    start_process("relay")

    start_process("dispatch")  # paid orders are handed to dispatch (an invariant)

    ids = [order.pk for order in placed]
    assert wait_until(lambda: Order.objects.filter(pk__in=ids, status="paid").count() == 30, timeout=90), list(
        Order.objects.filter(pk__in=ids).values_list("status", flat=True)
    )
    assert wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), timeout=30)
    assert all(gateway_books(order).charges == 1 for order in placed)
    assert_invariants()


@pytest.fixture
def recorder():
    """A subscriber of its own (a real one, registered as apps register theirs) that fails on one order once."""
    from orders import events

    seen, failing = [], set()

    def record(payload):
        if payload["order_id"] in failing:
            failing.discard(payload["order_id"])
            raise RuntimeError("broker away")
        seen.append((payload["order_id"], payload["n"]))

    events.subscribe("test.recorded", record)
    yield seen, failing
    events._subscribers["test.recorded"].remove(record)


def test_a_batch_goes_out_in_order_per_order_and_a_failure_holds_back_only_that_orders_later_news(recorder):
    from orders import events

    seen, failing = recorder
    for n in range(3):
        for order_id in ("a", "b", "c"):
            events.outbox_record(topic="test.recorded", payload={"order_id": order_id, "n": n})
    failing.add("b")  # b's first event fails once

    delivered = events.outbox_publish(batch=100)

    assert delivered == 6  # a and c: all three each; b: none (its later events wait behind the failed one)
    assert [n for order_id, n in seen if order_id == "a"] == [0, 1, 2]
    assert [n for order_id, n in seen if order_id == "c"] == [0, 1, 2]
    assert events.outbox_publish(batch=100) == 3  # the next pass delivers b's, still in order
    assert [n for order_id, n in seen if order_id == "b"] == [0, 1, 2]
