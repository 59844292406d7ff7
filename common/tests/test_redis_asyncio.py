"""The channel layers' Redis set-up (common/redis_asyncio.py), against the real Redis: a closing socket's receive
ends when cancelled; deployments on other database numbers never get each other's messages."""

import asyncio
import random

import pytest
from channels.layers import channel_layers
from django.conf import settings

from common.redis_asyncio import channel_layer_prefix

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


async def test_a_deployment_on_another_redis_database_never_gets_this_ones_live_messages():
    # Redis pub/sub ignores the database number: without a prefix of its own, a staging deployment on /1 would
    # push its riders onto production's staff map (the shared `fleet` group).
    config = settings.CHANNEL_LAYERS["pubsub"]["CONFIG"]
    assert config["prefix"] == channel_layer_prefix(settings.REDIS_URL) != channel_layer_prefix("redis://h:6379/9")
    other_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/9"
    ours = channel_layers.make_backend("pubsub")
    theirs = type(ours)(**{**config, "prefix": channel_layer_prefix(other_url)})
    try:
        watcher = await ours.new_channel()
        await ours.group_add("fleet", watcher)
        await theirs.group_send("fleet", {"type": "position", "from": "theirs"})
        await ours.group_send("fleet", {"type": "position", "from": "ours"})

        assert (await asyncio.wait_for(ours.receive(watcher), timeout=3))["from"] == "ours"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ours.receive(watcher), timeout=0.5)
    finally:
        await ours.flush()
        await theirs.flush()
