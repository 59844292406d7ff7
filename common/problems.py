"""RFC 9457 problem details: every error of every endpoint has this shape and a stable `code`."""

import math
import sys
from functools import wraps
from http import HTTPStatus

import kombu.exceptions
import redis
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_redis.exceptions import ConnectionInterrupted
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from common import errors

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(exceptions.APIException):
    """An error the API edge answers on purpose (a missing header, a bad cursor); services raise
    `common.errors` instead. `extra` members are added to the problem body."""

    status_code = 400
    default_code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None, **extra):
        super().__init__(detail=detail, code=code or self.default_code)
        if status is not None:
            self.status_code = status
        self.code = code or self.default_code
        self.extra = extra


# How the API answers each kind of domain error.
DOMAIN_STATUS = {errors.Invalid: 400, errors.NotAllowed: 403, errors.NotFound: 404, errors.Conflict: 409}


def problem_body(status: int, code: str, detail: str, **extra) -> dict:
    return {
        "type": f"https://courier.dev/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(status: int, code: str, detail: str, **extra) -> JsonResponse:
    """For code outside DRF (middleware, Django's error handlers)."""
    return JsonResponse(problem_body(status, code, detail, **extra), status=status, content_type=PROBLEM_CONTENT_TYPE)


def flatten_errors(detail, prefix: str = "") -> list[dict]:
    """Turn DRF's nested validation errors into `[{"field": "items.0.quantity", "message", "code"}]`."""
    if isinstance(detail, dict):
        return [e for key, value in detail.items() for e in flatten_errors(value, _field_path(prefix, key))]
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [e for item in detail for e in flatten_errors(item, prefix)]
        return [e for index, item in enumerate(detail) for e in flatten_errors(item, f"{prefix}{index}.")]
    field = prefix.rstrip(".") or "non_field_errors"
    return [{"field": field, "message": str(detail), "code": getattr(detail, "code", "invalid")}]


def _field_path(prefix: str, key) -> str:
    # A nested serializer's own errors (e.g. "more than 100 items") belong to the field that holds it.
    if key == api_settings.NON_FIELD_ERRORS_KEY and prefix:
        return prefix
    return f"{prefix}{key}."


_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


# --- Dependency outages ---------------------------------------------------------------------------
# A dependency that is down (PostgreSQL restarting, Redis away or hung, the broker unreachable) is not our
# bug and not the client's: 503 with Retry-After, so clients back off and try again, never a 500.
OUTAGE_RETRY_AFTER_SECONDS = 5
_OUTAGES = (
    ((OperationalError, InterfaceError), "database"),
    ((redis.ConnectionError, redis.TimeoutError, ConnectionInterrupted), "redis"),
    ((kombu.exceptions.OperationalError,), "broker"),
)


def dependency_down(exc: BaseException | None) -> str | None:
    """Which dependency `exc` says is unreachable ("database", "redis", "broker"), or None.

    Follows the exception's causes too: Django wraps psycopg's errors, django-redis wraps redis-py's."""
    seen = 0
    while exc is not None and seen < 5:
        for classes, name in _OUTAGES:
            if isinstance(exc, classes):
                return name
        if isinstance(exc, DatabaseError):  # an integrity or data error is a bug or bad input, not an outage
            return None
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def outage_body(dependency: str) -> dict:
    return problem_body(
        503, "dependency_down", f"A service we depend on ({dependency}) is unavailable; try again shortly.",
        dependency=dependency,
    )  # fmt: skip


def outage_response(request, dependency: str) -> HttpResponse:
    """problem+json for API clients; a short HTML page for a browser asking for a page."""
    headers = {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)}
    accept = request.META.get("HTTP_ACCEPT", "") if request is not None else ""
    if request is not None and not request.path.startswith("/api/") and "text/html" in accept:
        page = (
            "<!doctype html><title>Back in a moment</title><h1>Back in a moment</h1>"
            "<p>Part of Courier is briefly unavailable. This page will work again in a few seconds.</p>"
        )
        return HttpResponse(page, status=503, headers=headers)
    return JsonResponse(outage_body(dependency), status=503, content_type=PROBLEM_CONTENT_TYPE, headers=headers)


def problem_exception_handler(exc, context):
    if dependency := dependency_down(exc):
        headers = {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)}
        return Response(outage_body(dependency), status=503, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, RequestDataTooBig):
        return _problem(413, "body_too_large", "The request body is too large.")
    if isinstance(exc, errors.DomainError):
        return _domain_problem(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500 handler answers with a problem body too

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))

    if isinstance(exc, Problem):
        return _problem(exc.status_code, exc.code, str(exc.detail), headers=headers, **exc.extra)
    if isinstance(exc, exceptions.ValidationError):
        return _validation_problem(400, flatten_errors(exc.detail))
    code = _CODES.get(type(exc)) or next((c for k, c in _CODES.items() if isinstance(exc, k)), "error")
    if code == "authentication_failed" and _is_token_error(exc):
        code = "invalid_token"
    return _problem(exc.status_code, code, _detail_text(exc.detail), headers=headers)


def _domain_problem(exc: errors.DomainError) -> Response:
    status = next((status for kind, status in DOMAIN_STATUS.items() if isinstance(exc, kind)), 400)
    if exc.field is not None:  # answered like the serializers' field errors: clients show it next to the field
        return _validation_problem(status, [{"field": exc.field, "message": exc.detail, "code": exc.code}], **exc.extra)
    return _problem(status, exc.code, exc.detail, **exc.extra)


def _validation_problem(status: int, field_errors: list[dict], **extra) -> Response:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in field_errors[:5])
    return _problem(status, "validation_error", detail, errors=field_errors, **extra)


def _detail_text(detail) -> str:
    if isinstance(detail, dict):
        detail = detail.get("detail", detail)
    if isinstance(detail, list):
        return " ".join(str(item) for item in detail)
    return str(detail)


def _is_token_error(exc) -> bool:
    return isinstance(exc.detail, dict) and exc.detail.get("code") == "token_not_valid"


def _problem(status: int, code: str, detail: str, headers=None, **extra) -> Response:
    return Response(
        problem_body(status, code, detail, **extra),
        status=status,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


# Django-level handlers, for URLs no DRF view answers.
def handler404(request, exception=None):
    return problem_response(404, "not_found", "No such resource.")


def handler500(request):
    # Django calls this inside its `except` block: the exception at hand says whether a dependency is down.
    if dependency := dependency_down(sys.exc_info()[1]):
        return outage_response(request, dependency)
    return problem_response(500, "internal_error", "Something went wrong on our side; it has been logged.")


def handler400(request, exception=None):
    return problem_response(400, "bad_request", "The request could not be understood.")


def handler403(request, exception=None):
    return problem_response(403, "permission_denied", "You may not do this.")


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a session-authenticated write without its CSRF token, answered like every other error."""
    return problem_response(403, "csrf_failed", f"CSRF check failed: {reason}")


def read_only(view):
    """For plain Django views that only read (health, metrics): other methods get a 405 problem, not a CSRF
    page, and nothing of a write's machinery (CSRF) applies to them."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = problem_response(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)
