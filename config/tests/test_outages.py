"""Dependency outages against the real web process, with a Redis and a PostgreSQL of the test's own that it
stops, freezes (SIGSTOP) and restarts. Never the machine's shared servers.

The bar: no 500 and no hang. What degrades: throttling (lets requests through, counted in a metric).
What fails cleanly: anything that needs the missing dependency answers 503 problem+json with Retry-After.
/readyz answers within its own deadline and names what is down."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from accounts.tests.factories import UserFactory
from accounts.tokens import access_token_for
from common.processes import ROOT, ThrowawayPostgres, ThrowawayRedis
from delivery.models import Driver
from inventory.tests.factories import StoreFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROBE_TIMEOUT = 15.0  # a client's patience: an answer must come, whatever the dependency does


@pytest.fixture
def redis_server():
    server = ThrowawayRedis().start()
    yield server
    server.stop()


@pytest.fixture
def web_on(start_process):
    def start(**env):
        process = start_process("web", WEB_CONCURRENCY="1", THROTTLE_ENABLED="true", **env)
        return httpx.Client(base_url=f"http://127.0.0.1:{process.port}", timeout=PROBE_TIMEOUT)

    return start


def assert_outage_problem(response, dependency=None):
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["code"] == "dependency_down"
    if dependency:
        assert body["dependency"] == dependency


def test_with_redis_down_reads_still_answer_throttling_degrades_and_readyz_names_redis(redis_server, web_on):
    customer, store = UserFactory(), StoreFactory()
    driver = Driver.objects.create(user=UserFactory(), status="available")
    web = web_on(REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)
    as_customer = {"Authorization": f"Bearer {access_token_for(customer)}"}
    assert web.get("/api/v1/stores", headers=as_customer).status_code == 200

    redis_server.stop()

    stores = web.get("/api/v1/stores", headers=as_customer)
    assert stores.status_code == 200, stores.text  # the throttle could not count: it let the request through
    assert web.get(f"/api/v1/stores/{store.pk}", headers=as_customer).status_code == 200
    metrics = web.get("/metrics").text
    assert 'courier_throttle_unavailable_total{scope="user"}' in metrics
    ready = web.get("/readyz")
    assert_outage_problem(ready)
    assert ready.json()["database"] == "ok"
    assert ready.json()["redis"].startswith("down") and ready.json()["broker"].startswith("down")
    point = {"lat": 52.52, "lng": 13.40, "recorded_at": "2026-01-01T00:00:00Z"}
    located = web.post(
        "/api/v1/drivers/me/locations", json={"points": [point]},
        headers={"Authorization": f"Bearer {access_token_for(driver.user)}"},
    )  # fmt: skip
    assert located.status_code != 500, located.text
    if located.status_code == 503:
        assert_outage_problem(located, "redis")

    redis_server.start()  # same port: the web process finds it again by itself
    assert web.get("/readyz").status_code == 200


def test_a_hung_redis_costs_bounded_time_and_readyz_keeps_answering(redis_server, web_on):
    customer = UserFactory()
    web = web_on(REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)
    as_customer = {"Authorization": f"Bearer {access_token_for(customer)}"}
    assert web.get("/readyz").status_code == 200

    redis_server.freeze()
    try:
        # More probes at once than the web process has request threads (8): none may pile up for good.
        with ThreadPoolExecutor(max_workers=12) as pool:
            probes = list(pool.map(lambda _: web.get("/readyz"), range(12)))
        assert {p.status_code for p in probes} == {503}
        assert all(p.json()["redis"].startswith("down") and p.json()["database"] == "ok" for p in probes), [
            p.json() for p in probes
        ]
        assert web.get("/healthz").status_code == 200
        assert web.get("/api/v1/stores", headers=as_customer).status_code == 200
    finally:
        redis_server.thaw()
    assert web.get("/readyz").status_code == 200


@pytest.fixture
def postgres_server():
    server = ThrowawayPostgres().start()
    env = {"DATABASE_URL": server.url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env},
                             capture_output=True, text=True)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    yield server
    server.destroy()


def test_with_postgres_down_requests_answer_503_and_recover_after_a_restart(postgres_server, web_on):
    web = web_on(DATABASE_URL=postgres_server.url)
    register = {"email": "outage@example.com", "password": "a long enough passphrase 42", "name": "Olive"}
    assert web.post("/api/v1/auth/register", json=register).status_code == 201

    postgres_server.stop("fast")

    assert_outage_problem(web.post("/api/v1/auth/token", json=register), "database")
    assert_outage_problem(web.post("/api/v1/auth/register", json={**register, "email": "o2@example.com"}), "database")
    page = web.get("/admin/", headers={"Accept": "text/html"}, cookies={"sessionid": "a" * 32})
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) > 0
    ready = web.get("/readyz")
    assert_outage_problem(ready)
    assert ready.json()["database"].startswith("down") and ready.json()["redis"] == "ok"

    postgres_server.start()
    assert web.post("/api/v1/auth/token", json=register).status_code == 200
    assert web.get("/readyz").status_code == 200


PLACE_ORDERS = """
import uuid
from accounts.models import User
from inventory.models import Product
from inventory.tests.factories import ProductFactory, StoreFactory
from orders.tests.helpers import place_order
product = Product.objects.first() or ProductFactory(store=StoreFactory(), on_hand=10_000)
customer = User.objects.create_user(email=f"{uuid.uuid4().hex}@example.com", password="x", name="Customer")
for _ in range(%d):
    place_order(product=product, customer=customer, quantity=1)
"""


def test_the_worker_keeps_its_database_connections_and_gets_new_ones_after_a_postgres_restart(
    postgres_server, start_process
):
    def place(count: int) -> None:
        env = {**os.environ, "DATABASE_URL": postgres_server.url, "DJANGO_SETTINGS_MODULE": "config.settings"}
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", PLACE_ORDERS % count], cwd=ROOT, env=env,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr

    def database(sql: str) -> int:
        with psycopg.connect(postgres_server.url, autocommit=True) as connection:
            return connection.execute(sql).fetchone()[0]

    def all_paid(expected: int) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if database("SELECT count(*) FROM orders_order WHERE status = 'paid'") == expected:
                return True
            time.sleep(0.2)
        return False

    sessions = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    worker = start_process("worker", DATABASE_URL=postgres_server.url)
    start_process("relay", DATABASE_URL=postgres_server.url)
    place(10)
    assert all_paid(10), worker.log()[-3000:]

    before = database(sessions)
    place(30)
    assert all_paid(40), worker.log()[-3000:]
    # 30 sagas: one session for the placing shell, this query's own, and a few of the worker's threads; a
    # session per task (Celery's default with Django) would be 30 or more.
    assert database(sessions) - before < 15

    postgres_server.stop("fast")
    postgres_server.start()
    place(10)
    assert all_paid(50), worker.log()[-3000:]
