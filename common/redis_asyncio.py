"""An asyncio Redis connection whose commands can always be cancelled (the channel layer's connections).

redis-py bounds a command's write with `asyncio.wait_for(..., socket_timeout)`. On Python 3.11, `wait_for`
swallows a cancellation that arrives while the wrapped write is finishing (CPython gh-86296, fixed in 3.12 by
reimplementing `wait_for` on `asyncio.timeout`): the write usually finishes at once, so a cancel during it is lost
often. The channel layer cancels a socket's pending `receive()` whenever the socket closes; with the cancel lost,
that receive went on popping forever, the consumer never ended (a leaked task per closed socket), and uvicorn's
shutdown and the tests' event-loop teardown waited for it without end. Reproduce: start `layer.receive(channel)`,
cancel it 0-4 ms later, and it fails to finish within a few tries (`common/tests/test_redis_asyncio.py`).

This connection bounds the write with `asyncio.timeout`, which counts cancellations and never swallows one.
Everything else is redis-py's. Drop it once Python 3.11 is no longer supported.
"""

import asyncio
from urllib.parse import urlsplit

from redis.asyncio.connection import Connection
from redis.exceptions import TimeoutError as RedisTimeoutError


class CancellableConnection(Connection):
    async def send_packed_command(self, command, check_health: bool = True) -> None:
        timeout, self.socket_timeout = self.socket_timeout, None  # redis-py then writes without wait_for
        try:
            async with asyncio.timeout(timeout or None):
                await super().send_packed_command(command, check_health=check_health)
        except TimeoutError:  # only the write's own deadline: a cancellation stays a CancelledError
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout


def channel_layer_prefix(redis_url: str) -> str:
    """The channel layer's key and channel prefix for a Redis URL: one per database number. Redis's pub/sub is
    server-wide, not per database, so two deployments on one server (staging on /1, production on /0; two test
    runs) would otherwise get each other's live messages, the shared `fleet` group on every staff map."""
    database = urlsplit(redis_url).path.strip("/") or "0"
    return f"courier.{database}"
