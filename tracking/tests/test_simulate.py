"""The simulator drives the real stack (web + worker) through the API until orders are delivered."""

import pytest
from django.core.management import call_command

from delivery.models import Driver
from orders.models import Order


@pytest.mark.e2e
def test_simulate_places_orders_and_riders_deliver_them(start_process, monkeypatch):
    # given the running web process and worker
    web = start_process("web", WEB_CONCURRENCY="1")
    start_process("worker", WORKER_CONCURRENCY="2")
    # The command is sync and runs its own event loop; pytest-asyncio's auto mode leaves none running here.

    # when the simulator runs briefly with fast riders and many orders
    call_command("simulate", drivers=3, orders_per_minute=40, duration=35, speedup=40, tick=0.5,
                 base_url=f"http://127.0.0.1:{web.port}", seed=7)  # fmt: skip

    # then riders exist and went to work, orders were placed, and some were delivered through the whole flow
    assert Driver.objects.count() == 3
    assert Order.objects.count() >= 5
    assert Order.objects.filter(status="delivered").count() >= 1
    assert not Order.objects.filter(status="cancelled").exclude(cancel_reason="no_driver").exists()
