"""GPS ingest: a validated batch of one driver's points into history, hot state and the live channel."""

from django.conf import settings
from django.db import connection
from django.utils import timezone

from delivery import broadcast, events, hot, live
from delivery.models import Driver, DriverPosition

_POSITION_COLUMNS = {
    "driver_id": "bigint", "lat": "float8", "lng": "float8", "recorded_at": "timestamptz", "heading": "float8",
    "speed": "float8", "accuracy": "float8", "received_at": "timestamptz",
}  # fmt: skip


def driver_locations_ingest(*, driver: dict, points: list[dict]) -> int:
    """Store a validated batch: one bulk insert (history), one Redis pipeline (stream + live position + GEO),
    one publish of the live position. `driver` is `selectors.driver_for_user`'s row (id, name, status, order_id).

    The live position only moves forward in time; a point already older than the TTL never becomes live."""
    received_at = timezone.now()
    _positions_insert(driver_id=driver["id"], points=points, received_at=received_at)
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


def _positions_insert(*, driver_id: int, points: list[dict], received_at) -> None:
    """One multi-row INSERT, one round trip, committed asynchronously.

    `synchronous_commit = off` for this statement's own transaction only (set_config(..., true) in the same
    statement, so there is no BEGIN/SET/COMMIT round trip): the commit does not wait for the WAL flush, which
    on this machine is ~1.5 ms and serialises every writer. The trade-off, deliberate for telemetry and never
    for money: should PostgreSQL itself crash, the last ~0.6 s of acknowledged points may be lost (never
    corrupted; the `location_events` stream still holds them). Orders and assignments keep synchronous commits.
    Call it in autocommit (as the view does), never inside a larger transaction."""
    row = "(" + ", ".join(f"%s::{kind}" for kind in _POSITION_COLUMNS.values()) + ")"
    params = []
    for p in points:
        params += [driver_id, p["lat"], p["lng"], p["recorded_at"], p.get("heading"), p.get("speed"),
                   p.get("accuracy"), received_at]  # fmt: skip
    sql = (
        f"INSERT INTO {DriverPosition._meta.db_table} ({', '.join(_POSITION_COLUMNS)}) "
        f"SELECT points.* FROM (VALUES {', '.join([row] * len(points))}) AS points "
        "CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
