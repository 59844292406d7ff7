"""API throttles. Counting needs the cache (Redis); when it cannot count, a throttle lets the request
through rather than failing it: being briefly unthrottled is a smaller harm than refusing everyone
while Redis restarts. Each such pass is counted in `courier_throttle_unavailable_total`, and a throttle
that saw Redis fail stops asking it for a few seconds, so a hung Redis costs one timeout, not one per request.
"""

import logging
import time

from prometheus_client import Counter
from rest_framework import throttling

from common.problems import dependency_down

logger = logging.getLogger(__name__)

# How long a process lets requests through unthrottled after the cache failed, before asking again.
CACHE_RETRY_SECONDS = 5.0

UNAVAILABLE = Counter(
    "courier_throttle_unavailable",
    "Requests let through unthrottled because the throttle's cache (Redis) was unavailable (per web process).",
    ["scope"],
)

_cache_down_until = 0.0  # per process: monotonic time before which throttles do not ask the cache


class DegradingThrottleMixin:
    def allow_request(self, request, view):
        global _cache_down_until
        if time.monotonic() < _cache_down_until:
            UNAVAILABLE.labels(self._scope_label()).inc()
            return True
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            if dependency_down(exc) is None:
                raise
            _cache_down_until = time.monotonic() + CACHE_RETRY_SECONDS
            UNAVAILABLE.labels(self._scope_label()).inc()
            logger.warning("throttle cache unavailable (%s): unthrottled for %ss", exc, CACHE_RETRY_SECONDS)
            return True

    def _scope_label(self) -> str:
        return getattr(self, "scope", None) or type(self).__name__


class UserRateThrottle(DegradingThrottleMixin, throttling.UserRateThrottle):
    """Per signed-in user; anonymous callers fall through to AnonRateThrottle."""

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)


class AnonRateThrottle(DegradingThrottleMixin, throttling.AnonRateThrottle):
    pass
