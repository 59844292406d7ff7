"""Start the platform's real processes (the Procfile's lines) for end-to-end tests and benchmarks."""

import os
import signal
import socket
import subprocess
import sys
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


@contextmanager
def started(name: str, env: dict, log_dir: Path, command: str | None = None):
    """Start one Procfile process (or `command`) and wait until it serves; stop it afterwards."""
    port = free_port()
    env = {**env, "PORT": str(port)}
    process = Process(name, command or procfile()[name].strip(), env, log_dir)
    process.port = port
    try:
        if name == "web":
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
        elif name == "worker":
            wait_for_log(process, "ready.")
        yield process
    finally:
        process.stop()
