"""The health check without a round trip (common/postgresql/base.py) against the real PostgreSQL."""

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    """What a PostgreSQL restart does to every connection: the server ends the backend and closes the socket."""
    settings = connection.settings_dict
    where = {"host": settings["HOST"] or "127.0.0.1", "port": settings["PORT"] or 5432,
             "user": settings["USER"] or "postgres", "dbname": settings["NAME"]}  # fmt: skip
    with psycopg.connect(**where, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_an_idle_connection_is_usable_without_a_round_trip(tmp_path):
    backend_pid()
    pgconn = connection.connection.pgconn
    with open(tmp_path / "wire", "w") as wire:
        pgconn.trace(wire.fileno())  # libpq's PQtrace: every protocol message sent or received
        usable = connection.is_usable()
        backend_pid()  # a real query, so the trace is shown to work
        pgconn.untrace()

    assert usable
    # Trace lines: time, F (we sent) or B (the server did), length, message type, contents.
    sent = [line.split("\t") for line in (tmp_path / "wire").read_text().splitlines() if line.split("\t")[1] == "F"]
    assert [(fields[3], "pg_backend_pid" in fields[4]) for fields in sent] == [("Query", True)]


def test_a_connection_the_server_ended_is_not_usable_and_the_next_request_gets_a_new_one():
    old_pid = backend_pid()
    terminate(old_pid)
    time.sleep(0.2)  # the server's goodbye reaches our socket

    assert not connection.is_usable()
    # What Django does before a request's first query with CONN_HEALTH_CHECKS: close it if unusable, reconnect.
    connection.health_check_enabled, connection.health_check_done = True, False
    assert backend_pid() != old_pid
