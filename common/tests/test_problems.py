import json

import pytest
from django.test import Client, RequestFactory
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, Throttled

from common import errors
from common.errors import Conflict
from common.problems import flatten_errors, handler500, problem_exception_handler

pytestmark = pytest.mark.django_db


class Line(serializers.Serializer):
    product_id = serializers.CharField()
    quantity = serializers.IntegerField(min_value=1)


class Order(serializers.Serializer):
    items = Line(many=True, max_length=2)
    note = serializers.CharField(required=False)


def errors_of(data) -> list[dict]:
    serializer = Order(data=data)
    assert not serializer.is_valid()
    return flatten_errors(serializer.errors)


def test_nested_errors_get_dotted_field_paths():
    errors = errors_of({"items": [{"product_id": "1", "quantity": 1}, {"product_id": "2", "quantity": 0}]})

    assert errors == [{"field": "items.1.quantity", "message": errors[0]["message"], "code": "min_value"}]


def test_a_nested_serializers_own_error_names_the_field_that_holds_it():
    errors = errors_of({"items": [{"product_id": str(i), "quantity": 1} for i in range(3)]})

    assert [(e["field"], e["code"]) for e in errors] == [("items", "max_length")]


def test_top_level_non_field_errors_keep_their_name():
    serializer = Order(data=[])
    assert not serializer.is_valid()

    assert [e["field"] for e in flatten_errors(serializer.errors)] == ["non_field_errors"]


def test_a_bare_error_list():
    assert flatten_errors([ErrorDetail("nope", code="x")]) == [{"field": "non_field_errors", "message": "nope",
                                                                "code": "x"}]  # fmt: skip


def test_a_domain_error_is_answered_with_its_kinds_status_and_its_extra_members():
    response = problem_exception_handler(Conflict("Taken.", code="email_taken", hint="sign in"), {})

    assert response.status_code == 409
    assert response.data == {
        "type": "https://courier.dev/problems/email-taken", "title": "Conflict", "status": 409, "detail": "Taken.",
        "code": "email_taken", "hint": "sign in",
    }  # fmt: skip


@pytest.mark.parametrize(
    "kind, status", [(errors.Invalid, 400), (errors.NotAllowed, 403), (errors.NotFound, 404), (errors.Conflict, 409)]
)
def test_every_kind_of_domain_error_has_its_status(kind, status):
    response = problem_exception_handler(kind("Refused."), {})

    assert (response.status_code, response.data["code"], response.data["detail"]) == (
        status, kind.default_code, "Refused."
    )  # fmt: skip


def test_a_domain_error_on_a_field_is_answered_like_a_serializers_field_error():
    response = problem_exception_handler(errors.Invalid("Too common.", code="weak_password", field="password"), {})

    assert (response.status_code, response.data["code"]) == (400, "validation_error")
    assert response.data["errors"] == [{"field": "password", "message": "Too common.", "code": "weak_password"}]


def test_throttled_carries_retry_after():
    response = problem_exception_handler(Throttled(wait=12.3), {})

    assert (response.status_code, response.data["code"], response["Retry-After"]) == (429, "throttled", "13")


def test_unexpected_exceptions_are_left_to_the_500_handler():
    assert problem_exception_handler(KeyError("bug"), {}) is None

    response = handler500(RequestFactory().get("/"))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["code"] == "internal_error"


# --- the body size limit -------------------------------------------------------------------------


def test_declared_oversized_body_is_413_before_any_view():
    response = Client().generic(
        "POST", "/api/v1/auth/register", b"{}", content_type="application/json", CONTENT_LENGTH=str(256 * 1024 + 1)
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "body_too_large"


def test_body_at_the_limit_is_read():
    body = json.dumps({"email": "a@example.com", "password": "x", "name": "y" * (256 * 1024 - 60)})

    response = Client().post("/api/v1/auth/register", body, content_type="application/json")

    assert response.status_code == 400  # reached the view: validation, not the size limit
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("length", ["abc", "1e9", " "])
def test_non_numeric_content_length_is_400(length):
    response = Client().generic("POST", "/api/v1/auth/register", b"{}", content_type="application/json",
                                CONTENT_LENGTH=length)  # fmt: skip

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_negative_content_length_is_not_a_500():
    response = Client().generic(
        "POST", "/api/v1/auth/register", b'{"a": 1}', content_type="application/json", CONTENT_LENGTH="-5"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_dependency_outages_are_told_apart_from_bugs_and_bad_input():
    import kombu.exceptions
    import redis
    from django.db import IntegrityError, InterfaceError, OperationalError
    from django_redis.exceptions import ConnectionInterrupted

    from common.problems import dependency_down

    try:
        try:
            raise redis.TimeoutError("Timeout reading from socket")
        except redis.TimeoutError as inner:
            raise RuntimeError("a library wrapped it") from inner
    except RuntimeError as wrapped:
        wrapped_timeout = wrapped

    assert dependency_down(OperationalError("server closed the connection")) == "database"
    assert dependency_down(InterfaceError("connection already closed")) == "database"
    assert dependency_down(ConnectionInterrupted(connection=None)) == "redis"
    assert dependency_down(redis.ConnectionError("refused")) == "redis"
    assert dependency_down(wrapped_timeout) == "redis"
    assert dependency_down(kombu.exceptions.OperationalError("broker unreachable")) == "broker"
    assert dependency_down(IntegrityError("duplicate key")) is None
    assert dependency_down(ValueError("a bug")) is None


def test_outage_answers_503_problem_with_retry_after():
    from django.db import OperationalError

    response = problem_exception_handler(OperationalError("the database system is shutting down"), {})

    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    assert (response.data["code"], response.data["dependency"]) == ("dependency_down", "database")
