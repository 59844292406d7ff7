"""Live tracking under load: `make bench-tracking` (BENCH_ARGS="--clients 1000 --orders 100 --rate 200").

Starts the Procfile's `web` line (one process: WEB_CONCURRENCY=1) against a dedicated database, opens N
WebSocket clients over M assigned orders (the `websockets` package, bearer subprotocol), and has the M
drivers POST positions at R points/s in total through the real HTTP API. Reports the latency from just
before each POST to each client's receipt of that point (p50/p99), delivered/expected messages, the
connections held by the one web process, and its memory per connection (RSS delta / connections).

Scenarios (each well under 60 s of load): `latency` (N=1000, M=100, R=200 for 15 s) and `connections`
(N=5000 held, M=100, then R=50 for 5 s to prove they are all alive). Load generator and server share the
machine (2 cores), so the numbers bound the server from below.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # this script's folder would shadow the project's `common` package
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/courier_bench_tracking")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

from bench import common as kit  # noqa: E402


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn with one worker runs in one process)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def run_scenario(name: str, port: int, pid: int, orders: list[dict], clients: int, rate: float,
                       seconds: float) -> dict:  # fmt: skip
    import httpx
    import websockets

    sent: dict[tuple[str, float], float] = {}  # (driver_id, lat) -> monotonic time just before the POST
    latencies: list[float] = []
    received = 0
    opened = 0
    all_open = asyncio.Event()
    stop = asyncio.Event()

    failed = 0

    async def client(index: int):
        nonlocal failed
        try:
            await watch(index)
        except Exception:
            failed += 1
            if opened + failed == clients:
                all_open.set()
            raise

    async def watch(index: int):
        nonlocal received, opened
        order = orders[index % len(orders)]
        url = f"ws://127.0.0.1:{port}/ws/orders/{order['order_id']}/"
        async with websockets.connect(url, subprotocols=["bearer", order["customer_token"]], open_timeout=120,
                                      ping_interval=None, max_queue=None) as ws:  # fmt: skip
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "snapshot", snapshot
            opened += 1
            if opened + failed == clients:
                all_open.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1)
                except TimeoutError:
                    continue
                now = time.monotonic()
                message = json.loads(raw)
                if message["type"] == "position":
                    started = sent.get((message["driver_id"], message["lat"]))
                    if started is not None:
                        received += 1
                        latencies.append((now - started) * 1000)

    baseline = rss_kb(pid)
    connect_started = time.monotonic()
    # Open in waves: a real fleet of phones does not dial in the same millisecond either.
    tasks = []
    for index in range(clients):
        tasks.append(asyncio.create_task(client(index)))
        if index % 200 == 199:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(all_open.wait(), 180)
    connect_seconds = time.monotonic() - connect_started
    await asyncio.sleep(1)
    held = rss_kb(pid)

    watchers = {}
    for index in range(clients):
        watchers[orders[index % len(orders)]["driver_id"]] = (
            watchers.get(orders[index % len(orders)]["driver_id"], 0) + 1
        )
    expected = 0
    failed_posts = 0
    post_ms: list[float] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as http:

        async def post(seq: int):
            nonlocal expected, failed_posts
            order = orders[seq % len(orders)]
            lat = round(52.40 + seq * 1e-6, 6)
            body = {"points": [{"lat": lat, "lng": 13.40, "recorded_at": datetime.now(UTC).isoformat(), "speed": 5.0}]}
            started = time.monotonic()
            sent[(order["driver_id"], lat)] = started
            try:
                answer = await http.post("/api/v1/drivers/me/locations", json=body,
                                         headers={"Authorization": f"Bearer {order['driver_token']}"})  # fmt: skip
            except httpx.HTTPError:
                failed_posts += 1
                return
            post_ms.append((time.monotonic() - started) * 1000)
            if answer.status_code == 202:
                expected += watchers.get(order["driver_id"], 0)
            else:
                failed_posts += 1

        total = int(rate * seconds)
        load_started = time.monotonic()
        posts = []
        for seq in range(total):
            delay = load_started + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(seq)))
        await asyncio.gather(*posts)
        achieved_rate = total / (time.monotonic() - load_started)
    # Stragglers: count until nothing more arrives for 2 s (at most 30 s), so a late message is not taken for a
    # lost one when the load generator itself falls behind.
    quiet_since, seen, give_up = time.monotonic(), received, time.monotonic() + 30
    while time.monotonic() - quiet_since < 2 and time.monotonic() < give_up and received < expected:
        await asyncio.sleep(0.2)
        if received != seen:
            quiet_since, seen = time.monotonic(), received
    stop.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    dropped = sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
    errors = Counter(repr(outcome)[:120] for outcome in outcomes if isinstance(outcome, BaseException))
    return {
        "clients_dropped": dropped,
        "client_errors": dict(errors.most_common(3)),
        "scenario": name, "clients": clients, "orders": len(orders), "rate_target": rate,
        "rate_achieved": round(achieved_rate, 1), "seconds": seconds, "connect_seconds": round(connect_seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "post_p50_ms": round(percentile(post_ms, 50), 1), "post_p99_ms": round(percentile(post_ms, 99), 1),
        "delivered": received, "expected": expected, "failed_posts": failed_posts,
        "rss_baseline_mb": round(baseline / 1024, 1), "rss_held_mb": round(held / 1024, 1),
        "kb_per_connection": round((held - baseline) / clients, 1),
        "median_latency_mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
    }  # fmt: skip


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["latency", "connections", "all"], default="all")
    parser.add_argument("--clients", type=int, help="override N of the chosen scenario")
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--rate", type=float, help="override R (points/s) of the chosen scenario")
    parser.add_argument("--seconds", type=float, help="override the load duration")
    parser.add_argument("--web-concurrency", type=int, help="uvicorn workers (default: latency 2 as the Procfile, "
                        "connections 1 to measure one process)")  # fmt: skip
    parser.add_argument("--layer", choices=["redis", "pubsub"], default=None,
                        help="the web process's CHANNEL_LAYER (default: config/settings.py's)")  # fmt: skip
    parser.add_argument("--ws", choices=["websockets", "websockets-sansio", "wsproto"], default=None,
                        help="uvicorn's WebSocket protocol implementation (default: the Procfile's)")  # fmt: skip
    args = parser.parse_args()
    # name -> (clients, points/s, seconds, web processes)
    scenarios = {"latency": (1000, 200.0, 15.0, 2), "connections": (5000, 50.0, 5.0, 1)}
    chosen = list(scenarios) if args.scenario == "all" else [args.scenario]

    env = kit.configure()
    kit.prepare_database()
    orders = kit.assigned_orders(args.orders)
    status_publish_cost(orders)
    from common.processes import procfile, started

    results = []
    log_dir = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    # Every bench client watches as the same customer: lift the per-user socket cap for the run.
    env["WEBSOCKET_MAX_SOCKETS_PER_USER"] = "1000000"
    print(f"web log: {log_dir}/web.log", flush=True)
    for name in chosen:
        clients, rate, seconds, workers = scenarios[name]
        clients, rate, seconds = args.clients or clients, args.rate or rate, args.seconds or seconds
        workers = args.web_concurrency or workers
        web_env = {**env, "WEB_CONCURRENCY": str(workers)}
        if args.layer:
            web_env["CHANNEL_LAYER"] = args.layer
        command = procfile()["web"]
        if args.ws:
            command = re.sub(r"--ws \S+", f"--ws {args.ws}", command)
        with started("web", web_env, log_dir, command=command) as web:
            time.sleep(2 if workers > 1 else 0)  # let every worker come up
            result = asyncio.run(run_scenario(name, web.port, web.popen.pid, orders, clients, rate, seconds))
        result["web_processes"], result["layer"] = workers, args.layer or "default"
        result["ws"] = re.search(r"--ws (\S+)", command).group(1)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print("| scenario | web processes | N clients | M orders | R pts/s (achieved) | p50 ms | p99 ms | "
          "delivered/expected | dropped | RSS before→held MB | KB/conn |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['scenario']} | {r['web_processes']} | {r['clients']} | {r['orders']} | "
              f"{r['rate_target']:g} ({r['rate_achieved']}) | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['delivered']}/{r['expected']} | {r['clients_dropped']} | "
              f"{r['rss_baseline_mb']}→{r['rss_held_mb']} | {r['kb_per_connection']} |")  # fmt: skip


def status_publish_cost(orders: list[dict], calls: int = 2000) -> None:
    """What a status publish costs the request or task that changed the order: wall time of the call itself
    (it hands the messages to the process's publisher), and how long the publisher took to send them all."""
    from delivery import broadcast
    from tracking.services import order_status_publish

    at = datetime.now(UTC).isoformat()
    times = []
    for i in range(calls):
        order = orders[i % len(orders)]
        started = time.perf_counter()
        order_status_publish(order_id=order["order_id"], status="picked_up", cancel_reason=None,
                             driver_id=order["driver_id"], at=at)  # fmt: skip
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    broadcast.flush(timeout=60)
    drained = time.perf_counter() - started
    print(f"status publish, caller's time over {calls} calls: p50 {percentile(times, 50):.3f} ms, "
          f"p99 {percentile(times, 99):.3f} ms, max {max(times):.3f} ms; the publisher sent them all "
          f"{drained * 1000:.0f} ms after the last call")  # fmt: skip


if __name__ == "__main__":
    main()
