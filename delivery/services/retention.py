"""Retention: position history older than the retention period goes, in short batches."""

from datetime import datetime

from delivery.models import DriverPosition

# Positions deleted per statement: small enough to keep each transaction short.
PRUNE_BATCH_SIZE = 5000


def positions_prune(*, older_than: datetime, batch_size: int = PRUNE_BATCH_SIZE, max_batches: int = 1000) -> int:
    """Delete history recorded before `older_than`, one short statement per batch (no long lock, no bloat burst)."""
    deleted = 0
    for _ in range(max_batches):
        ids = list(DriverPosition.objects.filter(recorded_at__lt=older_than).values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        deleted += DriverPosition.objects.filter(pk__in=ids)._raw_delete(DriverPosition.objects.db)
    return deleted
