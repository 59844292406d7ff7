"""Over real sockets against the running `web` process (the Procfile line): a driver's POSTed point and
status changes reach every subscribed client."""

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
import websockets
from django.conf import settings
from rest_framework_simplejwt.tokens import RefreshToken

from orders.models import OutboxEvent
from orders.tests.test_crash import wait_until
from tracking.tests.conftest import active_assignment, assign, make_driver, place_order

CLIENTS = 50


def token_for(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


async def watch(url: str, token: str, ready: asyncio.Event, opened: list, stop_after: int) -> list[dict]:
    """One client: connect with the bearer subprotocol, then collect messages until `stop_after` arrived."""
    messages = []
    async with websockets.connect(url, subprotocols=["bearer", token], open_timeout=20) as ws:
        assert ws.subprotocol == "bearer"
        messages.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
        opened.append(1)
        if len(opened) == CLIENTS:
            ready.set()
        while len(messages) < stop_after:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as closed:
            messages.append({"closed": closed.rcvd.code if closed.rcvd else None})
    return messages


@pytest.mark.e2e
def test_a_posted_point_and_status_changes_reach_50_clients(start_process, customer, product):
    # given a running web process, an assigned order and 50 subscribed clients
    web = start_process("web", WEB_CONCURRENCY="1")
    base = f"http://127.0.0.1:{web.port}"
    url = f"ws://127.0.0.1:{web.port}/ws/orders/"
    driver = make_driver()
    order = assign(place_order(customer, product))
    assignment = active_assignment(order)
    # Status changes reach the sockets through the outbox relay; the setup's own events are out before anyone watches.
    start_process("relay")
    assert wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists())
    customer_token, driver_token = token_for(customer), token_for(driver.user)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {driver_token}"}, timeout=20)

    async def scenario():
        ready, opened = asyncio.Event(), []
        # snapshot, position, status picked_up, status delivered, then the close
        clients = [
            asyncio.create_task(watch(f"{url}{order.pk}/", customer_token, ready, opened, stop_after=4))
            for _ in range(CLIENTS)
        ]
        await asyncio.wait_for(ready.wait(), 60)
        # when the driver posts a point, accepts, picks up and delivers through the real API
        point = {"lat": 52.5260, "lng": 13.4100, "recorded_at": datetime.now(UTC).isoformat(), "speed": 5.5}
        posted = await asyncio.to_thread(api.post, "/api/v1/drivers/me/locations", json={"points": [point]})
        assert posted.status_code == 202, posted.text
        for move in ("accept", "pickup", "deliver"):
            answer = await asyncio.to_thread(api.post, f"/api/v1/assignments/{assignment.pk}/{move}")
            assert answer.status_code == 200, answer.text
        return await asyncio.gather(*clients)

    results = asyncio.run(scenario())

    # then every client got the snapshot, the point, both status changes, and a clean close
    assert len(results) == CLIENTS
    for messages in results:
        assert messages[0]["type"] == "snapshot" and messages[0]["order"]["status"] == "assigned"
        assert messages[1] == {
            "type": "position", "order_id": str(order.pk), "driver_id": str(driver.pk), "lat": 52.526, "lng": 13.41,
            "recorded_at": messages[1]["recorded_at"], "heading": None, "speed": 5.5,
        }  # fmt: skip
        assert [m["status"] for m in messages[2:4]] == ["picked_up", "delivered"]
        assert messages[4] == {"closed": 1000}


@pytest.mark.e2e
def test_a_watcher_keeps_getting_the_riders_points_across_a_redis_restart(start_process, customer, product):
    # The channel layer's subscriptions live in the web process; after Redis comes back they are made again,
    # so an open socket goes on receiving without reconnecting (points sent meanwhile answer 503 and are resent).
    from common.processes import ThrowawayRedis

    redis_server = ThrowawayRedis().start()
    try:
        web = start_process("web", WEB_CONCURRENCY="1", REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)
        driver = make_driver()
        order = assign(place_order(customer, product))
        api = httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=20,
                           headers={"Authorization": f"Bearer {token_for(driver.user)}"})  # fmt: skip

        def post(lat: float) -> int:
            point = {"lat": lat, "lng": 13.41, "recorded_at": datetime.now(UTC).isoformat()}
            return api.post("/api/v1/drivers/me/locations", json={"points": [point]}).status_code

        async def scenario():
            url = f"ws://127.0.0.1:{web.port}/ws/orders/{order.pk}/"
            async with websockets.connect(url, subprotocols=["bearer", token_for(customer)], open_timeout=20) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "snapshot"
                assert await asyncio.to_thread(post, 52.5261) == 202
                before = json.loads(await asyncio.wait_for(ws.recv(), 20))

                await asyncio.to_thread(redis_server.restart)
                # The web process finds Redis again by itself: points answer 503 until it has, and one sent
                # while the subscriptions are being made again may not reach this socket; the next ones do.
                for attempt in range(60):
                    if await asyncio.to_thread(post, 52.5262 + attempt / 1e5) == 202:
                        try:
                            return before, json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        except TimeoutError:
                            pass
                    await asyncio.sleep(0.2)
                return before, None

        before, after = asyncio.run(scenario())
    finally:
        redis_server.stop()

    assert (before["type"], before["lat"]) == ("position", 52.5261)
    assert after is not None, "no point reached the open socket after Redis came back"
    assert after["type"] == "position" and after["lat"] > 52.5261


async def order_socket(web, token: str, order):
    """A socket watching `order` on `web`: (socket, None) once its snapshot came, (None, close code) when refused.

    An order's socket, not the fleet's: the fleet group gets every process's news, and unread news would stop the
    client from reading, and so from noticing its server die."""
    ws = await websockets.connect(f"ws://127.0.0.1:{web.port}/ws/orders/{order.pk}/", subprotocols=["bearer", token],
                                  open_timeout=20)  # fmt: skip
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), 20))
    except websockets.ConnectionClosed as closed:
        return None, closed.rcvd.code if closed.rcvd else None
    assert first["type"] == "snapshot", first
    return ws, None


LEASE = 2.0


@pytest.mark.e2e
def test_a_killed_web_processs_sockets_stop_counting_within_its_lease(start_process, customer, product):
    # given two web processes sharing Redis, a cap of 2 sockets, a 2 s lease, and a customer's order
    limits = {"WEBSOCKET_MAX_SOCKETS_PER_USER": "2", "WEBSOCKET_PROCESS_LEASE_SECONDS": str(LEASE)}
    doomed = start_process("web", WEB_CONCURRENCY="1", **limits)
    survivor = start_process("web", WEB_CONCURRENCY="1", **limits)
    order, token = place_order(customer, product), token_for(customer)

    async def scenario():
        held = [(await order_socket(doomed, token, order))[0] for _ in range(2)]
        assert None not in held
        # the first process renews its lease: past a lease its two sockets still fill the cap for the other
        await asyncio.sleep(LEASE + 0.5)
        assert await order_socket(survivor, token, order) == (None, 4429)

        # when the first process is SIGKILLed, giving nothing back
        await asyncio.to_thread(doomed.kill)
        killed = time.monotonic()
        while True:
            first, code = await order_socket(survivor, token, order)
            if first is not None or time.monotonic() - killed > LEASE + 3:
                break
            assert code == 4429
            await asyncio.sleep(0.2)
        healed_after = time.monotonic() - killed
        second, _ = await order_socket(survivor, token, order)
        third = await order_socket(survivor, token, order)
        for ws in [*held, first, second]:
            if ws is not None:
                await ws.close()
        return first, second, third, healed_after

    first, second, third, healed_after = asyncio.run(scenario())

    # then within the lease (and a retry's margin) the user may hold the cap's sockets again, and no more
    assert first is not None, "the killed process's sockets still count after its lease"
    assert healed_after < LEASE + 1.5
    assert second is not None
    assert third == (None, 4429)


@pytest.mark.e2e
def test_the_web_process_closes_a_socket_1009_on_a_frame_over_the_limit(start_process, customer, product):
    # given the web process as the Procfile starts it (--ws-max-size), and a socket watching an order
    web = start_process("web", WEB_CONCURRENCY="1")
    order, limit = place_order(customer, product), settings.WEBSOCKET_MAX_MESSAGE_BYTES

    async def scenario():
        ws, _ = await order_socket(web, token_for(customer), order)
        # when a frame of exactly the limit, not JSON, is sent, then a ping, then a frame one byte over the limit
        await ws.send("x" * limit)
        at_limit = json.loads(await asyncio.wait_for(ws.recv(), 20))
        await ws.send(json.dumps({"type": "ping"}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), 20))
        await ws.send("x" * (limit + 1))
        try:
            over = await asyncio.wait_for(ws.recv(), 20)
        except websockets.ConnectionClosed as closed:
            over = closed.rcvd.code if closed.rcvd else None
        return at_limit, pong, over

    at_limit, pong, over = asyncio.run(scenario())

    # then the first is answered bad_message and the socket stays open; the second is closed by the server, 1009
    assert at_limit == {"type": "error", "code": "bad_message"}
    assert pong == {"type": "pong"}
    assert over == 1009
