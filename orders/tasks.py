"""Thin Celery tasks: they take ids, call a service, and are safe to run twice."""

from datetime import timedelta

import redis
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from orders import events, services
from orders.idempotency import idempotency_keys_expire

# A dependency blip (PostgreSQL restarting, Redis away) retries the step soon instead of leaving the
# order to the stuck-order sweeper a minute later; every step is safe to run again.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)


@shared_task(
    bind=True, max_retries=None, queue="saga",
    autoretry_for=TRANSIENT_ERRORS, retry_backoff=1, retry_backoff_max=30, retry_jitter=True,
)  # fmt: skip
def order_saga_task(self, order_id: str):
    retry_in = services.order_saga_advance(order_id=order_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(queue="saga")
def orders_sweep_task():
    """Periodic: publish outbox events the relay missed, re-drive stuck sagas, expire idempotency keys."""
    now = timezone.now()
    events.outbox_publish(older_than=now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS))
    for order_id in services.orders_claim_stuck(
        stuck_before=now - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS)
    ):
        order_saga_task.delay(str(order_id))
    idempotency_keys_expire()


def start_saga(payload: dict) -> None:
    """Outbox subscriber: a reserved order starts its saga; a cancelled one settles its payment."""
    if payload.get("status", "reserved") in ("reserved", "cancelled"):
        order_saga_task.delay(payload["order_id"])
