"""The payment gateway edge. `PaymentGateway` is the port; settings.PAYMENT_GATEWAY names the class in use
(`sandbox.gateway.MockGateway` in development and tests: a real implementation with its own books).

Every call takes an idempotency key: the gateway must never act twice for one key. The saga uses the
order id as the charge key, so a retried or re-driven charge can never take the money twice.

The circuit breaker is gateway-wide (its state lives in Redis, shared by every worker). What counts:
- A decline is an answer, not a failure: it never counts, and like any answer it resets the count.
- A `GatewayError` (unreachable, timed out, 5xx) counts, whichever card it was for. From our side one
  card's error and an outage look the same, so an adapter for a real gateway must report a problem
  that belongs to one card (invalid card, processing refused) as a decline, never as a GatewayError.
  The count is of *consecutive* failures: one success in between resets it, so a lone failing card
  among healthy traffic never opens the breaker.
- An open breaker only *delays* charges (`CircuitOpen.retry_in`: until it half-opens): the saga does
  not spend a charge attempt on it, so an outage of others can never cancel a healthy order.
"""

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import pybreaker
import redis
from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class GatewayError(Exception):
    """The gateway could not be reached or did not answer in time: worth retrying."""


class CircuitOpen(Exception):  # a state, not a failed call: nothing was attempted
    """The breaker is open: the gateway was not called. Try again in `retry_in` seconds."""

    def __init__(self, retry_in: float):
        super().__init__(f"payment gateway circuit open: retry in {retry_in:.1f}s")
        self.retry_in = retry_in


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str = ""
    decline_reason: str = ""


@dataclass(frozen=True)
class RefundResult:
    refunded_amount: int  # 0 when there was nothing charged to refund


@dataclass(frozen=True)
class GatewayBooks:
    charges: int  # how many charges the gateway booked for one reference: more than 1 is a double charge
    charged: int
    refunded: int


class PaymentGateway:
    def charge(
        self, *, idempotency_key: str, reference: str, amount: int, currency: str, token: str, timeout: float
    ) -> ChargeResult:
        raise NotImplementedError

    def refund(self, *, idempotency_key: str, charge_key: str, timeout: float) -> RefundResult:
        """Refund in full whatever `charge_key` charged; nothing if it never charged."""
        raise NotImplementedError

    def books(self) -> dict[str, GatewayBooks] | None:
        """The gateway's own record per reference (the order id), for reconciliation with Courier's records.

        None (the default) when the gateway offers no such report: the money invariant then rests on
        Courier's own records alone."""
        return None


@cache
def get_gateway() -> PaymentGateway:
    return import_string(settings.PAYMENT_GATEWAY)()


def get_breaker() -> pybreaker.CircuitBreaker:
    """The gateway-wide breaker: its state lives in Redis, shared by every worker process. Built per
    call (cheap: the state is read from the storage) so it always follows the settings. Without Redis
    it falls back to a per-process breaker: payments go on (pybreaker's storage reads as closed too)."""
    global _storage
    if _storage is None:
        try:
            _storage = _redis_storage()
        except redis.RedisError:
            logger.warning("circuit breaker state unreachable in Redis: using a per-process breaker for now")
            return _new_breaker(pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED))
    return _new_breaker(_storage)


_storage: pybreaker.CircuitRedisStorage | None = None


def _redis_storage() -> pybreaker.CircuitRedisStorage:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
    )
    return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="payment-gateway")


def _new_breaker(storage) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(
        fail_max=settings.PAYMENT_BREAKER_FAIL_MAX,
        reset_timeout=settings.PAYMENT_BREAKER_RESET_SECONDS,
        state_storage=storage,
        name="payment-gateway",
        # The call that trips the breaker did reach the gateway: let its own GatewayError through, so
        # CircuitBreakerError only ever means "not attempted".
        throw_new_error_on_trip=False,
    )


def guarded(call, /, **kwargs):
    """Run a gateway call behind the circuit breaker. An open circuit raises CircuitOpen (nothing was
    attempted); a failed call raises GatewayError."""
    breaker = get_breaker()
    try:
        return breaker.call(call, timeout=settings.PAYMENT_TIMEOUT_SECONDS, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise CircuitOpen(_until_half_open(breaker)) from exc


def _until_half_open(breaker: pybreaker.CircuitBreaker) -> float:
    """Seconds until the open breaker lets a trial call through, plus jitter so the waiting charges
    do not all arrive in the same instant."""
    opened_at = breaker._state_storage.opened_at  # pybreaker exposes no public accessor
    remaining = breaker.reset_timeout
    if opened_at is not None:
        remaining = (opened_at - datetime.now(UTC)).total_seconds() + breaker.reset_timeout
    # opened_at is stored in whole seconds: up to 1 s early, so never wait less than that.
    return max(remaining, 0.0) + 1.0 + random.uniform(0, min(2.0, breaker.reset_timeout / 4))
