"""GPS ingest under load: `make bench-ingest`.

Starts the Procfile's `web` line against a dedicated database (BENCH_DATABASE_URL, default courier_bench_ingest)
and Redis db (BENCH_REDIS_URL, default db 11), makes DRIVERS available drivers, then drives
`POST /api/v1/drivers/me/locations` with wrk (one C thread, so the load generator leaves the CPU to the server)
rotating over every driver: batches of 1 point, then batches of 20. Baseline in the same run: `/healthz`.
Afterwards it checks that history (PostgreSQL), the stream and every driver's live position hold what was sent.
Each load phase runs SECONDS (default 12) seconds.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # this script's folder would shadow the project's `common` package
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/courier_bench_ingest")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")

from bench import common as kit  # noqa: E402

DRIVERS = int(os.environ.get("DRIVERS", "300"))
SECONDS = int(os.environ.get("SECONDS", "12"))

SCRIPT = """
local tokens = {%(tokens)s}
local n = #tokens
local base = %(base)d
local batch = %(batch)d
local seq = {}
local counter = 0
local threads = {}
failures = {}
for i = 1, n do seq[i] = 0 end

setup = function(thread)
  table.insert(threads, thread)
end

response = function(status, headers, body)
  if status ~= 202 then failures[status] = (failures[status] or 0) + 1 end
end

local function stamp(ms)
  return os.date("!%%Y-%%m-%%dT%%H:%%M:%%S", base + math.floor(ms / 1000)) .. string.format(".%%03dZ", ms %% 1000)
end

request = function()
  counter = counter + 1
  local i = (counter %% n) + 1
  local parts = {}
  for k = 1, batch do
    seq[i] = seq[i] + 1
    parts[k] = string.format('{"lat":%%.6f,"lng":%%.6f,"recorded_at":"%%s","speed":5.5,"heading":90,"accuracy":6}',
      52.45 + (i %% 100) * 0.002 + seq[i] * 0.00001, 13.35 + (i %% 50) * 0.003, stamp(seq[i] * 5))
  end
  return wrk.format("POST", "/api/v1/drivers/me/locations",
    {["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"},
    '{"points":[' .. table.concat(parts, ",") .. ']}')
end

done = function(summary, latency, requests)
  local seen = ""
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("failures")) do seen = seen .. status .. "x" .. count .. " " end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"failed":"%%s","requests":%%d,"socket_errors":%%d,"non_2xx":%%d,"seconds":%%f,' ..
    '"p50":%%f,"p95":%%f,"p99":%%f}\\n',
    seen, summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and all its descendants, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(cpu.get(pid, 0.0) for pid in tree)


def measured(web, run) -> dict:
    """Run one load phase and add the web processes' CPU milliseconds per request: a cost that, unlike
    requests/s, does not depend on what else the shared machine is doing."""
    before = tree_cpu_seconds(web.popen.pid)
    result = run()
    result["web cpu ms/req"] = (tree_cpu_seconds(web.popen.pid) - before) * 1000 / max(result["requests"], 1)
    return result


def seed() -> list[str]:
    from accounts.models import User
    from delivery.models import Driver

    users = User.objects.bulk_create(
        User(email=f"rider{i}@bench.example", name=f"Rider {i}", password="!") for i in range(DRIVERS)
    )
    Driver.objects.bulk_create(Driver(user=user, status=Driver.Status.AVAILABLE) for user in users)
    return [kit.access_token(user) for user in users]


def load(base_url: str, tokens: list[str], *, batch: int, connections: int, base: int) -> dict:
    script = SCRIPT % {"tokens": ",".join(f'"{t}"' for t in tokens), "base": base, "batch": batch}
    result = kit.wrk(f"{base_url}/api/v1/drivers/me/locations", seconds=SECONDS, connections=connections,
                     script=script)  # fmt: skip
    result["rps"] = result["requests"] / result["seconds"]
    result["points/s"] = result["rps"] * batch
    result["batch"] = batch
    result["connections"] = connections
    return result


def verify(acknowledged: int, in_flight_max: int, refused_points: int) -> dict:
    """History, stream and live positions against what the server acknowledged.

    A request the server refused after writing history (a 503 when Redis did not answer in time) stored its
    points in history but not in the stream; the client resends them. Those are not acknowledged points."""
    from django.db.models import Max

    from delivery import hot
    from delivery.models import DriverPosition

    stored = DriverPosition.objects.count()
    stream = hot.connection().xlen(hot.LOCATION_STREAM)
    newest = dict(
        DriverPosition.objects.values("driver_id").annotate(m=Max("recorded_at")).values_list("driver_id", "m")
    )
    live = hot.live_positions(newest)
    stale = [d for d, m in newest.items() if not live[d] or live[d]["recorded_at"] != hot.rfc3339(m)]
    return {
        "acknowledged points": acknowledged,
        "history rows": stored,
        "stream entries": stream,
        "history - acknowledged (requests cut at the end, <= connections x batch)": stored - acknowledged,
        "max allowed in flight": in_flight_max,
        "points of refused requests (in history, not acknowledged)": refused_points,
        "drivers whose live position is not their newest point": len(stale),
        "ok": 0 <= stored - acknowledged <= in_flight_max + refused_points
        and 0 <= stored - stream <= refused_points
        and not stale,
    }


def main() -> None:
    env = kit.configure()
    # The run's points must stay live until they are checked at the end.
    env["POSITION_TTL_SECONDS"] = os.environ["POSITION_TTL_SECONDS"] = "600"
    kit.prepare_database()
    tokens = seed()
    kit.heading(f"GPS ingest, {DRIVERS} drivers, {SECONDS:g} s per phase; {kit.machine()}")
    with kit.stack(env, "web") as processes:
        base_url = f"http://127.0.0.1:{processes['web'].port}"
        kit.wrk(f"{base_url}/healthz", seconds=2, connections=32)  # warm both workers
        web = processes["web"]
        healthz = measured(web, lambda: kit.wrk(f"{base_url}/healthz", seconds=SECONDS // 2, connections=32))
        healthz.update(batch="-", connections=32)
        # A second baseline: the cheapest authenticated DRF call that reads the database (JWT + one user query).
        me = measured(web, lambda: kit.wrk(f"{base_url}/api/v1/me", seconds=SECONDS // 2, connections=64,
                                           headers={"Authorization": f"Bearer {tokens[0]}"}))  # fmt: skip
        me.update(batch="-", connections=64)
        now = int(time.time())
        single = measured(web, lambda: load(base_url, tokens, batch=1, connections=64, base=now - 30))
        batch20 = measured(web, lambda: load(base_url, tokens, batch=20, connections=32, base=now - 20))
        profiled = None
        if os.environ.get("PROFILE", "1") != "0":  # where a single-point request's time goes (not counted above)
            profiled = kit.sample_web(web, "ingest", SECONDS, lambda: load(base_url, tokens, batch=1, connections=64,
                                                                base=now - 10))  # fmt: skip
    rows = [{"phase": "/healthz (baseline)", **healthz}, {"phase": "GET /api/v1/me (baseline)", **me},
            {"phase": "ingest, 1 point", **single},
            {"phase": "ingest, 20 points", **batch20}]  # fmt: skip
    for row in rows:
        row["vs healthz"] = row["rps"] / healthz["rps"]
        row["vs /me"] = row["rps"] / me["rps"]
    print(kit.table(rows, ["phase", "batch", "connections", "rps", "points/s", "p50", "p95", "p99", "non_2xx",
                           "socket_errors", "failed", "vs healthz", "vs /me", "web cpu ms/req"]))  # fmt: skip
    acknowledged = (single["requests"] - single["non_2xx"]) + (batch20["requests"] - batch20["non_2xx"]) * 20
    acknowledged += profiled["requests"] - profiled["non_2xx"] if profiled else 0
    refused = single["non_2xx"] + batch20["non_2xx"] * 20 + (profiled["non_2xx"] if profiled else 0)
    check = verify(acknowledged, in_flight_max=64 * 2 + 32 * 20, refused_points=refused)
    kit.heading("every point stored?")
    for key, value in check.items():
        print(f"  {key}: {value}")
    if not check["ok"]:
        raise SystemExit("ingest lost or misplaced points")


if __name__ == "__main__":
    main()
