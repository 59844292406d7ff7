"""Safe to deploy: the development key is refused with DEBUG off, and the README's production settings pass
`manage.py check --deploy` and behave as documented behind a TLS-terminating proxy."""

import os
import re
import secrets
import subprocess
import sys

import httpx
import pytest
from django.conf import settings

from common.processes import ROOT, Process, free_port, procfile, wait_for_http

pytestmark = [pytest.mark.e2e]


def production_env() -> dict[str, str]:
    """The environment the README's "Production" section documents, with a real key for its placeholder."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- production-env[^>]*-->\s*```sh\n(.*?)```", readme, re.S).group(1)
    env = dict(line.split("=", 1) for line in block.splitlines() if line.strip())
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def clean_env(**change) -> dict[str, str]:
    """This process's environment less what the tests set for themselves, so the settings' defaults apply.
    (Process() lays os.environ under what it is given: a variable to unset there must be given explicitly.)"""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "HTTPS_ONLY"}}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", **change}


def manage(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(**production_env()))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_only_check_deploy_names_what_is_missing():
    env = {**production_env(), "HTTPS_ONLY": "0"}

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(**env))

    assert result.returncode != 0
    assert {"security.W004", "security.W008", "security.W012", "security.W016"} <= set(
        re.findall(r"security\.W\d+", result.stdout + result.stderr)
    )


def test_debug_off_refuses_the_development_key_with_a_clear_error():
    result = manage("check", env=clean_env(DEBUG="0"))

    assert result.returncode != 0
    assert "SECRET_KEY is the built-in development key" in result.stderr


def test_the_web_process_refuses_to_start_on_the_development_key(tmp_path):
    env = clean_env(DEBUG="0", SECRET_KEY=settings.DEVELOPMENT_SECRET_KEY, PORT=str(free_port()))
    web = Process("web", procfile()["web"].strip(), env, tmp_path)
    try:
        web.popen.wait(timeout=60)
    finally:
        web.stop()

    # Stopped for good (uvicorn's parent exits after a worker's startup failure), saying why.
    assert "Refusing to start: DEBUG is off but SECRET_KEY is the built-in development key" in web.log()


def test_debug_on_keeps_the_development_key_working_for_make_run():
    assert manage("check", env=clean_env(DEBUG="1")).returncode == 0


def test_behind_the_proxy_http_is_redirected_probes_are_not_and_https_gets_hsts_and_secure_cookies(tmp_path):
    port = free_port()
    env = clean_env(**{**production_env(), "ALLOWED_HOSTS": "127.0.0.1"}, PORT=str(port), WEB_CONCURRENCY="1")
    web = Process("web", procfile()["web"].strip(), env, tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        plain = http.get("/api/v1/me")
        probe = http.get("/readyz")
        https = http.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    finally:
        web.stop()

    assert plain.status_code == 301 and plain.headers["Location"] == f"https://127.0.0.1:{port}/api/v1/me"
    assert probe.status_code in {200, 503} and "Location" not in probe.headers
    assert https.status_code == 200
    assert https.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "Secure" in https.headers["Set-Cookie"]  # the CSRF cookie of the sign-in form
