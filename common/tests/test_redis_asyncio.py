"""A closing socket's channel-layer receive ends when cancelled, against the real Redis (common/redis_asyncio.py)."""

import asyncio
import random

from channels.layers import channel_layers

TRIES = 200


async def test_a_cancelled_receive_always_ends():
    # The platform's own layer configuration. With redis-py's plain Connection one in a few of these cancels was
    # lost on Python 3.11 and the receive went on forever.
    layer = channel_layers.make_backend("default")
    try:
        for attempt in range(TRIES):
            receive = asyncio.ensure_future(layer.receive(await layer.new_channel()))
            await asyncio.sleep(random.random() * 0.004)  # the cancel lands anywhere in connect, write or read
            receive.cancel()
            done, _ = await asyncio.wait([receive], timeout=3)
            assert done, f"attempt {attempt}: the cancelled receive() is still running"
    finally:
        await layer.close_pools()
