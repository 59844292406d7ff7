"""The transactional outbox and its relay.

`outbox_record` writes the event in the caller's transaction; right after commit the relay hands it to
the subscribers that apps registered with `subscribe` (upper apps do so in `AppConfig.ready()`), then
marks it published. Whatever the relay misses (a crash, a broker outage) the sweeper publishes later.
Delivery is at least once: subscribers must be idempotent and fast (they enqueue work, they don't do it).
"""

import logging
from collections import defaultdict
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from orders.models import OutboxEvent

logger = logging.getLogger(__name__)

ORDER_RESERVED = "order.reserved"
ORDER_PAID = "order.paid"
ORDER_STATUS_CHANGED = "order.status_changed"

_subscribers: dict[str, list[Callable[[dict], None]]] = defaultdict(list)


def subscribe(topic: str, handler: Callable[[dict], None]) -> None:
    if handler not in _subscribers[topic]:
        _subscribers[topic].append(handler)


def outbox_record(*, topic: str, payload: dict) -> OutboxEvent:
    event = OutboxEvent.objects.create(topic=topic, payload=payload)
    transaction.on_commit(lambda: _relay(event))
    return event


def _relay(event: OutboxEvent) -> None:
    """The fast path, right after commit: deliver the event in hand and mark it, two round trips.

    No row lock is needed: the sweeper only takes events older than OUTBOX_STALE_AFTER_SECONDS, and
    should both ever deliver one, subscribers are idempotent."""
    if _deliver(event):
        OutboxEvent.objects.filter(pk=event.pk).update(published_at=timezone.now())


def outbox_publish(*, event_ids: list[int] | None = None, older_than=None, batch: int = 500) -> int:
    """Publish unpublished events (the given ones, or those older than `older_than`); returns how many."""
    with transaction.atomic():
        events = OutboxEvent.objects.select_for_update(skip_locked=True).filter(published_at__isnull=True)
        if event_ids is not None:
            events = events.filter(pk__in=event_ids)
        if older_than is not None:
            events = events.filter(created_at__lt=older_than)
        published = [event.pk for event in events.order_by("pk")[:batch] if _deliver(event)]
        OutboxEvent.objects.filter(pk__in=published).update(published_at=timezone.now())
    return len(published)


def _deliver(event: OutboxEvent) -> bool:
    try:
        for handler in _subscribers[event.topic]:
            handler(event.payload)
    except Exception:
        logger.exception("outbox event %s (%s) not delivered; the sweeper will retry", event.pk, event.topic)
        return False
    return True
