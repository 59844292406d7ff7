"""`make test`: lint, import layers, migrations check and pytest against a real PostgreSQL and Redis.

Which servers (each decided on its own):
1. TEST_DATABASE_URL / TEST_REDIS_URL when set: they must answer (an explicit choice is never silently swapped).
2. Else the machine's own servers at the defaults (127.0.0.1:5432 database `courier`, 127.0.0.1:6379 db 15)
   when they answer.
3. Else the embedded PostgreSQL / Redis that `make run` uses (pip wheels, scripts/local_services.py), data under
   `.local/test/` (apart from `make run`'s, so both can run at once), stopped when the run ends.

    python scripts/test.py [pytest arguments]      (make test PYTEST_ARGS="-m 'not browser'")
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from local_services import LOCAL, postgres_answers, redis_answers, start_embedded, stop_embedded  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/courier"
# Never db 0: a dev stack on the machine's Redis is not flushed by the tests.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def choose(variable: str, default: str, answers) -> str | None:
    """The URL to test against, or None for "start the embedded server"."""
    if os.environ.get(variable):
        url = os.environ[variable]
        if problem := answers(url):
            raise SystemExit(f"{variable}={url} does not answer ({problem}); unset it to use an embedded server")
        say(f"{variable}: {url}")
        return url
    if problem := answers(default):
        say(f"nothing answers at {default} ({problem}): starting an embedded server")
        return None
    say(f"using the machine's server at {default}")
    return default


def main(pytest_args: list[str]) -> int:
    os.chdir(ROOT)
    python = sys.executable
    servers = []
    try:
        subprocess.run(["make", "--no-print-directory", "lint"], check=True)
        database_url = choose("TEST_DATABASE_URL", DEFAULT_DATABASE_URL, postgres_answers)
        redis_url = choose("TEST_REDIS_URL", DEFAULT_REDIS_URL, redis_answers)
        started = start_embedded(
            postgres=database_url is None, redis=redis_url is None, servers=servers, root=LOCAL / "test", say=say
        ) if database_url is None or redis_url is None else {}  # fmt: skip
        env = {
            **os.environ,
            "DATABASE_URL": database_url or started["DATABASE_URL"],
            "REDIS_URL": redis_url or started["REDIS_URL"],
            # Hashing is not under test; MD5 keeps the thousands of sign-ins in the suite fast.
            "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
            # DEBUG stays off as in production, where the development key is refused: a key of the run's own
            # (config.testing makes one the same way when pytest runs without this script).
            "SECRET_KEY": os.environ.get("SECRET_KEY") or f"test-{secrets.token_urlsafe(40)}",
        }
        subprocess.run([python, "manage.py", "makemigrations", "--check", "--dry-run"], env=env, check=True)
        return subprocess.run([python, "-m", "pytest", "-q", *pytest_args], env=env).returncode
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130
    finally:
        stop_embedded(servers, say=say)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
