"""Sign-in guessing is locked out per account and per client address on every sign-in surface (accounts.lockout)."""

import time
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token"
PAGES = ["/accounts/login/", "/admin/login/"]
HONEST = "198.51.100.7"
GUESSER = "203.0.113.9"


def sign_in(email, password, address=HONEST, **headers):
    body = {"email": email, "password": password}
    return APIClient().post(TOKEN, body, format="json", REMOTE_ADDR=address, **headers)


def assert_locked(response) -> dict:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (429, "sign_in_locked")
    assert 1 <= int(response["Retry-After"]) <= 15 * 60
    return body


def page_sign_in(path, email, password, address=HONEST):
    client = Client()
    response = client.post(path, {"username": email, "password": password}, REMOTE_ADDR=address)
    return response, client


# --- the API token endpoint ---------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused(customer):
    statuses = [sign_in(customer.email, f"guess {i}", GUESSER).status_code for i in range(9)]
    tenth = sign_in(customer.email, "guess 9", GUESSER)
    right = sign_in(customer.email, PASSWORD, GUESSER)

    assert statuses == [401] * 9
    assert_locked(tenth)
    assert_locked(right)
    assert "access" not in right.json()


def test_a_locked_account_stays_locked_from_every_address(customer):
    for i in range(10):
        sign_in(customer.email, f"guess {i}", f"203.0.113.{i + 1}")  # a botnet, one guess per host

    assert_locked(sign_in(customer.email, PASSWORD, HONEST))


def test_the_count_ignores_the_case_of_the_email(customer):
    for i in range(10):
        sign_in(customer.email.upper() if i % 2 else customer.email, f"guess {i}", GUESSER)

    assert_locked(sign_in(customer.email, PASSWORD, GUESSER))


@override_settings(LOGIN_FAILURES_PER_ADDRESS=20)
def test_one_address_guessing_over_many_accounts_is_locked_out_but_not_those_accounts():
    victims = UserFactory.create_batch(20)
    for victim in victims:
        assert sign_in(victim.email, "Winter2026!", GUESSER).status_code in (401, 429)

    # the guessing address is locked, even with a right password
    assert_locked(sign_in(victims[0].email, PASSWORD, GUESSER))
    # each account saw one failure only: its owner, elsewhere, signs in
    assert sign_in(victims[0].email, PASSWORD, HONEST).status_code == 200


def test_forty_users_behind_one_address_sign_in_although_some_mistype_first():
    users = UserFactory.create_batch(40)

    for user in users[::2]:
        assert sign_in(user.email, "typo", HONEST).status_code == 401
    statuses = [sign_in(user.email, PASSWORD, HONEST).status_code for user in users]

    assert statuses == [200] * 40


def test_the_lockout_answer_does_not_tell_whether_the_account_exists(customer):
    for i in range(10):
        sign_in(customer.email, f"guess {i}", GUESSER)
        sign_in("nobody@example.com", f"guess {i}", GUESSER)

    existing = assert_locked(sign_in(customer.email, PASSWORD, GUESSER))
    missing = assert_locked(sign_in("nobody@example.com", PASSWORD, GUESSER))
    assert existing == missing


def test_a_wrong_password_and_an_unknown_account_answer_alike(customer):
    wrong = sign_in(customer.email, "not it")
    unknown = sign_in("nobody@example.com", "not it")

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers.get("WWW-Authenticate") == unknown.headers.get("WWW-Authenticate")


def test_an_email_spelled_like_an_address_does_not_count_against_that_address(customer):
    for i in range(12):
        sign_in(HONEST, f"guess {i}", GUESSER)

    assert sign_in(customer.email, PASSWORD, HONEST).status_code == 200


@override_settings(AXES_COOLOFF_TIME=timedelta(seconds=2))
def test_the_lockout_ends_with_its_window(customer):
    for i in range(10):
        sign_in(customer.email, f"guess {i}", GUESSER)
    assert_locked(sign_in(customer.email, PASSWORD, GUESSER))

    time.sleep(3)

    assert sign_in(customer.email, PASSWORD, GUESSER).status_code == 200


def test_a_huge_email_is_refused_without_a_server_error():
    assert sign_in("a" * 100_000 + "@example.com", "x").status_code == 401


# --- the client address: X-Forwarded-For is trusted only as far as TRUSTED_PROXY_COUNT says ---------


@override_settings(LOGIN_FAILURES_PER_ADDRESS=20)
def test_rotating_x_forwarded_for_does_not_escape_the_address_lockout():
    victims = UserFactory.create_batch(20)
    for i, victim in enumerate(victims):
        sign_in(victim.email, "Winter2026!", GUESSER, HTTP_X_FORWARDED_FOR=f"10.0.{i}.1")

    assert_locked(sign_in(victims[0].email, PASSWORD, GUESSER, HTTP_X_FORWARDED_FOR="10.9.9.9"))


@override_settings(LOGIN_FAILURES_PER_ADDRESS=20, TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_client_is_the_address_that_proxy_appended():
    # given our proxy (the TCP peer) appending the client's address to whatever the client sent
    proxy = "10.0.0.2"
    victims = UserFactory.create_batch(20)
    for i, victim in enumerate(victims):
        sign_in(victim.email, "Winter2026!", proxy, HTTP_X_FORWARDED_FOR=f"10.0.{i}.1, {GUESSER}")

    # then the guesser is locked out whatever they prepend, and another client behind the same proxy is not
    assert_locked(sign_in(victims[0].email, PASSWORD, proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {GUESSER}"))
    assert sign_in(victims[0].email, PASSWORD, proxy, HTTP_X_FORWARDED_FOR=HONEST).status_code == 200


# --- the sign-in pages: /accounts/login/ and the admin's --------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_sixty_wrong_passwords_on_a_sign_in_page_lock_it_and_the_right_one_is_refused(path):
    user = UserFactory(is_staff=True, is_superuser=True)

    statuses = [page_sign_in(path, user.email, f"guess {i}", GUESSER)[0].status_code for i in range(60)]
    response, client = page_sign_in(path, user.email, PASSWORD, GUESSER)

    assert statuses[:9] == [200] * 9  # the form again, with its error
    assert set(statuses[9:]) == {429}
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert 1 <= int(response["Retry-After"]) <= 15 * 60
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", PAGES)
def test_a_lockout_on_one_surface_holds_on_the_others(path, customer):
    customer.is_staff = True
    customer.save(update_fields=["is_staff"])
    for i in range(10):
        sign_in(customer.email, f"guess {i}", GUESSER)

    response, client = page_sign_in(path, customer.email, PASSWORD, HONEST)

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", PAGES)
def test_a_user_who_mistypes_a_few_times_signs_in_on_the_page(path):
    user = UserFactory(is_staff=True)
    for i in range(3):
        page_sign_in(path, user.email, f"typo {i}")

    response, client = page_sign_in(path, user.email, PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_the_schema_documents_the_sign_in_answers():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    responses = schema["paths"]["/api/v1/auth/token"]["post"]["responses"]
    success_ref = responses["200"]["content"]["application/json"]["schema"]["$ref"]
    success = schema["components"]["schemas"][success_ref.rsplit("/", 1)[1]]

    assert set(success["properties"]) == {"access", "refresh"}
    assert "sign_in_locked" in responses["429"]["description"]
    assert "Retry-After" in responses["429"]["headers"]
    assert "application/problem+json" in responses["429"]["content"]
    assert "exists" in responses["401"]["description"]
