#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that DATABASE_URL / REDIS_URL point at answer; start the machine's
# own servers when the defaults (127.0.0.1) are down. Exits non-zero if they still do not answer.
set -u
pg_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/courier}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
python_bin="${PYTHON:-python3}"

pg_up() { "$python_bin" - "$pg_url" <<'PY'
import sys, psycopg, urllib.parse as u
url = u.urlparse(sys.argv[1])
try:
    psycopg.connect(host=url.hostname or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
                    password=url.password or None, dbname="postgres", connect_timeout=2).close()
except Exception as exc:
    sys.exit(1)
PY
}
redis_up() { "$python_bin" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()" "$redis_url" 2>/dev/null; }

if ! pg_up; then
  echo "PostgreSQL is down; starting the local cluster" >&2
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "Redis is down; starting redis-server" >&2
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
  fi
  for _ in $(seq 30); do redis_up && break; sleep 1; done
fi
pg_up || { echo "PostgreSQL at $pg_url does not answer" >&2; exit 1; }
redis_up || { echo "Redis at $redis_url does not answer" >&2; exit 1; }
