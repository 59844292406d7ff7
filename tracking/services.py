"""Tracking's only writes are to the channel layer: status news fanned out to the sockets."""

from uuid import UUID

from delivery import broadcast, live
from delivery.selectors import order_drivers
from orders.models import Order


def order_status_publish(*, order_id: str, status: str, cancel_reason: str | None, driver_id, at: str) -> None:
    """Tell everyone watching the order, and the staff map; handed to the process's publisher, so the caller
    (a request or task that changed the order) does not wait for Redis. At-least-once (the outbox may relay
    twice): a repeated status is harmless to clients, which just show it again."""
    broadcast.publish(
        live.status_messages(order_id=order_id, status=status, cancel_reason=cancel_reason, driver_id=driver_id, at=at)
    )


def on_order_status_changed(payload: dict) -> None:
    """Outbox subscriber for `order.status_changed` (registered in TrackingConfig.ready). The event names the
    driver when delivery made the move; a cancellation comes from the customer, staff or the saga, so the staff
    map is told from delivery's record which rider is no longer on that order."""
    driver_id = payload.get("driver_id")
    if driver_id is None and payload["status"] == Order.Status.CANCELLED:
        driver = order_drivers([payload["order_id"]]).get(UUID(payload["order_id"]))
        driver_id = driver.id if driver else None
    order_status_publish(
        order_id=payload["order_id"],
        status=payload["status"],
        cancel_reason=payload.get("cancel_reason"),
        driver_id=driver_id,
        at=payload["at"],
    )
