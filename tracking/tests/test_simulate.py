"""The simulator drives the real stack (web + worker) through the API until orders are delivered."""

import time

import pytest
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken

from delivery.models import Driver
from orders.models import Order
from tracking.management.commands.simulate import Actor, Command, rider_utilisation


@pytest.mark.e2e
def test_simulate_places_orders_and_riders_deliver_them(start_process, monkeypatch):
    # given the running web process and worker
    web = start_process("web", WEB_CONCURRENCY="1")
    start_process("worker", WORKER_CONCURRENCY="2")
    start_process("dispatch")
    start_process("relay")
    # The command is sync and runs its own event loop; pytest-asyncio's auto mode leaves none running here.

    # when the simulator runs briefly with fast riders and many orders
    call_command("simulate", drivers=3, orders_per_minute=40, duration=35, speedup=40, tick=0.5,
                 base_url=f"http://127.0.0.1:{web.port}", seed=7)  # fmt: skip

    # then riders exist and went to work, orders were placed, and some were delivered through the whole flow
    assert Driver.objects.count() == 3
    assert Order.objects.count() >= 5
    assert Order.objects.filter(status="delivered").count() >= 1
    assert not Order.objects.filter(status="cancelled").exclude(cancel_reason="no_driver").exists()


def test_a_simulated_actor_signs_its_first_request_on_a_machine_booted_a_minute_ago(customer, monkeypatch):
    # given a clock that started at boot, 60 s ago (time.monotonic() on Linux)
    monkeypatch.setattr(time, "monotonic", lambda: 60.0)

    # when an actor makes its first request
    headers = Actor(user=customer).headers()

    # then it carries a token the API accepts
    token = headers["Authorization"].removeprefix("Bearer ")
    assert AccessToken(token)["user_id"] == str(customer.pk)


def test_the_demo_keeps_most_riders_free_so_a_new_order_gets_one_at_once():
    # given the simulator's defaults, which `make run` uses
    defaults = {action.dest: action.default for action in Command().create_parser("manage.py", "simulate")._actions}

    # when its load is set against what its riders can deliver
    busy = rider_utilisation(
        drivers=defaults["drivers"], orders_per_minute=defaults["orders_per_minute"], speedup=defaults["speedup"]
    )

    # then most riders are free most of the time (the old demo, 5 riders at 6 orders a minute, was swamped)
    assert busy < 0.3
    assert rider_utilisation(drivers=5, orders_per_minute=6, speedup=1) > 1
