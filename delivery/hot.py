"""Hot state in Redis: live positions, the GEO set of available drivers, waiting orders, the location stream.

PostgreSQL stays the truth (drivers' status, assignments, history); everything here can be lost and rebuilt
from fresh GPS points. Keys:
- `driver:<id>`          hash of the newest position (lat, lng, recorded_at, ts, heading, speed, avg_speed);
                         expires POSITION_TTL_SECONDS after the point was *recorded*, so a stale driver drops out.
- `drivers:available`    GEO set of available drivers at their live position: the dispatch candidate index.
                         Members can outlive their hash; readers check the hash and prune.
- `dispatch:waiting`     GEO set of orders waiting for a driver, at their store: who to retry when a driver frees up.
- `location_events`      capped stream of every accepted point, for replay and audit.
- `ws:user:<id>`         WebSocket connections the user holds across web processes (the per-user cap); expires an
                         hour after the last connect, so counts a crashed process never gave back do not last.
"""

from datetime import UTC, datetime
from functools import cache

import redis
from django.conf import settings

AVAILABLE_GEO = "drivers:available"
WAITING_GEO = "dispatch:waiting"
LOCATION_STREAM = "location_events"
# Redis GEO covers latitudes up to ±85.05°; drivers beyond it are simply not GEO-indexed.
GEO_MAX_LAT = 85.05112878


def driver_key(driver_id) -> str:
    return f"driver:{driver_id}"


@cache
def connection() -> redis.Redis:
    # redis-py pools reconnect after a fork by themselves, so one per process is safe under prefork workers.
    timeout = settings.REDIS_SOCKET_TIMEOUT_SECONDS
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True, socket_timeout=timeout,
                                socket_connect_timeout=timeout)  # fmt: skip


# Only a point at least as new replaces the live one: batches race and arrive out of order. Ties (the same
# `recorded_at`, e.g. a phone resending a corrected fix) go to the later arrival, which is live and pushed.
# Returns 0 when the point was older, 1 when it became live, 2 when it also entered the available GEO set
# for the first time (the driver just became a candidate: waiting orders nearby may be dispatched now).
_UPDATE_LIVE = """
local old = redis.call('HGET', KEYS[1], 'ts')
if old and tonumber(old) > tonumber(ARGV[1]) then return 0 end
local fields = {'ts', ARGV[1], 'lat', ARGV[2], 'lng', ARGV[3], 'recorded_at', ARGV[4], 'heading', ARGV[5],
                'speed', ARGV[6]}
if ARGV[6] ~= '' then
  local avg = redis.call('HGET', KEYS[1], 'avg_speed')
  local s = tonumber(ARGV[6])
  if avg and avg ~= '' then s = 0.7 * tonumber(avg) + 0.3 * s end
  table.insert(fields, 'avg_speed')
  table.insert(fields, tostring(s))
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
if ARGV[8] == '1' then
  local added = redis.pcall('GEOADD', KEYS[2], ARGV[3], ARGV[2], ARGV[9])
  if added == 1 then return 2 end
end
return 1
"""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(value) -> str:
    return "" if value is None else repr(float(value))


def positions_write(*, driver_id: int, available: bool, points: list[dict], newest: dict | None) -> int:
    """One round trip: every point onto the stream, and `newest` (None: already too old) as the live position.

    Returns the live-update result (0 not newer, 1 live, 2 live and newly available)."""
    pipe = connection().pipeline(transaction=False)
    for point in points:
        pipe.xadd(
            LOCATION_STREAM,
            {
                "driver_id": driver_id, "lat": repr(point["lat"]), "lng": repr(point["lng"]),
                "recorded_at": rfc3339(point["recorded_at"]), "heading": _text(point.get("heading")),
                "speed": _text(point.get("speed")), "accuracy": _text(point.get("accuracy")),
            },
            maxlen=settings.LOCATION_STREAM_MAXLEN, approximate=True,
        )  # fmt: skip
    if newest is not None:
        ts = newest["recorded_at"].timestamp()
        expire_at_ms = int((ts + settings.POSITION_TTL_SECONDS) * 1000)
        # EVAL, not a registered Script: in a pipeline redis-py asks SCRIPT EXISTS first, a round trip more per
        # batch; Redis keeps the compiled script by its hash, so sending the text costs only its bytes.
        pipe.eval(
            _UPDATE_LIVE, 2, driver_key(driver_id), AVAILABLE_GEO,
            repr(ts), repr(newest["lat"]), repr(newest["lng"]), rfc3339(newest["recorded_at"]),
            _text(newest.get("heading")), _text(newest.get("speed")), expire_at_ms,
            "1" if available and abs(newest["lat"]) <= GEO_MAX_LAT else "0", driver_id,
        )  # fmt: skip
    results = pipe.execute()
    return int(results[-1]) if newest is not None else 0


def live_position(driver_id) -> dict | None:
    return _parse(connection().hgetall(driver_key(driver_id)))


def live_positions(driver_ids) -> dict:
    """Live positions of many drivers in one round trip: {driver_id: position or None}."""
    driver_ids = list(driver_ids)
    pipe = connection().pipeline(transaction=False)
    for driver_id in driver_ids:
        pipe.hgetall(driver_key(driver_id))
    return {driver_id: _parse(raw) for driver_id, raw in zip(driver_ids, pipe.execute(), strict=True)}


def _parse(raw: dict) -> dict | None:
    if not raw:
        return None

    def number(name):
        value = raw.get(name)
        return float(value) if value not in (None, "") else None

    return {
        "lat": float(raw["lat"]), "lng": float(raw["lng"]), "recorded_at": raw["recorded_at"],
        "heading": number("heading"), "speed": number("speed"), "avg_speed": number("avg_speed"),
    }  # fmt: skip


def driver_make_candidate(driver_id) -> dict | None:
    """Put an available driver into the GEO set at its live position (if it has one); returns the position."""
    position = live_position(driver_id)
    if position and abs(position["lat"]) <= GEO_MAX_LAT:
        connection().geoadd(AVAILABLE_GEO, (position["lng"], position["lat"], str(driver_id)))
    return position


def driver_drop_candidate(driver_id) -> None:
    connection().zrem(AVAILABLE_GEO, str(driver_id))


def nearest_candidates(*, lat: float, lng: float, radius_km: float, count: int) -> list[tuple[int, float]]:
    """Available drivers with a live position within the radius, nearest first: [(driver_id, km)].

    GEO members whose hash expired are stale (no fresh position): skipped and pruned."""
    client = connection()
    found = client.geosearch(
        AVAILABLE_GEO, longitude=lng, latitude=lat, radius=radius_km, unit="km", sort="ASC", count=count, withdist=True
    )
    if not found:
        return []
    pipe = client.pipeline(transaction=False)
    for member, _ in found:
        pipe.exists(driver_key(member))
    alive = pipe.execute()
    stale = [member for (member, _), exists in zip(found, alive, strict=True) if not exists]
    if stale:
        client.zrem(AVAILABLE_GEO, *stale)
    return [(int(member), float(km)) for (member, km), exists in zip(found, alive, strict=True) if exists]


def order_wait(*, order_id, lat: float, lng: float) -> None:
    if abs(lat) <= GEO_MAX_LAT:
        connection().geoadd(WAITING_GEO, (lng, lat, str(order_id)))


def order_stop_waiting(order_id) -> None:
    connection().zrem(WAITING_GEO, str(order_id))


def waiting_orders_near(*, lat: float, lng: float, radius_km: float, count: int) -> list[str]:
    found = connection().geosearch(
        WAITING_GEO, longitude=lng, latitude=lat, radius=radius_km, unit="km", sort="ASC", count=count
    )
    return list(found)


_SOCKETS_TTL_SECONDS = 3600


def user_sockets_open(user_id) -> bool:
    """Count one more socket for the user; False (and nothing counted) when it would exceed the cap."""
    key = f"ws:user:{user_id}"
    pipe = connection().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, _SOCKETS_TTL_SECONDS)
    count, _ = pipe.execute()
    if count > settings.WEBSOCKET_MAX_SOCKETS_PER_USER:
        connection().decr(key)
        return False
    return True


def user_socket_closed(user_id) -> None:
    connection().decr(f"ws:user:{user_id}")
