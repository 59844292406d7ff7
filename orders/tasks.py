"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from orders import events, services
from orders.idempotency import idempotency_keys_expire


@shared_task(bind=True, max_retries=None, queue="saga")
def order_saga_task(self, order_id: str):
    retry_in = services.order_saga_advance(order_id=order_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(queue="saga")
def orders_sweep_task():
    """Periodic: publish outbox events the relay missed, re-drive stuck sagas, expire idempotency keys."""
    now = timezone.now()
    events.outbox_publish(older_than=now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS))
    for order_id in services.orders_needing_saga(
        stuck_before=now - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS)
    ):
        order_saga_task.delay(str(order_id))
    idempotency_keys_expire()


def start_saga(payload: dict) -> None:
    """Outbox subscriber: a reserved order starts its saga; a cancelled one settles its payment."""
    if payload.get("status", "reserved") in ("reserved", "cancelled"):
        order_saga_task.delay(payload["order_id"])
