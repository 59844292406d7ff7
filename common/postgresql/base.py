"""Django's PostgreSQL backend with a health check that costs no round trip (ENGINE = "common.postgresql").

With CONN_HEALTH_CHECKS Django asks `is_usable()` before a persistent connection's first query of each request,
and the stock check is a `SELECT 1`: a round trip per request, ~1/6 of a GPS ingest's and ~1/4 of an order's wall
time under load (BENCHMARKS.md). Between requests a connection is idle, and PostgreSQL sends an idle client
nothing unless it is going away: a server shut down, restarted or killing the backend sends its goodbye and
closes the socket, which makes the socket readable. So "idle, in a good state, and nothing to read" is the same
answer the `SELECT 1` gives, read from the kernel with a zero-timeout poll. Anything unexpected to read (a
notice nobody asked for) also counts as unusable: the connection is replaced, which is always safe.

What neither check can see is a server that vanished without a word (a network cut): the request's query then
fails, answers 503, and Django replaces the connection after it, as before.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import ConnStatus, TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        pgconn = connection.pgconn
        if pgconn.status != ConnStatus.OK:
            return False
        if pgconn.transaction_status != TransactionStatus.IDLE:  # not between requests: Django's own check
            return super().is_usable()
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError):  # the socket is already gone
            return False
        return not readable
