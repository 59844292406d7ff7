"""Publishing live positions on the channel layer (group names and shapes: `delivery.live`).

Views run in worker threads without an event loop. `async_to_sync(group_send)` would build a fresh event loop
per call, and channels-redis keeps its connection pools per loop, so every request would open and close a
Redis connection. Instead each process keeps one publisher loop in a daemon thread and hands it the sends:
the pool lives as long as the process.
"""

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer

from delivery.live import FLEET_GROUP, order_group

logger = logging.getLogger(__name__)
PUBLISH_TIMEOUT_SECONDS = 2.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid():  # a forked child needs its own thread
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="channel-publisher", daemon=True).start()
        return _loop


def publish(messages: list[tuple[str, dict]]) -> None:
    """Send `(group, message)` pairs in order. Live positions are ephemeral: a failure is logged, not raised."""
    if not messages:
        return
    layer = get_channel_layer()

    async def send():
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        asyncio.run_coroutine_threadsafe(send(), _publisher_loop()).result(timeout=PUBLISH_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("live position not published", exc_info=True)


def position_messages(*, driver, order_id, position: dict) -> list[tuple[str, dict]]:
    """The order's watchers get `order.position`; the staff map gets `fleet.position`."""
    fields = {k: position[k] for k in ("lat", "lng", "recorded_at", "heading", "speed")}
    messages = [
        (FLEET_GROUP, {"type": "fleet.position", "driver_id": str(driver["id"]), "name": driver["name"],
                       "status": driver["status"], "order_id": str(order_id) if order_id else None, **fields}),
    ]  # fmt: skip
    if order_id:
        messages.insert(
            0, (order_group(order_id), {"type": "order.position", "order_id": str(order_id),
                                        "driver_id": str(driver["id"]), **fields}),
        )  # fmt: skip
    return messages
