"""Hot state in Redis: live positions, the GEO set of available drivers, waiting orders, the location stream.

PostgreSQL stays the truth (drivers' status, assignments, history); everything here can be lost and rebuilt
from fresh GPS points. Keys:
- `driver:<id>`          hash of the newest position (lat, lng, recorded_at, ts, heading, speed, avg_speed);
                         expires POSITION_TTL_SECONDS after the point was *recorded*, so a stale driver drops out.
- `drivers:available`    GEO set of available drivers at their live position: the dispatch candidate index.
                         Members can outlive their hash; readers check the hash and prune.
- `dispatch:waiting`     GEO set of orders waiting for a driver, at their store: who to retry when a driver frees up.
- `location_events`      capped stream of every accepted point, for replay and audit.
- `ws:sockets:<id>`      hash of the WebSocket connections the user holds, per web process (the per-user cap).
- `ws:processes`         hash of each web process's lease on the sockets it counts: a crashed one's stop counting.
"""

import os
import secrets
import socket
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


# --- The per-user socket cap ---------------------------------------------------------------------------
# A process that dies (SIGKILL, OOM) never gives its sockets back, so each process counts its own: field = process,
# value = the user's sockets there. Each process holds a lease, renewed every third of
# WEBSOCKET_PROCESS_LEASE_SECONDS while it has sockets (one call per process, not per socket); the next open drops
# the counts of processes whose lease ran out, so a crash frees its users' slots within one lease. Lease ends are on
# Redis's clock (TIME), so the web hosts' clocks need not agree. A live process that cannot renew for a whole lease
# (Redis unreachable) loses its counts too: its users may go over the cap until those sockets close, the lesser harm
# than refusing them for good. Not the old `ws:user:<id>` counters' name: during a deploy, old processes still INCR
# those strings, which a hash command would fail on (WRONGTYPE).
SOCKET_PROCESSES = "ws:processes"
# Only forgets users who hold no socket and never come back; a socket open longer than this without its user
# opening another loses its count.
_SOCKETS_TTL_SECONDS = 24 * 3600

# KEYS: the user's hash, SOCKET_PROCESSES. ARGV: this process, its lease (ms), the cap, the hash's TTL.
# Returns 1 when the socket was counted, 0 when the user's sockets on live processes already reach the cap.
_SOCKET_OPEN = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', now + ARGV[2]))
local held, total = redis.call('HGETALL', KEYS[1]), 0
for i = 1, #held, 2 do
  local lease_end = tonumber(redis.call('HGET', KEYS[2], held[i]))
  if lease_end and lease_end >= now then total = total + tonumber(held[i + 1])
  else redis.call('HDEL', KEYS[1], held[i]) end
end
if total >= tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
# Never below zero: the count may be gone already (dropped while this process could not renew, or expired).
_SOCKET_CLOSE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""
# KEYS: SOCKET_PROCESSES. ARGV: this process, its lease (ms). Forgets the processes whose lease ran out on the way.
_LEASE_RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local leases = redis.call('HGETALL', KEYS[1])
for i = 1, #leases, 2 do
  if tonumber(leases[i + 1]) < now then redis.call('HDEL', KEYS[1], leases[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now + ARGV[2]))
"""
_process = (0, "")


def process_id() -> str:
    """This OS process's name in the counts. Made anew after a fork (uvicorn's workers), and random so a later process
    with the same host and pid (a restarted container) cannot renew a dead one's lease and keep its counts alive."""
    global _process
    if _process[0] != os.getpid():
        _process = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    return _process[1]


def _lease_ms() -> int:
    return int(settings.WEBSOCKET_PROCESS_LEASE_SECONDS * 1000)


def user_sockets_open(user_id) -> bool:
    """Count one more socket for the user on this process; False (and nothing counted) when it would exceed the cap."""
    counted = connection().eval(
        _SOCKET_OPEN, 2, f"ws:sockets:{user_id}", SOCKET_PROCESSES,
        process_id(), _lease_ms(), settings.WEBSOCKET_MAX_SOCKETS_PER_USER, _SOCKETS_TTL_SECONDS,
    )  # fmt: skip
    return counted == 1


def user_socket_closed(user_id) -> None:
    connection().eval(_SOCKET_CLOSE, 1, f"ws:sockets:{user_id}", process_id())


def process_lease_renew() -> None:
    """Keep this process's socket counts live for another lease (call every third of it while it holds sockets)."""
    connection().eval(_LEASE_RENEW, 1, SOCKET_PROCESSES, process_id(), _lease_ms())
