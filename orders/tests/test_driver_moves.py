"""Orders own the order's state in delivery's moves: who awaits a driver, assigning one, giving up. Who drives is
delivery's record (delivery/tests/test_dispatch.py); orders tells which driver moved the order in its events."""

import pytest
from django.db import IntegrityError, transaction

from orders import selectors, services
from orders.models import Order, OutboxEvent
from orders.tests.helpers import assert_invariants, place_order, run_saga

pytestmark = pytest.mark.django_db


def paid_order() -> Order:
    order = place_order()
    run_saga(order)
    order.refresh_from_db()
    return order


def last_status_event(order: Order) -> dict:
    events = OutboxEvent.objects.filter(topic="order.status_changed", payload__order_id=str(order.pk))
    return events.latest("pk").payload


def test_a_paid_order_awaits_a_driver_and_stops_once_one_holds_it():
    order = paid_order()
    assert order.awaiting_driver and list(selectors.orders_awaiting_driver()) == [order]

    services.order_assign_driver(order_id=order.pk, driver_id=3)

    order.refresh_from_db()
    assert (order.status, order.awaiting_driver, last_status_event(order)["driver_id"]) == ("assigned", False, 3)
    assert order.timeline.latest("pk").detail == "driver 3"
    assert not selectors.orders_awaiting_driver().exists()


def test_a_driver_giving_the_order_back_keeps_the_public_status_and_awaits_the_next():
    order = paid_order()
    services.order_assign_driver(order_id=order.pk, driver_id=3)

    services.order_unassign_driver(order_id=order.pk, driver_id=3, detail="declined")

    order.refresh_from_db()
    assert (order.status, order.awaiting_driver, last_status_event(order)["driver_id"]) == ("assigned", True, None)
    services.order_assign_driver(order_id=order.pk, driver_id=4)
    order.refresh_from_db()
    assert (order.status, order.awaiting_driver, last_status_event(order)["driver_id"]) == ("assigned", False, 4)
    steps = [(e.step, e.detail) for e in order.timeline.all()][-3:]
    assert steps == [("assign_driver", "driver 3"), ("unassign_driver", "driver 3: declined"),
                     ("assign_driver", "driver 4")]  # fmt: skip


def test_assigning_a_driver_to_an_order_another_driver_holds_is_refused():
    order = paid_order()
    services.order_assign_driver(order_id=order.pk, driver_id=3)

    with pytest.raises(services.InvalidTransition):
        services.order_assign_driver(order_id=order.pk, driver_id=4)

    order.refresh_from_db()
    assert (order.awaiting_driver, last_status_event(order)["driver_id"]) == (False, 3)


def test_the_database_keeps_awaiting_driver_true_to_the_status():
    order = place_order()  # reserved: nobody dispatches it yet

    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(awaiting_driver=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=paid_order().pk).update(awaiting_driver=False)


def test_giving_up_on_a_driver_cancels_restocks_and_refunds_through_cancel_and_settle():
    order = paid_order()

    cancelled = services.order_cancel_and_settle(order_id=order.pk, reason="no_driver", detail="no driver in 600 s")

    order.refresh_from_db()
    assert (cancelled.status, order.cancel_reason, order.awaiting_driver) == ("cancelled", "no_driver", False)
    assert order.payment.status == "refunded"
    failed = order.timeline.filter(step="assign_driver", status="failed").get()
    assert failed.detail == "no driver in 600 s"
    assert_invariants()


def test_giving_up_never_cancels_an_order_a_driver_holds_nor_refunds_it():
    order = paid_order()
    services.order_assign_driver(order_id=order.pk, driver_id=3)

    kept = services.order_cancel_and_settle(order_id=order.pk, reason="no_driver", detail="too late")

    order.refresh_from_db()
    assert kept.status == order.status == "assigned"
    assert order.payment.status == "succeeded" and order.payment.refunded_amount == 0
    assert not order.timeline.filter(status="failed").exists()
