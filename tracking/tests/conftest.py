"""Orders with a real driver, made through the real services (the saga step, dispatch, GPS ingest)."""

from datetime import timedelta

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from delivery.services import dispatch, drivers, ingest
from orders import services as orders
from orders.events import outbox_publish
from orders.models import Order

NEAR_STORE = (52.5225, 13.4140)  # a few dozen metres from the StoreFactory's Alexanderplatz


def post_points(driver_user, *points, start=None):
    """Ingest GPS points for the driver through the delivery service (what the locations API calls)."""
    start = start or timezone.now() - timedelta(seconds=len(points))
    batch = [
        {"lat": lat, "lng": lng, "recorded_at": start + timedelta(seconds=i), "heading": 90.0, "speed": 6.0}
        for i, (lat, lng) in enumerate(points)
    ]
    return ingest.driver_locations_ingest(user_id=driver_user.pk, driver_id=driver_user.driver.pk, points=batch)


def make_driver(name="Dora Driver", position=NEAR_STORE):
    user = UserFactory(name=name)
    driver = drivers.driver_create(user=user)
    drivers.driver_set_status(driver_id=driver.pk, status="available")
    post_points(user, position)
    return driver


def place_order(customer, product, *, lat=52.5300, lng=13.4000) -> Order:
    order = orders.order_create(
        customer=customer, store=product.store, lines=[orders.LineInput(product=product, quantity=1)],
        delivery_address="Torstrasse 1, Berlin", delivery_lat=lat, delivery_lng=lng, payment_token="tok_ok",
    )  # fmt: skip
    while orders.order_saga_advance(order_id=order.pk) is not None:
        pass
    outbox_publish()  # as the relay process would: the setup's news is out before a test watches
    return Order.objects.get(pk=order.pk)


def assign(order: Order) -> Order:
    dispatch.order_dispatch(order_id=order.pk)
    outbox_publish()
    order.refresh_from_db()
    assert order.status == Order.Status.ASSIGNED, order.status
    return order


def active_assignment(order: Order):
    return order.assignments.get(status__in=["assigned", "accepted", "picked_up"])


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def driver(db):
    return make_driver()


@pytest.fixture
def assigned_order(customer, product, driver):
    return assign(place_order(customer, product))


@pytest.fixture
def browser(monkeypatch, chromium):
    """The machine's Chromium through Playwright, as the browser tests drive it."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which trips Django's async-safety check
    # for the test's own ORM calls; nothing runs Django code on that loop (Playwright's documented advice).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


def api_as(base: str, user) -> httpx.Client:
    """An HTTP client of the running web process, signed in as `user` with a bearer token (the apps' way)."""
    from rest_framework_simplejwt.tokens import RefreshToken

    token = RefreshToken.for_user(user).access_token
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20)
