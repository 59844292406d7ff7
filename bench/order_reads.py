"""Reading one order: `python bench/order_reads.py [--requests 300] [--reps 5]`.

In this process through Django's test client (no HTTP server, no network): the CPU time and the queries of
`GET /api/v1/orders/{id}` for an order a driver holds, asked by its customer and by its driver, beside
`GET /api/v1/me` (authentication and the framework alone) as the baseline measured in the same run. Medians of
`--reps` runs of `--requests` requests each. Dedicated database (BENCH_DATABASE_URL, default
courier_bench_reads) and Redis db (BENCH_REDIS_URL, default 12).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # this script's folder would shadow the project's `common` package
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/courier_bench_reads")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")

from bench import common as kit  # noqa: E402


def measure(url: str, token: str, *, requests: int, check=None) -> tuple[float, int]:
    """CPU milliseconds per request and queries per request."""
    from django.db import connection
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = client.get(url)
    assert answer.status_code == 200 and (check is None or check(answer.json())), answer.content
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *rest: queries.append(sql) or execute(sql, *rest)):
        client.get(url)
    started = time.process_time()
    for _ in range(requests):
        client.get(url)
    return 1000 * (time.process_time() - started) / requests, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    kit.configure()
    kit.prepare_database()
    (seeded,) = kit.assigned_orders(1)
    order_url = f"/api/v1/orders/{seeded['order_id']}"
    has_driver = lambda body: body["driver"]["id"] == seeded["driver_id"]  # noqa: E731
    cases = {
        "GET /api/v1/me (baseline)": ("/api/v1/me", seeded["customer_token"], None),
        "GET /api/v1/orders/{id}, its customer": (order_url, seeded["customer_token"], has_driver),
        "GET /api/v1/orders/{id}, its driver": (order_url, seeded["driver_token"], has_driver),
    }
    runs = {name: [] for name in cases}
    for _ in range(args.reps):  # interleaved, so the machine's noise falls on every case alike
        for name, (url, token, check) in cases.items():
            runs[name].append(measure(url, token, requests=args.requests, check=check))
    kit.heading(f"Reading one order in-process: medians of {args.reps} x {args.requests} requests ({kit.machine()})")
    baseline = statistics.median(ms for ms, _ in runs["GET /api/v1/me (baseline)"])
    rows = []
    for name, results in runs.items():
        ms = statistics.median(ms for ms, _ in results)
        rows.append({"request": name, "CPU ms": f"{ms:.2f}", "x baseline": f"{ms / baseline:.2f}",
                     "queries": results[0][1]})  # fmt: skip
    print(kit.table(rows, ["request", "CPU ms", "x baseline", "queries"]))


if __name__ == "__main__":
    main()
