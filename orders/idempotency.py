"""`Idempotency-Key` for order creation: one answer per (user, key), replayed to every retry.

The claim, the work and the answer are one statement (`orders_place`, see orders/migrations/0003): a key row
exists only with its answer, and a request that fails leaves nothing behind. Keys are kept
IDEMPOTENCY_KEY_TTL_HOURS (48; the contract promises at least 24).
"""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from orders.models import IdempotencyKey


def request_fingerprint(payload) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_keys_expire() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()[0]
