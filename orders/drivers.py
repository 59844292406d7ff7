"""Who drives an order: asked of the delivery app, which keeps the one record of it (the order's assignments).

Delivery sits above orders, so orders cannot import it. Delivery installs the two readers below when it loads
(`DeliveryConfig.ready`), the way it subscribes to orders' events; orders only says what it needs. Without the
delivery app, no order has a driver.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from django.db.models import QuerySet


@dataclass(frozen=True)
class OrderDriver:
    id: int
    name: str


def _nobody(order_ids: list[UUID]) -> dict[UUID, OrderDriver]:
    return {}


def _no_orders(driver_id: int) -> QuerySet | list:
    return []


_drivers_of: Callable[[list[UUID]], dict[UUID, OrderDriver]] = _nobody
_orders_driven_by: Callable[[int], QuerySet | list] = _no_orders


def install(
    *, drivers_of: Callable[[list[UUID]], dict[UUID, OrderDriver]], orders_driven_by: Callable[[int], QuerySet]
) -> None:
    global _drivers_of, _orders_driven_by
    _drivers_of, _orders_driven_by = drivers_of, orders_driven_by


def drivers_of(order_ids: Iterable[UUID]) -> dict[UUID, OrderDriver]:
    """{order_id: its driver} for those of `order_ids` that have one, in one query."""
    order_ids = list(order_ids)
    return _drivers_of(order_ids) if order_ids else {}


def orders_driven_by(driver_id: int) -> QuerySet | list:
    """The ids of the orders `driver_id` drives or drove, as a subquery: what that driver may see."""
    return _orders_driven_by(driver_id)
