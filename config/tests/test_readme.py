"""The README's "try an order" commands, run as a newcomer would: copied from README.md into a shell."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from orders.management.commands.seed_demo import CUSTOMER
from orders.models import Order

README = Path(__file__).resolve().parents[2] / "README.md"
# Only for a machine without curl: the flags the README uses (-s, -H, -d, a URL), through Python's own HTTP client.
CURL_FALLBACK = r"""
import sys, urllib.request, urllib.error
args, headers, data, url = sys.argv[1:], {}, None, None
while args:
    arg = args.pop(0)
    if arg == "-H":
        name, _, value = args.pop(0).partition(":"); headers[name.strip()] = value.strip()
    elif arg == "-d":
        data = args.pop(0).encode()
    elif arg != "-s":
        url = arg
try:
    body = urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers)).read()
except urllib.error.HTTPError as error:
    body = error.read()
sys.stdout.write(body.decode())
"""


def readme_order_commands() -> str:
    text = README.read_text()
    return re.search(r"Try an order as the customer.*?```sh\n(.*?)```", text, re.S).group(1)


@pytest.mark.e2e
def test_the_readme_order_commands_place_an_order_that_gets_paid(start_process, settings, tmp_path):
    # given `make run`'s demo data and the platform's web, relay and worker processes
    settings.DEBUG = True
    call_command("seed_demo")
    web = start_process("web", WEB_CONCURRENCY="1")
    start_process("worker", WORKER_CONCURRENCY="2")
    start_process("relay")
    script = readme_order_commands().replace("http://127.0.0.1:8000", f"http://127.0.0.1:{web.port}")
    if not shutil.which("curl"):
        (tmp_path / "curl.py").write_text(CURL_FALLBACK)
        script = f'curl() {{ python3 "{tmp_path}/curl.py" "$@"; }}\n{script}'

    # when a newcomer pastes them into a POSIX shell
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120)

    # then they ran cleanly, named a real order of the demo customer, and that order is paid by the worker
    assert result.returncode == 0, result.stderr
    order_id = re.search(r"order ([0-9a-f-]{36});", result.stdout).group(1)
    order = Order.objects.get(pk=order_id, customer__email=CUSTOMER["email"])
    assert result.stdout.strip().splitlines()[-1] in {"reserved", "paid", "assigned"}
    for _ in range(120):
        order.refresh_from_db()
        if order.status != Order.Status.RESERVED:
            break
        time.sleep(0.5)
    assert order.status == Order.Status.PAID
