"""The one publisher of live messages (built in `delivery.live`) on the channel layer.

Callers are request threads and Celery tasks without an event loop. `async_to_sync(group_send)` per call built
a fresh event loop each time (~16 ms here, and channels-redis keeps its connections per loop, so a new Redis
connection too). Instead each process keeps one publisher loop in a daemon thread; `publish` only hands the
messages over (`call_soon_threadsafe`, microseconds) and returns. One sender coroutine sends them in the order
they were handed over, so a driver's positions and an order's statuses reach the layer in order.

Live messages are ephemeral: a failure is logged, never raised into the caller, and when the layer falls behind
by more than MAX_PENDING batches the newest are dropped (counted and logged) rather than growing memory without
bound. Clients resync from the snapshot every socket starts with.
"""

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer

from delivery.live import Message

logger = logging.getLogger(__name__)
MAX_PENDING = 10_000


class _Publisher:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[list[Message]] | None = None
        self.dropped = 0
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), name="live-publisher", daemon=True).start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue(MAX_PENDING)
        self.loop.create_task(self._send_forever())
        started.set()
        self.loop.run_forever()

    async def _send_forever(self) -> None:
        layer = get_channel_layer()
        while True:
            messages = await self.queue.get()
            for group, message in messages:
                try:
                    await layer.group_send(group, message)
                except Exception:
                    logger.warning("live message to %s not published", group, exc_info=True)
            self.queue.task_done()

    def _enqueue(self, messages: list[Message]) -> None:
        try:
            self.queue.put_nowait(messages)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("live publisher behind by %d batches: message dropped (%d so far)", MAX_PENDING,
                           self.dropped)  # fmt: skip

    def hand_over(self, messages: list[Message]) -> None:
        self.loop.call_soon_threadsafe(self._enqueue, messages)

    def flush(self, timeout: float) -> None:
        asyncio.run_coroutine_threadsafe(self.queue.join(), self.loop).result(timeout)


_lock = threading.Lock()
_publisher: _Publisher | None = None
_publisher_pid: int | None = None


def _the_publisher() -> _Publisher:
    global _publisher, _publisher_pid
    with _lock:
        if _publisher is None or _publisher_pid != os.getpid():  # a forked child needs its own thread
            _publisher, _publisher_pid = _Publisher(), os.getpid()
        return _publisher


def publish(messages: list[Message]) -> None:
    """Hand `(group, message)` pairs to the process's publisher, to be sent in order; returns at once."""
    if messages:
        _the_publisher().hand_over(messages)


def flush(timeout: float = 5.0) -> None:
    """Wait until everything handed over so far was sent (tests, benchmarks and a graceful shutdown)."""
    _the_publisher().flush(timeout)
