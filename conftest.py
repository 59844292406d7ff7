import pytest
import redis
from django.conf import settings

from accounts.tests.factories import UserFactory, bearer_client
from inventory.tests.factories import ProductFactory, StoreFactory


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis (throttle counters, circuit breaker, live positions).

    The test command points REDIS_URL at a database of its own, never the dev stack's."""
    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.flushdb()
    yield
    connection.close()


@pytest.fixture(scope="session")
def chromium():
    """Path of the Chromium the browser tests drive (the system's, else installed; see common/chromium.py).

    A machine without one fails these tests with one line saying what to run: they are never skipped."""
    from common.chromium import ChromiumUnavailable, chromium_executable

    try:
        return chromium_executable()
    except ChromiumUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def customer(db):
    return UserFactory(name="Cora Customer")


@pytest.fixture
def staff(db):
    return UserFactory(name="Sam Staff", is_staff=True)


@pytest.fixture
def admin_client(db):
    """A browser session of a superuser, for the Django admin (replaces pytest-django's, whose user has no name)."""
    from django.test import Client

    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True, name="Root Admin"))
    return client


@pytest.fixture
def customer_api(customer):
    return bearer_client(customer)


@pytest.fixture
def staff_api(staff):
    return bearer_client(staff)


@pytest.fixture
def store(db):
    return StoreFactory()


@pytest.fixture
def product(store):
    return ProductFactory(store=store, on_hand=10)


@pytest.fixture(scope="session")
def stack_env(django_db_setup, django_db_blocker, tmp_path_factory):
    """Environment for real platform processes that share the test database and test Redis."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "THROTTLE_ENABLED": "false",
        "PAYMENT_RETRY_BASE_SECONDS": "0.2",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_DIR": str(tmp_path_factory.mktemp("logs")),
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path_factory.mktemp("beat") / "schedule"),
    }


@pytest.fixture
def start_process(stack_env, transactional_db):
    """Start a Procfile process (`start_process("worker", EXTRA="1")`); stopped after the test."""
    from contextlib import ExitStack
    from pathlib import Path

    from common.processes import started

    with ExitStack() as stack:

        def start(name, command=None, **extra):
            env = {**stack_env, **extra}
            return stack.enter_context(started(name, env, Path(stack_env["LOG_DIR"]), command=command))

        yield start
