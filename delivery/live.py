"""Every live message, in one place: channel-layer group names, the messages published on them, and the frames
clients receive. Delivery (GPS points) and tracking (order status, snapshots) both build their messages here, and
`delivery.broadcast` is the one publisher for all of them. Tracking imports this module; nothing here imports it.

Ids are strings on the wire, always (the contract: clients treat every id as an opaque string), so a client
can match `driver_id` from a snapshot, a position and a status update with plain equality.

Groups and what travels on them (channel-layer `type` → the client frame's `type`):
- `order_group(order_id)`: the order's watchers. `order.position` → `position`, `order.status` → `status`.
- `FLEET_GROUP`: the staff live map. `fleet.position` → `driver`, `fleet.order` → `order`.
"""

FLEET_GROUP = "fleet"
POSITION_FIELDS = ("lat", "lng", "recorded_at", "heading", "speed")
# channel-layer message type -> the `type` of the frame the client gets
CLIENT_TYPES = {"order.position": "position", "order.status": "status", "fleet.position": "driver",
                "fleet.order": "order"}  # fmt: skip

Message = tuple[str, dict]  # (group, channel-layer message)


def order_group(order_id) -> str:
    return f"order.{order_id}"


def _id(value) -> str | None:
    return None if value is None else str(value)


def _position(position: dict | None) -> dict | None:
    return None if position is None else {field: position.get(field) for field in POSITION_FIELDS}


def position_messages(*, driver_id, name: str, status: str, order_id, position: dict) -> list[Message]:
    """A driver's new live position (`recorded_at` already RFC 3339): to its active order's watchers, if it
    has one, and to the staff map."""
    fields = _position(position)
    messages = []
    if order_id:
        messages.append((order_group(order_id), {"type": "order.position", "order_id": _id(order_id),
                                                 "driver_id": _id(driver_id), **fields}))  # fmt: skip
    messages.append((FLEET_GROUP, {"type": "fleet.position", "driver_id": _id(driver_id), "name": name,
                                   "status": status, "order_id": _id(order_id), **fields}))  # fmt: skip
    return messages


def status_messages(*, order_id, status: str, cancel_reason: str | None, driver_id, at: str) -> list[Message]:
    """An order's new status: to its watchers and to the staff map."""
    return [
        (order_group(order_id), {"type": "order.status", "order_id": _id(order_id), "status": status,
                                 "cancel_reason": cancel_reason, "at": at}),
        (FLEET_GROUP, {"type": "fleet.order", "order_id": _id(order_id), "status": status,
                       "driver_id": _id(driver_id), "at": at}),
    ]  # fmt: skip


def client_frame(message: dict) -> dict:
    """The frame a client receives for a channel-layer message: the same fields, the client's `type`."""
    return {**message, "type": CLIENT_TYPES[message["type"]]}


def status_frame(*, order_id, status: str, cancel_reason: str | None, at: str) -> dict:
    return {"type": "status", "order_id": _id(order_id), "status": status, "cancel_reason": cancel_reason, "at": at}


def order_snapshot_frame(*, order_id, status: str, driver: dict | None, position: dict | None,
                         eta_seconds: int | None) -> dict:  # fmt: skip
    """The first frame on an order socket. `eta_seconds` is an addition to the contract's fields."""
    return {
        "type": "snapshot",
        "order": {"id": _id(order_id), "status": status},
        "driver": None if driver is None else {"id": _id(driver["id"]), "name": driver["name"]},
        "position": _position(position),
        "eta_seconds": eta_seconds,
    }


def fleet_driver(*, driver_id, name: str, status: str, order_id, position: dict | None) -> dict:
    """One driver in the staff map's snapshot."""
    return {"driver_id": _id(driver_id), "name": name, "status": status, "order_id": _id(order_id),
            "position": _position(position)}  # fmt: skip


def fleet_order(*, order_id, status: str, driver_id, store: dict, destination: dict) -> dict:
    """One active order in the staff map's snapshot (and the details of an order the map sees for the first time)."""
    return {"order_id": _id(order_id), "status": status, "driver_id": _id(driver_id), "store": store,
            "destination": destination}  # fmt: skip
