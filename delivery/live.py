"""Live state shared with the tracking app (the layer above): channel-layer group names and the
message shapes delivery publishes on them. Tracking imports this module; nothing here imports tracking.

Groups:
- `order_group(order_id)`: everyone watching one order. Delivery publishes
  `{"type": "order.position", "order_id", "driver_id", "lat", "lng", "recorded_at", "heading", "speed"}`
  for each new live position of the order's driver; tracking publishes
  `{"type": "order.status", "order_id", "status", "cancel_reason", "at"}` on order status changes.
- `FLEET_GROUP`: the staff live map. Delivery publishes
  `{"type": "fleet.position", "driver_id", "name", "status", "order_id"|None,
    "lat", "lng", "recorded_at", "heading", "speed"}`;
  tracking publishes `{"type": "fleet.order", "order_id", "status", "driver_id", "at"}`.
"""

FLEET_GROUP = "fleet"


def order_group(order_id) -> str:
    return f"order.{order_id}"
