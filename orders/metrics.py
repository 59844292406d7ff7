"""Business metrics for /metrics, read from the database at scrape time.

Counting from PostgreSQL (not per-process counters) keeps the figures right however many web and
worker processes run, at the cost of a few aggregate queries per scrape.
"""

import contextlib

from django.db.models import Count, Sum
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from orders.models import Order, OutboxEvent, TimelineEntry


class OrdersCollector:
    def describe(self):
        return []  # no query at registration time (the database may not exist yet)

    def collect(self):
        created = CounterMetricFamily("courier_orders_created", "Orders ever created.")
        created.add_metric([], Order.objects.count())
        yield created

        by_status = GaugeMetricFamily("courier_orders", "Orders by current status.", labels=["status"])
        for row in Order.objects.values("status").annotate(n=Count("pk")):
            by_status.add_metric([row["status"]], row["n"])
        yield by_status

        cancelled = CounterMetricFamily("courier_orders_cancelled", "Cancelled orders by reason.", labels=["reason"])
        for row in Order.objects.filter(status="cancelled").values("cancel_reason").annotate(n=Count("pk")):
            cancelled.add_metric([row["cancel_reason"]], row["n"])
        yield cancelled

        latency = SummaryMetricFamily(
            "courier_saga_step_duration_seconds", "Saga step latency, per step and outcome.", labels=["step", "status"]
        )
        rows = (
            TimelineEntry.objects.filter(duration_ms__isnull=False)
            .values("step", "status")
            .annotate(n=Count("pk"), total=Sum("duration_ms"))
        )
        for row in rows:
            latency.add_metric([row["step"], row["status"]], count_value=row["n"], sum_value=row["total"] / 1000)
        yield latency

        backlog = GaugeMetricFamily("courier_outbox_unpublished", "Outbox events not yet relayed.")
        backlog.add_metric([], OutboxEvent.objects.filter(published_at__isnull=True).count())
        yield backlog


_collector = OrdersCollector()


def register():
    with contextlib.suppress(ValueError):  # already registered (ready() ran twice)
        REGISTRY.register(_collector)
