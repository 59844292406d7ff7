"""Liveness, readiness and metrics. Plain Django views: no auth, no throttling, never cached."""

from concurrent.futures import ThreadPoolExecutor

from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.celery import app as celery_app

CHECK_TIMEOUT_SECONDS = 2


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    cache.client.get_client().ping()


def _broker():
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)


CHECKS = {"database": _database, "redis": _redis, "broker": _broker}


@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request):
    results = {}
    # Redis and broker checks run on threads so a hung dependency costs one timeout, not the sum.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(check) for name, check in CHECKS.items() if name != "database"}
        results["database"] = _outcome(_database)
        for name, future in futures.items():
            try:
                future.result(timeout=CHECK_TIMEOUT_SECONDS + 1)
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means "down"
                results[name] = f"down: {type(exc).__name__}"
    down = [name for name, state in results.items() if state != "ok"]
    if not down:
        return JsonResponse(results)
    body = {
        "type": "https://courier.dev/problems/dependency-down",
        "title": "Service Unavailable",
        "status": 503,
        "detail": f"Down: {', '.join(down)}.",
        "code": "dependency_down",
        **results,
    }
    return JsonResponse(body, status=503, content_type="application/problem+json", headers={"Retry-After": "5"})


def _outcome(check) -> str:
    try:
        check()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"down: {type(exc).__name__}"


@never_cache
def metrics(request):
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
