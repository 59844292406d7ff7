"""Sign-in through the real web process, where settings such as THROTTLE_ENABLED are read at start-up."""

import httpx
import pytest

from accounts.tests.factories import PASSWORD, UserFactory


@pytest.mark.e2e
def test_throttle_enabled_false_lets_forty_users_sign_in_from_one_address(start_process):
    # given 40 users and a web process started with THROTTLE_ENABLED=false (the stack's test environment)
    users = UserFactory.create_batch(40)
    web = start_process("web", WEB_CONCURRENCY="1")

    # when all of them sign in from the same address within a minute
    with httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=10) as client:
        statuses = [
            client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD}).status_code
            for user in users
        ]

    # then none is throttled: the setting turns every throttle off, the login scope included
    assert statuses == [200] * 40


@pytest.mark.e2e
def test_rotating_x_forwarded_for_through_the_web_process_escapes_neither_throttle_nor_lockout(start_process):
    # given the web process as deployed without a proxy (TRUSTED_PROXY_COUNT=0), throttles on, low limits
    victims = UserFactory.create_batch(6)
    web = start_process(
        "web", WEB_CONCURRENCY="1", THROTTLE_ENABLED="true", THROTTLE_ANON_RATE="8/min", LOGIN_FAILURES_PER_ADDRESS="5"
    )  # fmt: skip

    with httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=10) as client:
        # when one client guesses a password over many accounts, claiming a new address each time
        guesses = [
            client.post(
                "/api/v1/auth/token",
                json={"email": victim.email, "password": "Winter2026!"},
                headers={"X-Forwarded-For": f"10.0.{i}.1"},
            )  # fmt: skip
            for i, victim in enumerate(victims[:5])
        ]
        right = client.post("/api/v1/auth/token", json={"email": victims[5].email, "password": PASSWORD},
                            headers={"X-Forwarded-For": "10.9.9.9"})  # fmt: skip
        # and keeps calling anonymously with yet more invented addresses
        more = [
            client.post("/api/v1/auth/register", json={}, headers={"X-Forwarded-For": f"10.1.{i}.1"}) for i in range(4)
        ]

    # then its real address was locked out after the 5th failure, and throttled after 8 anonymous requests
    assert [r.status_code for r in guesses] == [401] * 4 + [429]
    assert (right.status_code, right.json()["code"]) == (429, "sign_in_locked")
    assert [r.status_code for r in more][-2:] == [429, 429]
    assert more[-1].json()["code"] == "throttled"
