"""GPS ingest: a validated batch of one driver's points into history, hot state and the live channel."""

from django.conf import settings
from django.db import connection
from django.utils import timezone

from delivery import broadcast, events, hot, live
from delivery.models import Driver, DriverPosition
from delivery.selectors import DRIVER_ROW_FIELDS, DRIVER_ROW_SQL
from delivery.services.drivers import NotADriver

# A point's columns in history with the PostgreSQL type of each, from the model (the batch travels as one array
# per column): every field of DriverPosition but its key, its driver and when the server received it.
_POINT_COLUMNS = {
    field.column: field.db_type(connection)
    for field in DriverPosition._meta.concrete_fields
    if field.name not in ("id", "driver", "received_at")
}
# One array per column, not a VALUES row per point: the text is the same for every batch, so psycopg parses it
# once instead of one placeholder per point per request. Parameters: driver, user, received_at, the columns.
_HISTORY_WRITE_SQL = f"""
    WITH driver AS ({DRIVER_ROW_SQL} WHERE d.id = %s AND d.user_id = %s),
    stored AS (
        INSERT INTO {DriverPosition._meta.db_table} (driver_id, received_at, {", ".join(_POINT_COLUMNS)})
        SELECT driver.id, %s, points.*
          FROM driver
         CROSS JOIN unnest({", ".join(f"%s::{kind}[]" for kind in _POINT_COLUMNS.values())}) AS points
         CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
    )
    SELECT {", ".join(DRIVER_ROW_FIELDS)} FROM driver
"""


def driver_locations_ingest(*, user_id, driver_id, points: list[dict]) -> int:
    """Store a validated batch of the driver `driver_id` (as the caller's token names it): one statement
    (the driver checked and read, and the history written), one Redis pipeline (stream + live position + GEO),
    one hand-over of the live position to the publisher. NotADriver when `driver_id` is no longer the active
    user `user_id`'s driver profile; nothing is stored then.

    The live position only moves forward in time; a point already older than the TTL never becomes live."""
    received_at = timezone.now()
    driver = _history_write(user_id=user_id, driver_id=driver_id, points=points, received_at=received_at)
    if driver is None:
        raise NotADriver()
    newest = max(points, key=lambda p: p["recorded_at"])
    if newest["recorded_at"].timestamp() + settings.POSITION_TTL_SECONDS <= received_at.timestamp():
        newest = None
    available = driver["status"] == Driver.Status.AVAILABLE
    moved = hot.positions_write(driver_id=driver["id"], available=available, points=points, newest=newest)
    if moved:
        position = {**newest, "recorded_at": hot.rfc3339(newest["recorded_at"])}
        broadcast.publish(
            live.position_messages(
                driver_id=driver["id"],
                name=driver["name"],
                status=driver["status"],
                order_id=driver["order_id"],
                position=position,
            )
        )
    if moved == 2:  # just became a candidate (first fresh point while available)
        events.driver_became_candidate.send(sender=None, driver_id=driver["id"])
    return len(points)


def _history_write(*, user_id, driver_id, points: list[dict], received_at) -> dict | None:
    """One statement, one round trip: the driver's row (None: not this user's driver, nothing written) and,
    when it is, every point appended to history, committed asynchronously.

    `synchronous_commit = off` for this statement's own transaction only (set_config(..., true) in the same
    statement, so there is no BEGIN/SET/COMMIT round trip): the commit does not wait for the WAL flush, which
    on this machine is ~1.5 ms and serialises every writer. The trade-off, deliberate for telemetry and never
    for money: should PostgreSQL itself crash, the last moments of acknowledged points may be lost from history
    (never corrupted; the `location_events` stream still holds them: README, "GPS ingest: what a 202 means").
    Orders and assignments keep synchronous commits. Call it in autocommit (as the view does), never inside a
    larger transaction."""
    columns = [[point.get(name) for point in points] for name in _POINT_COLUMNS]
    params = [driver_id, user_id, received_at, *columns]
    with connection.cursor() as cursor:
        cursor.execute(_HISTORY_WRITE_SQL, params)
        found = cursor.fetchone()
    return dict(zip(DRIVER_ROW_FIELDS, found, strict=True)) if found else None
