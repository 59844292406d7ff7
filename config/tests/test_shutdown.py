"""Processes stop when told to: deploys and `make run`'s Ctrl-C depend on it."""

import asyncio
import os
import signal
import subprocess
import uuid

import pytest
import websockets

from common.processes import ThrowawayRedis, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def refused_handshakes(port: int) -> list[str]:
    outcomes = []
    for path in [f"/ws/orders/{uuid.uuid4()}/", "/ws/nope/", f"/ws/orders/{uuid.uuid4()}/?token=bad"] * 3:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}{path}", origin="http://evil.example") as socket:
                await socket.recv()
        except Exception as exc:  # noqa: BLE001 - every kind of refusal is what we want here
            outcomes.append(type(exc).__name__)
    return outcomes


def test_web_stops_on_sigterm_after_refused_websocket_handshakes(start_process):
    # Channels' consumers of refused sockets can be left waiting on the channel layer; uvicorn then waited
    # for them forever ("Waiting for background tasks to complete"). The shutdown has a deadline now.
    web = start_process("web", WEB_CONCURRENCY="1", WEB_GRACEFUL_SHUTDOWN_SECONDS="3")
    assert len(asyncio.run(refused_handshakes(web.port))) == 9

    os.killpg(web.popen.pid, signal.SIGTERM)

    try:
        web.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"web ignored SIGTERM:\n{web.log()[-2000:]}")


def test_the_worker_survives_its_broker_restarting(start_process):
    """A Celery worker can exit on a broker restart (kombu restoring unacknowledged messages on a connection
    being torn down: AttributeError 'hostname'); the Procfile's worker line runs it under scripts/respawn.py.
    Each order below is placed after a restart and must still be paid."""
    from orders.models import Order
    from orders.tests.helpers import place_order

    broker = ThrowawayRedis().start()
    recovery = {"SWEEP_INTERVAL_SECONDS": "1", "SAGA_STUCK_AFTER_SECONDS": "1"}  # the sweeper hands over the sagas
    try:
        env = {"REDIS_URL": broker.url, "CELERY_BROKER_URL": broker.url, **recovery}
        worker = start_process("worker", **env)
        start_process("beat", **env)
        for _ in range(3):
            broker.restart()
            order = place_order()
            assert wait_until(lambda o=order: Order.objects.get(pk=o.pk).status == "paid"), worker.log()[-3000:]
            assert worker.popen.poll() is None, worker.log()[-3000:]
    finally:
        broker.stop()
