"""Delivery's own news, for the work it starts: services send, `delivery.tasks` subscribes (DeliveryConfig.ready).

This keeps the services free of task imports (tasks import services, never the reverse). The events are the
fast path only, sent after commit: the durable record is in the database (a waiting `DispatchRequest`, an
available driver), and the dispatch sweep re-drives whatever a lost event or task leaves behind.
"""

from django.db import transaction
from django.dispatch import Signal

# A driver is available with a fresh live position: waiting orders nearby may be dispatched now. (driver_id)
driver_became_candidate = Signal()
# An order needs a dispatch attempt (it went back to dispatch after a decline). (order_id)
dispatch_requested = Signal()


def send_after_commit(signal: Signal, **payload) -> None:
    """Send once the caller's transaction commits (at once in autocommit)."""
    transaction.on_commit(lambda: signal.send(sender=None, **payload))
