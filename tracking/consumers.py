"""WebSocket consumers: one order's watchers (`/ws/orders/<id>/`) and the staff fleet map (`/ws/fleet/`).

Every refusal happens after `accept()`, with a close code (4401, 4404, 4403), so browsers can tell "sign
in again" from "no such order" - a handshake refused before accept reaches scripts only as 1006.
Database reads go through `database_sync_to_async`: the event loop serves thousands of sockets and must
never wait on PostgreSQL.
"""

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from delivery.live import FLEET_GROUP, order_group
from orders.models import Order
from tracking import selectors
from tracking.auth import BEARER

logger = logging.getLogger(__name__)

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
FINAL_STATUSES = {Order.Status.DELIVERED.value, Order.Status.CANCELLED.value}
POSITION_FIELDS = ("lat", "lng", "recorded_at", "heading", "speed")
# channels-redis borrows a pooled Redis connection per group_add/discard, and redis-py's asyncio pool
# fails (MaxConnectionsError, 100 by default) instead of waiting when it is exhausted. A burst of thousands of
# sockets (a server restart: every client reconnects at once) queues here instead of failing.
_REDIS_OPS = asyncio.Semaphore(32)


class _JsonSocket(AsyncWebsocketConsumer):
    """Accept-then-close refusals, JSON frames, ping/pong, and `bad_message` for anything else."""

    groups_joined: tuple[str, ...] = ()
    closed = False

    async def accept_for_client(self) -> None:
        # A client that offered the bearer subprotocol must get it back, or the browser drops the socket.
        await self.accept(BEARER if BEARER in (self.scope.get("subprotocols") or []) else None)

    async def join(self, *groups: str) -> None:
        async with _REDIS_OPS:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups

    async def finish(self, code: int) -> None:
        """Close once; messages already queued for this socket are dropped instead of sent after the close."""
        if self.closed:
            return
        self.closed = True
        await self._leave()
        await self.close(code)

    async def _leave(self) -> None:
        groups, self.groups_joined = self.groups_joined, ()
        if groups:
            async with _REDIS_OPS:
                for group in groups:
                    await self.channel_layer.group_discard(group, self.channel_name)

    async def send_json(self, message: dict) -> None:
        if not self.closed:
            await self.send(text_data=json.dumps(message, separators=(",", ":")))

    async def disconnect(self, code):
        self.closed = True
        await self._leave()

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data) if text_data is not None else None
        except ValueError:
            message = None
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "code": "bad_message"})


class OrderConsumer(_JsonSocket):
    """Snapshot first, then `position` and `status` as they happen; closes 1000 after the final status."""

    async def connect(self):
        await self.accept_for_client()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.finish(NOT_AUTHENTICATED)
        order = await database_sync_to_async(selectors.order_for_watcher)(
            user=user, order_id=self.scope["url_route"]["kwargs"]["order_id"]
        )
        if order is None:
            return await self.finish(NOT_FOUND)
        # Join before reading the snapshot, so nothing that happens in between is missed. Group messages
        # are only handled after connect() returns, so the snapshot still goes out first.
        await self.join(order_group(order.pk))
        snapshot = await database_sync_to_async(selectors.order_snapshot)(order=order)
        await self.send_json(snapshot)
        if snapshot["order"]["status"] in FINAL_STATUSES:
            await self.send_json(
                {
                    "type": "status",
                    "order_id": str(order.pk),
                    "status": snapshot["order"]["status"],
                    "cancel_reason": order.cancel_reason,
                    "at": order.updated_at.isoformat(),
                }
            )
            await self.finish(1000)

    async def order_position(self, event):
        await self.send_json({"type": "position", "order_id": event["order_id"], "driver_id": event["driver_id"],
                              **{field: event.get(field) for field in POSITION_FIELDS}})  # fmt: skip

    async def order_status(self, event):
        await self.send_json({"type": "status", "order_id": event["order_id"], "status": event["status"],
                              "cancel_reason": event.get("cancel_reason"), "at": event["at"]})  # fmt: skip
        if event["status"] in FINAL_STATUSES:
            await self.finish(1000)


class FleetConsumer(_JsonSocket):
    """Staff only: every working driver and active order, then `driver` and `order` updates."""

    async def connect(self):
        await self.accept_for_client()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.finish(NOT_AUTHENTICATED)
        if not user.is_staff:
            return await self.finish(FORBIDDEN)
        await self.join(FLEET_GROUP)
        snapshot = await database_sync_to_async(selectors.fleet_snapshot)()
        self.known_orders = {order["order_id"] for order in snapshot["orders"]}
        await self.send_json(snapshot)

    async def fleet_position(self, event):
        await self.send_json({"type": "driver", **{key: value for key, value in event.items() if key != "type"}})

    async def fleet_order(self, event):
        message = {"type": "order", **{key: value for key, value in event.items() if key != "type"}}
        if event["order_id"] not in self.known_orders and event["status"] not in FINAL_STATUSES:
            # A new order: the map needs its store and destination once. Few staff sockets, so cheap.
            details = await database_sync_to_async(selectors.fleet_order_get)(order_id=event["order_id"])
            if details:
                message.update(store=details["store"], destination=details["destination"])
            self.known_orders.add(event["order_id"])
        await self.send_json(message)
