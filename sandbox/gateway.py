"""A real implementation of the payment gateway port for development, tests and demos, with its own books
(LedgerEntry), so double charges are visible, not assumed away."""

import time

from django.db import IntegrityError
from django.db.models import Count, Q, Sum

from orders.gateways import ChargeResult, GatewayBooks, GatewayError, PaymentGateway, RefundResult
from sandbox.models import LedgerEntry


class MockGateway(PaymentGateway):
    """Tokens: `tok_declined` is declined at once; `tok_error` fails every attempt like an outage;
    `tok_slow` succeeds after `SLOW_SECONDS` (the answer is slow, the charge is booked at once, as when
    a real gateway's response is lost in transit); anything else succeeds."""

    SLOW_SECONDS = 2.0

    def charge(self, *, idempotency_key, reference, amount, currency, token, timeout):
        if token == "tok_error":
            raise GatewayError("payment gateway unavailable (mock outage)")
        if token == "tok_declined":
            return ChargeResult(succeeded=False, decline_reason="card_declined")
        entry = _book(idempotency_key, reference, LedgerEntry.Kind.CHARGE, amount, currency)
        if token == "tok_slow":
            time.sleep(min(self.SLOW_SECONDS, timeout))
            if timeout < self.SLOW_SECONDS:
                raise GatewayError("payment gateway timed out")
        return ChargeResult(succeeded=True, reference=f"ch_{entry.pk}")

    def refund(self, *, idempotency_key, charge_key, timeout):
        charge = LedgerEntry.objects.filter(idempotency_key=charge_key, kind=LedgerEntry.Kind.CHARGE).first()
        if charge is None:
            return RefundResult(refunded_amount=0)
        entry = _book(idempotency_key, charge.reference, LedgerEntry.Kind.REFUND, charge.amount, charge.currency)
        return RefundResult(refunded_amount=entry.amount)

    def books(self) -> dict[str, GatewayBooks]:
        rows = LedgerEntry.objects.values("reference").annotate(
            charges=Count("pk", filter=Q(kind=LedgerEntry.Kind.CHARGE)),
            charged=Sum("amount", filter=Q(kind=LedgerEntry.Kind.CHARGE), default=0),
            refunded=Sum("amount", filter=Q(kind=LedgerEntry.Kind.REFUND), default=0),
        )
        return {
            row["reference"]: GatewayBooks(charges=row["charges"], charged=row["charged"], refunded=row["refunded"])
            for row in rows
        }


def _book(key, reference, kind, amount, currency) -> LedgerEntry:
    try:
        entry, _ = LedgerEntry.objects.get_or_create(
            idempotency_key=key, defaults={"reference": reference, "kind": kind, "amount": amount, "currency": currency}
        )
    except IntegrityError:  # a concurrent call with the same key booked it first
        entry = LedgerEntry.objects.get(idempotency_key=key)
    return entry
