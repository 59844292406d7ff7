import random
import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from delivery.models import Assignment, DispatchRequest, Driver
from delivery.services import dispatch
from delivery.tests.helpers import make_driver, offset, paid_order
from inventory.tests.factories import StoreFactory
from orders.models import Order
from orders.tests.helpers import assert_invariants


def run_in_threads(count: int, work) -> list[BaseException]:
    errors, barrier = [], threading.Barrier(count)

    def run(index):
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_many_orders_few_drivers_from_many_workers_never_double_book():
    store = StoreFactory()
    drivers = [make_driver(at=offset(0.2 * i)) for i in range(4)]
    orders = [paid_order(store=store) for _ in range(24)]
    ids = [order.pk for order in orders]

    def dispatch_all(index):
        mine = ids[:]
        random.Random(index).shuffle(mine)
        for order_id in mine:
            dispatch.order_dispatch(order_id=order_id)

    errors = run_in_threads(8, dispatch_all)

    assert errors == []
    active = Assignment.objects.filter(status__in=Assignment.ACTIVE)
    assert active.count() == 4
    assert sorted(active.values_list("driver_id", flat=True)) == sorted(d.pk for d in drivers)
    assert Driver.objects.filter(status="busy").count() == 4
    assert Order.objects.filter(status="assigned").count() == 4
    assert DispatchRequest.objects.filter(status="waiting").count() == 20
    assert_invariants()

    # Past the timeout every waiting order gives up, again from many workers at once.
    DispatchRequest.objects.update(waiting_since=timezone.now() - timedelta(hours=1))
    assert run_in_threads(8, dispatch_all) == []

    statuses = sorted(Order.objects.values_list("status", "cancel_reason"))
    assert statuses == [("assigned", None)] * 4 + [("cancelled", "no_driver")] * 20
    assert_invariants()


@pytest.mark.django_db(transaction=True)
def test_two_orders_racing_for_one_driver_only_one_wins():
    store = StoreFactory()
    for _ in range(5):
        driver = make_driver()
        first, second = paid_order(store=store), paid_order(store=store)

        pair = (first.pk, second.pk)
        errors = run_in_threads(2, lambda i, pair=pair: dispatch.order_dispatch(order_id=pair[i]))

        assert errors == []
        assert Assignment.objects.filter(driver=driver, status__in=Assignment.ACTIVE).count() == 1
        assert Order.objects.filter(pk__in=[first.pk, second.pk], status="assigned", awaiting_driver=False).count() == 1
        # This round's driver is busy from now on, so the next round races for its new driver only.
