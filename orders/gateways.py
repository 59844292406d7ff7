"""The payment gateway edge. `PaymentGateway` is the port; `MockGateway` is a real implementation
with its own books (GatewayLedgerEntry), so double charges are visible, not assumed away.

Every call takes an idempotency key: the gateway must never act twice for one key. The saga uses the
order id as the charge key, so a retried or re-driven charge can never take the money twice.
"""

import time
from dataclasses import dataclass
from functools import cache

import pybreaker
import redis
from django.conf import settings
from django.db import IntegrityError
from django.utils.module_loading import import_string


class GatewayError(Exception):
    """The gateway could not be reached or did not answer in time: worth retrying."""


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str = ""
    decline_reason: str = ""


@dataclass(frozen=True)
class RefundResult:
    refunded_amount: int  # 0 when there was nothing charged to refund


class PaymentGateway:
    def charge(
        self, *, idempotency_key: str, reference: str, amount: int, currency: str, token: str, timeout: float
    ) -> ChargeResult:
        raise NotImplementedError

    def refund(self, *, idempotency_key: str, charge_key: str, timeout: float) -> RefundResult:
        """Refund in full whatever `charge_key` charged; nothing if it never charged."""
        raise NotImplementedError


class MockGateway(PaymentGateway):
    """Tokens: `tok_declined` is declined at once; `tok_error` fails every attempt like an outage;
    `tok_slow` succeeds after `SLOW_SECONDS` (the answer is slow, the charge is booked at once, as when
    a real gateway's response is lost in transit); anything else succeeds."""

    SLOW_SECONDS = 2.0

    def charge(self, *, idempotency_key, reference, amount, currency, token, timeout):
        from orders.models import GatewayLedgerEntry

        if token == "tok_error":
            raise GatewayError("payment gateway unavailable (mock outage)")
        if token == "tok_declined":
            return ChargeResult(succeeded=False, decline_reason="card_declined")
        entry = self._book(
            GatewayLedgerEntry, idempotency_key, reference, GatewayLedgerEntry.Kind.CHARGE, amount, currency
        )
        if token == "tok_slow":
            time.sleep(min(self.SLOW_SECONDS, timeout))
            if timeout < self.SLOW_SECONDS:
                raise GatewayError("payment gateway timed out")
        return ChargeResult(succeeded=True, reference=f"ch_{entry.pk}")

    def refund(self, *, idempotency_key, charge_key, timeout):
        from orders.models import GatewayLedgerEntry

        charge = GatewayLedgerEntry.objects.filter(
            idempotency_key=charge_key, kind=GatewayLedgerEntry.Kind.CHARGE
        ).first()
        if charge is None:
            return RefundResult(refunded_amount=0)
        entry = self._book(
            GatewayLedgerEntry,
            idempotency_key,
            charge.reference,
            GatewayLedgerEntry.Kind.REFUND,
            charge.amount,
            charge.currency,
        )
        return RefundResult(refunded_amount=entry.amount)

    @staticmethod
    def _book(model, key, reference, kind, amount, currency):
        try:
            entry, _ = model.objects.get_or_create(
                idempotency_key=key,
                defaults={"reference": reference, "kind": kind, "amount": amount, "currency": currency},
            )
        except IntegrityError:  # a concurrent call with the same key booked it first
            entry = model.objects.get(idempotency_key=key)
        return entry


@cache
def get_gateway() -> PaymentGateway:
    return import_string(settings.PAYMENT_GATEWAY)()


@cache
def get_breaker() -> pybreaker.CircuitBreaker:
    """One breaker for every worker process: its state lives in Redis."""
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis.Redis.from_url(settings.REDIS_URL), namespace="payment-gateway"
    )
    return pybreaker.CircuitBreaker(
        fail_max=settings.PAYMENT_BREAKER_FAIL_MAX,
        reset_timeout=settings.PAYMENT_BREAKER_RESET_SECONDS,
        state_storage=storage,
        name="payment-gateway",
    )


def guarded(call, /, **kwargs):
    """Run a gateway call behind the circuit breaker; an open circuit is a GatewayError like any outage."""
    try:
        return get_breaker().call(call, timeout=settings.PAYMENT_TIMEOUT_SECONDS, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise GatewayError(f"payment gateway circuit open: {exc}") from exc
