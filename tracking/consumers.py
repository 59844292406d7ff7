"""WebSocket consumers: one order's watchers (`/ws/orders/<id>/`) and the staff fleet map (`/ws/fleet/`).

Every refusal happens after `accept()`, with a close code (4401, 4404, 4403), so browsers can tell "sign
in again" from "no such order" - a handshake refused before accept reaches scripts only as 1006.
Database reads go through `database_sync_to_async`: the event loop serves thousands of sockets and must
never wait on PostgreSQL.
"""

import asyncio
import json
import logging

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from delivery import hot, live
from delivery.live import FLEET_GROUP, order_group
from orders.models import Order
from tracking import selectors
from tracking.auth import BEARER

logger = logging.getLogger(__name__)

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
# Beyond the contract's codes, for abuse only: the user already holds WEBSOCKET_MAX_SOCKETS_PER_USER sockets.
TOO_MANY_SOCKETS = 4429
FINAL_STATUSES = {Order.Status.DELIVERED.value, Order.Status.CANCELLED.value}
# channels-redis borrows a pooled Redis connection per group_add/discard, and redis-py's asyncio pool
# fails (MaxConnectionsError, 100 by default) instead of waiting when it is exhausted. A burst of thousands of
# sockets (a server restart: every client reconnects at once) queues here instead of failing.
_REDIS_OPS = asyncio.Semaphore(32)
# This process's sockets that hold a slot, and the one task renewing its lease on their counts (delivery/hot.py)
# while there are any. Without renewals, other processes would stop counting these sockets after a lease.
_slots_held = 0
_lease_task: asyncio.Task | None = None


def _slots_change(by: int) -> None:
    global _slots_held, _lease_task
    _slots_held += by
    loop = asyncio.get_running_loop()
    # Compared by loop too: the tests run a loop per test, and a task of a closed loop never runs again.
    running = _lease_task is not None and not _lease_task.done() and _lease_task.get_loop() is loop
    if _slots_held > 0 and not running:
        _lease_task = loop.create_task(_lease_renew())
    elif _slots_held <= 0 and running:
        _lease_task.cancel()


async def _lease_renew() -> None:
    while True:
        await asyncio.sleep(settings.WEBSOCKET_PROCESS_LEASE_SECONDS / 3)
        try:
            await sync_to_async(hot.process_lease_renew, thread_sensitive=False)()
        except redis.RedisError:
            # Tried again a third of a lease later: a whole lease of failures before this process's counts lapse.
            logger.warning("socket lease not renewed", exc_info=True)


class _JsonSocket(AsyncWebsocketConsumer):
    """Accept-then-close refusals, JSON frames, ping/pong, and `bad_message` for anything else."""

    groups_joined: tuple[str, ...] = ()
    closed = False
    slot_user = None

    async def accept_for_client(self) -> None:
        # A client that offered the bearer subprotocol must get it back, or the browser drops the socket.
        await self.accept(BEARER if BEARER in (self.scope.get("subprotocols") or []) else None)

    async def take_slot(self, user) -> bool:
        """One of the user's WEBSOCKET_MAX_SOCKETS_PER_USER sockets; False when all are taken."""
        self.slot_user = user.pk
        _slots_change(+1)
        if await sync_to_async(hot.user_sockets_open, thread_sensitive=False)(user.pk):
            return True
        self.slot_user = None
        _slots_change(-1)
        return False

    async def _give_slot_back(self) -> None:
        user_id, self.slot_user = self.slot_user, None
        if user_id is not None:
            _slots_change(-1)
            await sync_to_async(hot.user_socket_closed, thread_sensitive=False)(user_id)

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
        await self._give_slot_back()
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
        message = None
        # The limit is in bytes, as the server's --ws-max-size counts them: 4 KB of accents are 2,048 characters.
        if text_data is not None and len(text_data.encode()) <= settings.WEBSOCKET_MAX_MESSAGE_BYTES:
            try:
                message = json.loads(text_data)
            except (ValueError, RecursionError):  # deeply nested JSON exhausts the parser's recursion
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
        if not await self.take_slot(user):
            return await self.finish(TOO_MANY_SOCKETS)
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
            final = live.status_frame(order_id=order.pk, status=snapshot["order"]["status"],
                                      cancel_reason=order.cancel_reason, at=order.updated_at.isoformat())  # fmt: skip
            await self.send_json(final)
            await self.finish(1000)

    async def order_position(self, event):
        await self.send_json(live.client_frame(event))

    async def order_status(self, event):
        await self.send_json(live.client_frame(event))
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
        if not await self.take_slot(user):
            return await self.finish(TOO_MANY_SOCKETS)
        await self.join(FLEET_GROUP)
        snapshot = await database_sync_to_async(selectors.fleet_snapshot)()
        self.known_orders = {order["order_id"] for order in snapshot["orders"]}
        await self.send_json(snapshot)

    async def fleet_position(self, event):
        await self.send_json(live.client_frame(event))

    async def fleet_order(self, event):
        message = live.client_frame(event)
        if event["order_id"] not in self.known_orders and event["status"] not in FINAL_STATUSES:
            # A new order: the map needs its store and destination once. Few staff sockets, so cheap.
            details = await database_sync_to_async(selectors.fleet_order_get)(order_id=event["order_id"])
            if details:
                message.update(store=details["store"], destination=details["destination"])
            self.known_orders.add(event["order_id"])
        await self.send_json(message)


class NotFoundConsumer(_JsonSocket):
    """Any other WebSocket path: refused like a missing order (4404), not a routing error (500)."""

    async def connect(self):
        await self.accept_for_client()
        await self.finish(NOT_FOUND)
