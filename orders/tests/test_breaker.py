"""The payment circuit breaker with a real worker: failing cards open it, healthy orders placed right
after wait for it to half-open and are paid; none is cancelled by the breaker."""

import pytest

from orders.gateways import get_breaker
from orders.models import Order
from orders.tests.helpers import assert_invariants, gateway_books, place_order
from orders.tests.test_crash import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_orders_placed_while_the_breaker_is_open_end_paid(start_process, settings):
    # Open 8 s: longer than all 5 attempts' backoff (0.2 s base), so a charge that spent attempts on the
    # open breaker would run out of them before it half-opens.
    breaker = {"PAYMENT_BREAKER_FAIL_MAX": "10", "PAYMENT_BREAKER_RESET_SECONDS": "8"}
    settings.PAYMENT_BREAKER_FAIL_MAX, settings.PAYMENT_BREAKER_RESET_SECONDS = 10, 8
    worker = start_process("worker", **breaker)
    start_process("relay")  # hands each order's event to the saga
    start_process("dispatch")  # paid orders are handed to dispatch (an invariant)
    failing = [place_order(token="tok_error") for _ in range(12)]
    assert wait_until(lambda: get_breaker().current_state == "open", timeout=30), worker.log()[-3000:]

    healthy = [place_order(token="tok_ok") for _ in range(10)]

    def settled(orders):
        return all(o.status in ("paid", "cancelled") for o in Order.objects.filter(pk__in=[o.pk for o in orders]))

    assert wait_until(lambda: settled(healthy) and settled(failing), timeout=90), worker.log()[-3000:]
    outcome = {o.pk: (o.status, o.cancel_reason) for o in Order.objects.filter(pk__in=[o.pk for o in healthy])}
    assert set(outcome.values()) == {("paid", None)}, outcome
    assert all(gateway_books(o).charges == 1 for o in healthy)
    failed = Order.objects.filter(pk__in=[o.pk for o in failing])
    assert {(o.status, o.cancel_reason) for o in failed} == {("cancelled", "payment_failed")}
    assert_invariants()
