"""A Chromium for the browser tests, obtained the way a newcomer's machine can (used by the `chromium` test fixture).

In order: the system's Chromium or Chrome on PATH; as root with apt, the distribution's `chromium` package; else
Playwright's own build (`python -m playwright install chromium`, `--with-deps` as root so its libraries come too).
Only the browser tests ask for it, so `-m 'not browser'` never downloads anything. When all fail, one line says
what to run.
"""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_TIMEOUT_SECONDS = 900
WHAT_TO_RUN = (
    "no Chromium for the browser tests: install one (`sudo apt-get install chromium`, or "
    f"`{Path(sys.executable).parent}/python -m playwright install --with-deps chromium`), "
    "or leave them out with: make test PYTEST_ARGS=\"-m 'not browser'\""
)


class ChromiumUnavailable(RuntimeError):
    pass


def chromium_executable() -> str:
    """Path of a Chromium that Playwright can launch, installing one if this machine allows it."""
    if found := _system_chromium():
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium", shell=True)
        if found := _system_chromium():
            return found
    if found := _playwright_chromium():
        return found
    with_deps = ["--with-deps"] if os.geteuid() == 0 else []
    _run([sys.executable, "-m", "playwright", "install", *with_deps, "chromium"])
    if found := _playwright_chromium():
        return found
    raise ChromiumUnavailable(WHAT_TO_RUN)


def _system_chromium() -> str | None:
    # Ubuntu's `chromium-browser` may be a wrapper that only asks to install a snap: it must run to count.
    for name in SYSTEM_NAMES:
        path = shutil.which(name)
        if path and _runs(path):
            return path
    return None


def _playwright_chromium() -> str | None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if Path(path).exists() else None


def _runs(path: str) -> bool:
    try:
        return subprocess.run([path, "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _run(command, shell: bool = False) -> None:
    print(f"\nobtaining Chromium for the browser tests: {command if shell else ' '.join(command)}", file=sys.stderr)
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(command, shell=shell, timeout=INSTALL_TIMEOUT_SECONDS, check=False, stdout=subprocess.DEVNULL)
