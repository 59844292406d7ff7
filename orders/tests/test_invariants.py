"""The money invariant rests on Courier's own records, so it holds on a gateway that offers no books."""

import pytest
from django.core.management.base import CommandError

from orders import services
from orders.gateways import ChargeResult, PaymentGateway, RefundResult, get_gateway
from orders.models import Payment
from orders.tests.helpers import assert_invariants, place_order, run_saga

pytestmark = pytest.mark.django_db


class GatewayWithoutBooks(PaymentGateway):
    """Like most real gateways seen from Courier: it charges and refunds, idempotently, but offers no report
    of its books (`books()` stays the port's default, None). Its own state lives in the process, as far
    away from Courier's tables as a real gateway's."""

    charged: dict[str, int] = {}
    refunded: dict[str, int] = {}

    def charge(self, *, idempotency_key, reference, amount, currency, token, timeout):
        self.charged.setdefault(idempotency_key, amount)
        return ChargeResult(succeeded=True, reference=f"ext_{idempotency_key[:8]}")

    def refund(self, *, idempotency_key, charge_key, timeout):
        amount = self.refunded.setdefault(idempotency_key, self.charged.get(charge_key, 0))
        return RefundResult(refunded_amount=amount)


@pytest.fixture(autouse=True)
def gateway_without_books(settings):
    settings.PAYMENT_GATEWAY = f"{__name__}.GatewayWithoutBooks"
    get_gateway.cache_clear()
    yield
    get_gateway.cache_clear()


def test_paid_and_refunded_orders_are_no_violations_on_a_gateway_without_books():
    # given a paid order and a paid-then-cancelled one, charged by a gateway that shows nobody its books
    paid = place_order()
    run_saga(paid)
    refunded = place_order()
    run_saga(refunded)
    services.order_cancel_and_settle(order_id=refunded.pk, reason="customer")

    # when the invariants are checked, then none is violated
    assert get_gateway().books() is None
    assert Payment.objects.get(order=paid).status == "succeeded"
    assert Payment.objects.get(order=refunded).status == "refunded"
    assert_invariants()


def test_a_paid_order_whose_payment_is_not_succeeded_is_a_violation():
    order = place_order()
    run_saga(order)
    Payment.objects.filter(order=order).update(status="pending")

    with pytest.raises(CommandError):
        assert_invariants()


def test_a_paid_order_whose_payment_does_not_match_its_total_is_a_violation():
    order = place_order()
    run_saga(order)
    Payment.objects.filter(order=order).update(amount=order.total + 1)

    with pytest.raises(CommandError):
        assert_invariants()


def test_a_paid_order_without_a_successful_charge_in_its_timeline_is_a_violation():
    order = place_order()
    run_saga(order)
    order.timeline.filter(step="charge_payment").delete()

    with pytest.raises(CommandError):
        assert_invariants()


def test_a_cancelled_order_refunded_in_part_is_a_violation():
    order = place_order()
    run_saga(order)
    services.order_cancel_and_settle(order_id=order.pk, reason="customer")
    Payment.objects.filter(order=order).update(refunded_amount=1)

    with pytest.raises(CommandError):
        assert_invariants()
