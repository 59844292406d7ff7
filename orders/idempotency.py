"""`Idempotency-Key` for order creation: one answer per (user, key), replayed to every retry.

The claim is committed on its own before the work starts, so a concurrent retry sees it and gets 409
`idempotency_in_flight`. The answer is stored in the same transaction as the work, so a committed
order always has its answer stored. A claim whose process died is taken over after a timeout.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.problems import Conflict, Problem, problem_body
from orders.models import IdempotencyKey


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict
    replayed: bool = False


def request_fingerprint(payload) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent(*, user, key: str, fingerprint: str, action: Callable[[], Answer]) -> Answer:
    record, claimed = _claim(user=user, key=key, fingerprint=fingerprint)
    if not claimed:
        if record.request_hash != fingerprint:
            raise Problem("This Idempotency-Key was already used with another request body.",
                          code="idempotency_key_reused", status=422)  # fmt: skip
        if record.response_status is None:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed.", code="idempotency_in_flight"
            )
        return Answer(record.response_status, record.response_body, replayed=True)
    try:
        with transaction.atomic():
            answer = action()
            _store(record, answer)
        return answer
    except Problem as exc:  # a deliberate answer (e.g. out of stock): kept and replayed like a success
        _store(record, Answer(exc.status_code, problem_body(exc.status_code, exc.code, str(exc.detail), **exc.extra)))
        raise
    except BaseException:  # a crash: free the key so the client's retry can run
        IdempotencyKey.objects.filter(pk=record.pk, response_status__isnull=True).delete()
        raise


def _claim(*, user, key: str, fingerprint: str) -> tuple[IdempotencyKey, bool]:
    try:  # committed at once: the claim must be visible to a concurrent retry before the work starts
        with transaction.atomic():
            return IdempotencyKey.objects.create(user=user, key=key, request_hash=fingerprint), True
    except IntegrityError:
        record = IdempotencyKey.objects.get(user=user, key=key)
    abandoned_before = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS)
    if record.response_status is None and record.request_hash == fingerprint and record.created_at < abandoned_before:
        taken = IdempotencyKey.objects.filter(pk=record.pk, created_at=record.created_at, response_status__isnull=True)
        if taken.update(created_at=timezone.now()):
            return record, True
    return record, False


def _store(record: IdempotencyKey, answer: Answer) -> None:
    record.response_status, record.response_body = answer.status, answer.body
    record.save(update_fields=["response_status", "response_body"])


def idempotency_keys_expire() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()[0]
