"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from delivery.services import assignments, dispatch, retention


@shared_task(bind=True, max_retries=None, queue="dispatch")
def order_dispatch_task(self, order_id: str):
    retry_in = dispatch.order_dispatch(order_id=order_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(queue="dispatch")
def dispatch_waiting_near_task(driver_id: int):
    dispatch.dispatch_waiting_near(driver_id=driver_id)


@shared_task(queue="dispatch")
def order_release_driver_task(order_id: str):
    assignments.order_release_driver(order_id=order_id)


# A queue of its own on the dispatch worker (which takes from its queues in turn): behind a backlog of dispatch
# attempts, the sweep that gives up on overdue orders would otherwise wait in that very backlog; on the saga
# worker it would delay payments.
@shared_task(queue="dispatch_sweep")
def dispatch_sweep_task():
    """Periodic: give up on orders waiting past the timeout, re-drive dispatches nobody is driving (a lost task,
    a dead worker)."""
    dispatch.dispatches_give_up_overdue()
    stale = timezone.now() - timedelta(seconds=settings.DISPATCH_RETRY_MAX_SECONDS * 3)
    for order_id in dispatch.dispatches_claim_forgotten(stale_before=stale):
        order_dispatch_task.delay(str(order_id))


@shared_task(queue="ingest")
def positions_prune_task():
    older_than = timezone.now() - timedelta(days=settings.POSITION_HISTORY_RETENTION_DAYS)
    retention.positions_prune(older_than=older_than)


# --- Subscribers (registered in DeliveryConfig.ready): fast, idempotent, they only enqueue ----------------
# Order events come through the orders outbox; delivery's own through `delivery.events` signals.


def dispatch_on_paid(payload: dict) -> None:
    order_dispatch_task.delay(payload["order_id"])


def release_on_cancel(payload: dict) -> None:
    if payload.get("status") == "cancelled":
        order_release_driver_task.delay(payload["order_id"])


def dispatch_on_request(sender, order_id: str, **kwargs) -> None:
    order_dispatch_task.delay(order_id)


def dispatch_near_on_candidate(sender, driver_id: int, **kwargs) -> None:
    dispatch_waiting_near_task.delay(driver_id)
