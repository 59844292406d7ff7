"""A closing socket's channel-layer receive ends when cancelled, against the real Redis (common/redis_asyncio.py)."""

import asyncio
import random

import pytest
from channels.layers import channel_layers
from django.conf import settings

TRIES = 200


@pytest.mark.parametrize("name", sorted(settings.CHANNEL_LAYER_CHOICES))
async def test_a_cancelled_receive_always_ends(name):
    # Each layer the platform may run on, as configured. With redis-py's plain Connection one in a few of these
    # cancels was lost on Python 3.11 by the default ("redis") layer and its receive went on forever.
    layer = channel_layers.make_backend(name)
    try:
        for attempt in range(TRIES):
            receive = asyncio.ensure_future(layer.receive(await layer.new_channel()))
            await asyncio.sleep(random.random() * 0.004)  # the cancel lands anywhere in connect, write or read
            receive.cancel()
            done, _ = await asyncio.wait([receive], timeout=3)
            assert done, f"attempt {attempt}: the cancelled receive() is still running"
    finally:  # each layer's way of closing its connections
        await (layer.close_pools() if hasattr(layer, "close_pools") else layer.flush())
