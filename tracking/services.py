"""Tracking's only writes are to the channel layer: status news fanned out to the sockets."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from delivery.live import FLEET_GROUP, order_group


def order_status_publish(*, order_id: str, status: str, cancel_reason: str | None, driver_id, at: str) -> None:
    """Tell everyone watching the order, and the staff map. At-least-once (the outbox may relay twice):
    a repeated status is harmless to clients, which just show it again."""
    async_to_sync(_publish)(order_id, status, cancel_reason, driver_id, at)


async def _publish(order_id, status, cancel_reason, driver_id, at) -> None:
    layer = get_channel_layer()
    await layer.group_send(
        order_group(order_id),
        {"type": "order.status", "order_id": order_id, "status": status, "cancel_reason": cancel_reason, "at": at},
    )
    await layer.group_send(
        FLEET_GROUP, {"type": "fleet.order", "order_id": order_id, "status": status, "driver_id": driver_id, "at": at}
    )


def on_order_status_changed(payload: dict) -> None:
    """Outbox subscriber for `order.status_changed` (registered in TrackingConfig.ready)."""
    order_status_publish(
        order_id=payload["order_id"],
        status=payload["status"],
        cancel_reason=payload.get("cancel_reason"),
        driver_id=payload.get("driver_id"),
        at=payload["at"],
    )
