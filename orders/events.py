"""The transactional outbox and its relay.

`outbox_record` writes the event in the caller's transaction, nothing more: no broker call and no second
UPDATE on the request's path. The relay (`manage.py outbox_relay`, the Procfile's `relay` line) polls the
unpublished rows every OUTBOX_RELAY_POLL_SECONDS, hands each to the subscribers that apps registered with
`subscribe` (upper apps do so in `AppConfig.ready()`) and marks the batch published. Several relays may run:
each takes its batch with `FOR UPDATE SKIP LOCKED`. A relay that dies mid-batch leaves its rows unpublished
(the lock goes with its connection), so the next relay - or the sweeper's `outbox_publish` - delivers them again.
Delivery is at least once: subscribers must be idempotent and fast (they enqueue work, they don't do it).

Why a poll and not LISTEN/NOTIFY: PostgreSQL serialises the commits of every transaction that sends NOTIFY
on one lock (the notification queue), which would cap order placing near one commit per WAL flush.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from django.db import close_old_connections, transaction
from django.utils import timezone

from orders.models import OutboxEvent

logger = logging.getLogger(__name__)

ORDER_RESERVED = "order.reserved"
ORDER_PAID = "order.paid"
ORDER_STATUS_CHANGED = "order.status_changed"
# Events of one batch handed to their subscribers at once (see _delivery_pool).
DELIVERY_THREADS = 4

_subscribers: dict[str, list[Callable[[dict], None]]] = defaultdict(list)


def subscribe(topic: str, handler: Callable[[dict], None]) -> None:
    if handler not in _subscribers[topic]:
        _subscribers[topic].append(handler)


def outbox_record(*, topic: str, payload: dict) -> OutboxEvent:
    return OutboxEvent.objects.create(topic=topic, payload=payload)


def outbox_publish(*, event_ids: list[int] | None = None, older_than=None, batch: int = 500) -> int:
    """Publish one batch of unpublished events (the given ones, or those older than `older_than`, or any);
    returns how many were delivered. Rows are locked while their events are handed over, so two relays
    never publish the same event at once; a subscriber that fails leaves its event for the next pass."""
    return _publish(event_ids=event_ids, older_than=older_than, batch=batch)[0]


def _publish(*, event_ids, older_than, batch: int) -> tuple[int, int]:
    with transaction.atomic():
        events = OutboxEvent.objects.select_for_update(skip_locked=True).filter(published_at__isnull=True)
        if event_ids is not None:
            events = events.filter(pk__in=event_ids)
        if older_than is not None:
            events = events.filter(created_at__lt=older_than)
        taken = list(events.order_by("pk")[:batch])
        published = [pk for delivered in _delivery_pool().map(_deliver_in_order, _by_order(taken)) for pk in delivered]
        if published:
            OutboxEvent.objects.filter(pk__in=published).update(published_at=timezone.now())
    return len(published), len(taken) - len(published)


def outbox_relay(*, poll_seconds: float, batch: int, stop: Callable[[], bool]) -> None:
    """The relay process's loop: publish while there is a backlog, otherwise wait `poll_seconds`."""
    while not stop():
        try:
            published, failed = _publish(event_ids=None, older_than=None, batch=batch)
        except Exception:  # the database went away: keep the process, try again after a pause
            logger.exception("outbox relay pass failed; retrying")
            close_old_connections()
            published, failed = 0, 1
        if failed:  # the broker or the database is down: don't spin on it
            time.sleep(max(poll_seconds, 1.0))
        elif published < batch:
            time.sleep(poll_seconds)


@cache
def _delivery_pool() -> ThreadPoolExecutor:
    """Subscribers only enqueue, a broker round trip each: several orders' events at a time, so the round trips
    overlap instead of queueing behind each other (the relay lagged seconds behind 150 orders/s delivering one by
    one). They never touch the database, whose transaction and row locks stay with the relay's own thread."""
    return ThreadPoolExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="outbox-delivery")


def _by_order(events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
    """The batch split per order, each order's events oldest first: one order's news stays in order."""
    groups: dict[str, list[OutboxEvent]] = defaultdict(list)
    for event in events:
        groups[str(event.payload.get("order_id", event.pk))].append(event)
    return list(groups.values())


def _deliver_in_order(events: list[OutboxEvent]) -> list[int]:
    """Deliver one order's events in turn; after a failure the rest wait for the next pass, still in order."""
    delivered = []
    for event in events:
        if not _deliver(event):
            break
        delivered.append(event.pk)
    return delivered


def _deliver(event: OutboxEvent) -> bool:
    try:
        for handler in _subscribers[event.topic]:
            handler(event.payload)
    except Exception:
        logger.exception("outbox event %s (%s) not delivered; the sweeper will retry", event.pk, event.topic)
        return False
    return True
