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
