"""`make run`: the whole platform on this machine, in the foreground. Ctrl-C stops everything.

1. DATABASE_URL / REDIS_URL from the environment or `.env` are used when set; whichever is missing is
   started embedded (PostgreSQL and Redis from pip wheels, data under `.local/`, see scripts/local_services.py).
2. `manage.py migrate`, then `manage.py seed_demo` (prints the demo logins).
3. honcho starts every Procfile line (web, worker, beat) with DEBUG=1 and PORT=8000 unless set.
"""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
VENV_BIN = Path(sys.executable).parent


def say(message: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    # The terminal or pipe may be gone (`make run | tee` interrupted): printing must not stop the shutdown.
    with contextlib.suppress(OSError):
        print(f"{bold}==> {message}{plain}", flush=True)


def load_dotenv() -> None:
    """The same `.env` Django reads; values already in the environment win (as in config/settings.py)."""
    import environ

    if (ROOT / ".env").exists():
        environ.Env.read_env(ROOT / ".env")


def ensure_database(url: str) -> None:
    """Create the database DATABASE_URL names when the server is there but the database is not (best effort)."""
    import environ
    import psycopg

    config = environ.Env.db_url_config(url)
    server = {"host": config.get("HOST") or None, "port": config.get("PORT") or None, "user": config.get("USER")}
    server["password"] = config.get("PASSWORD") or None
    try:
        psycopg.connect(dbname=config["NAME"], connect_timeout=5, **server).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise SystemExit(f"PostgreSQL at DATABASE_URL does not answer: {exc}")
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **server) as conn:
        conn.execute(f'CREATE DATABASE "{config["NAME"]}"')
    say(f"created database {config['NAME']}")


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def local_procfile() -> Path:
    """The Procfile plus the rider simulator, so the demo is alive (SIMULATE_DRIVERS=0 for none).

    The simulator's defaults are the demo's (tracking/management/commands/simulate.py); SIMULATE_DRIVERS,
    SIMULATE_ORDERS_PER_MINUTE and SIMULATE_SPEEDUP override them. It waits for the web process and, should it
    fail, idles instead of making honcho stop the platform."""
    procfile = (ROOT / "Procfile").read_text()
    if os.environ.get("SIMULATE_DRIVERS") != "0":
        # honcho gives each process its own PORT, so the web address is spelled out.
        web = f"http://127.0.0.1:{os.environ['PORT']}"
        wait = f"from common.processes import wait_for_http; wait_for_http('{web}/healthz', 120)"
        options = "".join(
            f" --{flag} {os.environ[variable]}"
            for variable, flag in [("SIMULATE_DRIVERS", "drivers"), ("SIMULATE_ORDERS_PER_MINUTE", "orders-per-minute"),
                                   ("SIMULATE_SPEEDUP", "speedup")]
            if os.environ.get(variable)
        )  # fmt: skip
        simulate = f"python manage.py simulate --base-url {web}{options}"
        procfile += f'simulate: python -c "{wait}" && {simulate} || sleep infinity\n'
    target = ROOT / ".local" / "Procfile.run"
    target.write_text(procfile)
    return target


def run_procfile() -> int:
    """honcho in the foreground; SIGINT/SIGTERM make it stop every process, then we return."""
    # `.env` was merged into our environment already; a second read by honcho would override the shell's values.
    command = [str(VENV_BIN / "honcho"), "start", "--procfile", str(local_procfile()), "--env", os.devnull]
    honcho = subprocess.Popen([*command, "--port", os.environ["PORT"]], cwd=ROOT)

    stopped_by_user = False

    def forward(signum, frame):
        nonlocal stopped_by_user
        stopped_by_user = True
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    returncode = honcho.wait()
    # A process that dies by itself makes honcho stop the others and fail; a Ctrl-C is a clean stop.
    return 0 if stopped_by_user else returncode


def main() -> int:
    os.chdir(ROOT)
    load_dotenv()
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("PORT", "8000")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CELERY_BEAT_SCHEDULE_FILE", str(ROOT / ".local" / "celerybeat-schedule"))
    (ROOT / ".local").mkdir(exist_ok=True)
    # Procfile lines call `uvicorn` and `celery` by name: they must come from this virtualenv.
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

    need_postgres, need_redis = not os.environ.get("DATABASE_URL"), not os.environ.get("REDIS_URL")
    servers = []
    try:
        if need_postgres or need_redis:
            from local_services import start_embedded

            os.environ.update(start_embedded(postgres=need_postgres, redis=need_redis, servers=servers, say=say))
        else:
            say("using DATABASE_URL and REDIS_URL from the environment")
        if not need_postgres:
            ensure_database(os.environ["DATABASE_URL"])
        say("migrating")
        manage("migrate", "--noinput", "-v", "0")
        say("demo data")
        manage("seed_demo")
        port = os.environ["PORT"]
        say(
            f"Courier on http://127.0.0.1:{port}/  (API /api/v1/, docs /api/docs/, admin /admin/, "
            f"WebSocket ws://127.0.0.1:{port}/ws/orders/<id>/). Ctrl-C stops everything."
        )
        return run_procfile()
    except KeyboardInterrupt:
        return 130
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if servers:
            from local_services import stop_embedded

            stop_embedded(servers, say=say)


if __name__ == "__main__":
    sys.exit(main())
