"""What an acknowledged (202) GPS point survives, against the real web process on a PostgreSQL and a Redis of the
test's own that it crashes and restarts (README, "GPS ingest: what a 202 means").

- the web process killed (SIGKILL) right after its answer: the point is in history and in the stream;
- Redis restarted (in memory, so the stream and the live position are gone): the point is in history, and the
  driver's next point is live again;
- PostgreSQL crashed (`pg_ctl -m immediate`: backends killed, WAL buffers lost): a point acknowledged more than
  a second before the crash is in history; one acknowledged in the last moments is in history or in the stream
  (history commits with `synchronous_commit = off`), so no acknowledged point is in neither.
"""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import redis

from common.processes import ROOT, ThrowawayPostgres, ThrowawayRedis
from delivery.hot import LOCATION_STREAM

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# PostgreSQL's WAL writer flushes asynchronous commits every wal_writer_delay (200 ms) and at most 3 x that later.
ASYNC_COMMIT_WINDOW_SECONDS = 1.0
MAKE_DRIVER = """
from accounts.tests.factories import UserFactory
from accounts.tokens import access_token_for
from delivery.models import Driver
driver = Driver.objects.create(user=UserFactory(), status="available")
print(driver.pk, access_token_for(driver.user))
"""


@pytest.fixture
def servers():
    postgres, redis_server = ThrowawayPostgres(), ThrowawayRedis()
    try:
        postgres.start(), redis_server.start()
        env = {**os.environ, "DATABASE_URL": postgres.url, "DJANGO_SETTINGS_MODULE": "config.settings"}
        for args in (["migrate", "-v", "0"], ["shell", "-c", MAKE_DRIVER]):
            done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                                  text=True)  # fmt: skip
            assert done.returncode == 0, done.stderr
        driver_id, token = done.stdout.split()[-2:]
        yield postgres, redis_server, int(driver_id), token
    finally:
        redis_server.stop()
        postgres.destroy()


class Rider:
    """Posts a point at a time with strictly increasing `recorded_at` and remembers what was acknowledged."""

    def __init__(self, token: str):
        self.token = token
        self.client: httpx.Client | None = None
        self.clock = datetime.now(UTC) - timedelta(seconds=20)  # live positions expire after POSITION_TTL_SECONDS
        self.acknowledged: list[str] = []

    def use(self, web) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=10,
                                   headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip

    def post(self, count: int) -> None:
        for _ in range(count):
            self.clock += timedelta(milliseconds=100)
            recorded_at = self.clock.isoformat().replace("+00:00", "Z")
            point = {"lat": 52.52, "lng": 13.40, "recorded_at": recorded_at}
            answer = self.client.post("/api/v1/drivers/me/locations", json={"points": [point]})
            assert answer.status_code == 202, answer.text
            self.acknowledged.append(recorded_at)


def in_history(postgres: ThrowawayPostgres, driver_id: int) -> set[str]:
    with psycopg.connect(postgres.url) as connection:
        rows = connection.execute(
            "SELECT to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
            "FROM delivery_driverposition WHERE driver_id = %s", [driver_id],
        ).fetchall()  # fmt: skip
    return {row[0] for row in rows}


def in_stream(redis_server: ThrowawayRedis, driver_id: int) -> set[str]:
    entries = redis.Redis.from_url(redis_server.url, decode_responses=True).xrange(LOCATION_STREAM)
    return {fields["recorded_at"] for _, fields in entries if fields["driver_id"] == str(driver_id)}


def normalised(points: list[str]) -> set[str]:
    """`recorded_at` as history prints it (microseconds always shown)."""
    return {datetime.fromisoformat(p).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for p in points}


def test_an_acknowledged_point_survives_a_web_crash_a_redis_restart_and_a_postgres_crash(servers, start_process):
    postgres, redis_server, driver_id, token = servers
    start_web = lambda: start_process("web", WEB_CONCURRENCY="1", DATABASE_URL=postgres.url,  # noqa: E731
                                      REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)  # fmt: skip

    # The web process dies right after answering.
    rider = Rider(token)
    web = start_web()
    rider.use(web)
    rider.post(20)
    web.kill()
    assert normalised(rider.acknowledged) <= in_history(postgres, driver_id)
    assert normalised(rider.acknowledged) <= normalised(list(in_stream(redis_server, driver_id)))

    # Redis restarts empty: history keeps every point; the next point is live again.
    rider.use(start_web())
    rider.post(20)
    redis_server.restart()
    assert normalised(rider.acknowledged) <= in_history(postgres, driver_id)
    assert redis.Redis.from_url(redis_server.url).exists(f"driver:{driver_id}") == 0
    for _ in range(50):  # the web process reconnects to Redis by itself; a 503 meanwhile is a clean refusal
        if rider.client.post("/api/v1/drivers/me/locations", json={"points": []}).status_code == 400:
            break
        time.sleep(0.1)
    rider.post(1)
    assert redis.Redis.from_url(redis_server.url, decode_responses=True).hget(f"driver:{driver_id}", "recorded_at")

    # PostgreSQL crashes: old enough points are in history, the newest at least in the stream.
    settled = list(rider.acknowledged)
    rider.post(30)
    time.sleep(ASYNC_COMMIT_WINDOW_SECONDS)
    rider.post(30)
    last_moment = rider.acknowledged[len(settled) + 30 :]
    postgres.stop("immediate")
    postgres.start()
    history, stream = in_history(postgres, driver_id), normalised(list(in_stream(redis_server, driver_id)))
    assert normalised(rider.acknowledged[: len(settled) + 30]) <= history
    assert normalised(rider.acknowledged) <= history | stream
    print(f"acknowledged in the last moments before the crash: {len(last_moment)}, "
          f"of them only in the stream: {len(normalised(last_moment) - history)}")  # fmt: skip
