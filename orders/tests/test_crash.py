"""A real worker is SIGKILLed in the middle of the saga; the order still completes, charged once."""

import pytest

from common.processes import wait_until
from orders.models import Order
from orders.tests.helpers import assert_invariants, gateway_books, place_order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_worker_killed_mid_charge_then_order_completes_charged_once(start_process):
    worker = start_process("worker")
    start_process("relay")  # hands the order's event to the saga
    start_process("dispatch")  # paid orders are handed to dispatch (an invariant)
    order = place_order(quantity=2, token="tok_slow")  # booked at once, answered 2 s later

    assert wait_until(lambda: gateway_books(order).charges, timeout=30), worker.log()
    worker.kill()  # SIGKILL, pool children included, while the gateway's answer is in flight
    assert Order.objects.get(pk=order.pk).status == "reserved"

    recovery = {"SWEEP_INTERVAL_SECONDS": "1", "SAGA_STUCK_AFTER_SECONDS": "2"}  # the sweeper runs on the worker
    start_process("worker", **recovery)
    start_process("beat", **recovery)

    assert wait_until(lambda: Order.objects.get(pk=order.pk).status == "paid", timeout=60)
    assert gateway_books(order).charges == 1
    assert_invariants()


def test_order_flows_to_paid_through_a_real_worker(start_process):
    start_process("worker")
    start_process("relay")
    start_process("dispatch")  # paid orders are handed to dispatch (an invariant)
    paid = place_order(token="tok_ok")
    declined = place_order(token="tok_declined")

    assert wait_until(lambda: Order.objects.get(pk=paid.pk).status == "paid")
    assert wait_until(lambda: Order.objects.get(pk=declined.pk).status == "cancelled")
    assert_invariants()
