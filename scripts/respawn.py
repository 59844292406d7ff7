"""Run a command and start it again whenever it dies on its own: `respawn.py celery -A config worker ...`.

Why: a Celery worker can exit on a broker restart (kombu's Redis transport, restoring unacknowledged
messages while the connection is torn down: AttributeError 'NoneType' object has no attribute 'hostname'
from `_connparams`, "Unrecoverable error"). Its tasks are safe to run again and the sweeper re-drives
anything in flight, so starting it again is the whole recovery, and without it `make run` (honcho stops
every process when one exits) or a bare Procfile runner would lose the worker for good.

SIGTERM / SIGINT are passed on and end the loop; restarts back off from 1 s to 30 s.
"""

import signal
import subprocess
import sys
import time

stopping = False
child: subprocess.Popen | None = None


def _stop(signum, _frame):
    global stopping
    stopping = True
    if child is not None and child.poll() is None:
        child.send_signal(signum)


def main(command: list[str]) -> int:
    global child
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return code
        if time.monotonic() - started > 60:
            delay = 1.0  # it ran fine for a while: this is a new incident, not a crash loop
        print(
            f"respawn: {command[0]} exited with {code}; starting it again in {delay:.0f}s", file=sys.stderr, flush=True
        )
        time.sleep(delay)
        if stopping:
            return code
        delay = min(delay * 2, 30.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
