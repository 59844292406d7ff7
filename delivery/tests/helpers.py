from datetime import UTC, datetime, timedelta

from accounts.tests.factories import UserFactory
from delivery.models import Driver
from delivery.services import drivers, ingest
from inventory.tests.factories import ProductFactory, StoreFactory
from orders.tests.helpers import place_order, run_saga

STORE = (52.5219, 13.4132)  # StoreFactory's position


def now_utc(seconds_ago: float = 0) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds_ago)


def point(lat: float, lng: float, *, seconds_ago: float = 0, **extra) -> dict:
    return {"lat": lat, "lng": lng, "recorded_at": now_utc(seconds_ago), "heading": None, "speed": None,
            "accuracy": None, **extra}  # fmt: skip


def make_driver(*, at: tuple[float, float] | None = STORE, status: str = "available", name: str = "Dana Driver"):
    """A driver with the given status and (through the real ingest path) a fresh live position."""
    driver = Driver.objects.create(user=UserFactory(name=name))
    if status != "offline":
        drivers.driver_set_status(driver_id=driver.pk, status=status)
    if at is not None:
        send_points(driver, [point(*at)])
    driver.refresh_from_db()
    return driver


def send_points(driver: Driver, points: list[dict]) -> int:
    return ingest.driver_locations_ingest(user_id=driver.user_id, driver_id=driver.pk, points=points)


def offset(km_north: float, base=STORE) -> tuple[float, float]:
    """A position `km_north` kilometres north of `base` (1° latitude ≈ 111.2 km)."""
    return base[0] + km_north / 111.2, base[1]


def paid_order(*, store=None, customer=None, quantity=2):
    product = ProductFactory(store=store or StoreFactory(), on_hand=10)
    order = place_order(product=product, quantity=quantity, customer=customer or UserFactory())
    run_saga(order)
    order.refresh_from_db()
    assert order.status == "paid"
    return order
