import json
import time

import pytest
import yaml
from rest_framework.test import APIClient

from config.celery import app as celery_app
from orders.tests.helpers import place_order

pytestmark = pytest.mark.django_db

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz():
    response = APIClient().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_readyz_when_everything_is_up():
    response = APIClient().get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_readyz_names_the_broker_when_it_is_down(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", CLOSED_PORT_URL)
    started = time.monotonic()

    response = APIClient().get("/readyz")

    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"]
    body = response.json()
    assert (body["code"], body["database"], body["redis"]) == ("dependency_down", "ok", "ok")
    assert body["broker"].startswith("down")
    assert "broker" in body["detail"] and "redis" not in body["detail"]


def test_readyz_names_redis_when_the_cache_is_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": CLOSED_PORT_URL,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }

    response = APIClient().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["redis"].startswith("down") and body["broker"] == "ok" and body["database"] == "ok"


def test_metrics_count_orders_and_cancellations_by_reason(customer_api, customer):
    order = place_order(customer=customer)
    place_order()
    assert customer_api.post(f"/api/v1/orders/{order.pk}/cancel").status_code == 200

    response = APIClient().get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE courier_orders_created_total counter" in text
    assert "courier_orders_created_total 2.0" in text
    assert 'courier_orders_cancelled_total{reason="customer"} 1.0' in text
    assert 'courier_orders{status="reserved"} 1.0' in text


def test_openapi_schema_is_served_as_yaml_and_json():
    as_yaml = APIClient().get("/api/schema/")
    as_json = APIClient().get("/api/schema/?format=json")

    assert as_yaml.status_code == as_json.status_code == 200
    document = yaml.safe_load(as_yaml.content)
    assert document["openapi"].startswith("3.")
    assert json.loads(as_json.content)["paths"] == document["paths"]
    for path in ["/api/v1/orders", "/api/v1/orders/{order_id}/cancel", "/api/v1/auth/register", "/api/v1/products"]:
        assert path in document["paths"], path


def test_interactive_docs():
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v1/orders/", "/api/v2/orders", "/api/v1/stores/x/y"])
def test_unknown_url_is_a_problem_404(customer_api, path):
    response = customer_api.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_ops_endpoints_answer_other_methods_with_a_problem_405(path, method):
    response = getattr(APIClient(enforce_csrf_checks=True), method)(path, {"x": 1}, format="json")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
