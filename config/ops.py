"""Liveness, readiness and metrics. Plain Django views: no auth, no throttling, never cached."""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.problems import OUTAGE_RETRY_AFTER_SECONDS, problem_body, read_only
from config.celery import app as celery_app

# /readyz answers within this, whatever its dependencies do (a hung Redis, a database that does not
# answer): a check still running at the deadline is reported down. Load balancers probe with ~5 s timeouts.
READY_DEADLINE_SECONDS = 3.0

# One thread per dependency, shared by every probe of the process and never waited for on exit. Concurrent
# probes share the check in flight, so a hung dependency holds one thread (until its own socket timeout frees
# it), never a request thread, and never delays the other dependencies' checks.
_pools: dict[str, ThreadPoolExecutor] = {}
_in_flight: dict[str, Future] = {}
_lock = threading.Lock()


def _check(name: str, check) -> Future:
    with _lock:
        future = _in_flight.get(name)
        if future is None or future.done():
            pool = _pools.setdefault(name, ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"readyz-{name}"))
            future = _in_flight[name] = pool.submit(check)
        return future


def _database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # a pool thread: never keep its connection around


def _redis():
    cache.client.get_client().ping()


def _broker():
    """A real round trip to the broker, not just a connection object (kombu connects lazily)."""
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS)
        client = getattr(conn.default_channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()


CHECKS = {"database": _database, "redis": _redis, "broker": _broker}


@read_only
@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


@read_only
@never_cache
def readyz(request):
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    futures = {name: _check(name, check) for name, check in CHECKS.items()}
    results = {name: _outcome(future, deadline) for name, future in futures.items()}
    down = [name for name, state in results.items() if state != "ok"]
    if not down:
        return JsonResponse(results)
    body = {**problem_body(503, "dependency_down", f"Down: {', '.join(down)}."), **results}
    return JsonResponse(
        body, status=503, content_type="application/problem+json",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)},
    )  # fmt: skip


def _outcome(future, deadline: float) -> str:
    try:
        future.result(timeout=max(0.0, deadline - time.monotonic()))
        return "ok"
    except FutureTimeout:
        return f"down: no answer within {READY_DEADLINE_SECONDS:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return f"down: {type(exc).__name__}"


@read_only
@never_cache
def metrics(request):
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
