"""Stateless bearer authentication: the token's claims answer who calls; access ends within one token lifetime."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import TokenClaimsUser
from accounts.models import User
from accounts.tests.factories import PASSWORD, UserFactory
from accounts.tokens import access_token_for

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
ME = "/api/v1/me"
STORES = "/api/v1/stores"


def sign_in(user) -> dict:
    response = APIClient().post(TOKEN, {"email": user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def bearer(access: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {access}")


def user_row_reads(queries) -> list[str]:
    # A join to accounts_user (e.g. an order's driver name) is data; a read *from* it is the authentication's.
    return [q["sql"] for q in queries if 'FROM "accounts_user"' in q["sql"]]


def make_driver(user):
    # The driver profile is an upper app's model: reached through the app registry, not imported.
    return apps.get_model("delivery", "Driver").objects.create(user=user)


def test_sign_in_issues_an_access_token_with_the_claims_hot_views_need(customer):
    access = AccessToken(sign_in(customer)["access"])

    assert (access["user_id"], access["is_staff"], access["driver_id"]) == (str(customer.pk), False, None)


def test_a_drivers_token_names_the_driver_and_staff_tokens_say_staff(staff):
    driver = make_driver(staff)

    access = AccessToken(sign_in(staff)["access"])

    assert (access["is_staff"], access["driver_id"]) == (True, str(driver.pk))


def test_a_valid_token_reads_no_user_row_on_a_hot_endpoint(customer):
    client = bearer(sign_in(customer)["access"])

    with CaptureQueriesContext(connection) as queries:
        response = client.get(STORES)

    assert response.status_code == 200
    assert user_row_reads(queries) == []


def test_the_claims_user_passes_for_the_user_in_orm_lookups_and_assignments(customer, staff):
    user = TokenClaimsUser(access_token_for(customer))

    with CaptureQueriesContext(connection) as queries:
        found = User.objects.filter(pk__in=[customer.pk, staff.pk]).filter(email=customer.email).get()
        assert isinstance(user, User) and user == found and found == user and hash(user) == hash(found)
        assert list(User.objects.filter(pk=user.pk)) == [customer]
        assert (user.is_staff, user.driver_id, user.is_authenticated) == (False, None, True)

    assert len(queries) == 2  # the two lookups; the claims cost nothing
    assert user.name == customer.name  # anything else reads the row, once
    assert user.email == customer.email


def test_me_reads_the_row_so_it_tells_the_truth_of_now(customer):
    access = sign_in(customer)["access"]
    User.objects.filter(pk=customer.pk).update(name="Renamed", is_staff=True)

    body = bearer(access).get(ME).json()

    assert (body["name"], body["is_staff"]) == ("Renamed", True)


def test_refresh_issues_claims_of_now_not_copies_of_sign_in(customer):
    pair = sign_in(customer)
    User.objects.filter(pk=customer.pk).update(is_staff=True)
    driver = make_driver(customer)

    access = AccessToken(APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json").json()["access"])

    assert (access["is_staff"], access["driver_id"]) == (True, str(driver.pk))


def test_a_deactivated_user_loses_access_within_the_access_token_lifetime(customer):
    pair = sign_in(customer)
    User.objects.filter(pk=customer.pk).update(is_active=False)

    # Stateless on hot endpoints: the token in hand works until it expires (at most one lifetime) ...
    assert bearer(pair["access"]).get(STORES).status_code == 200
    # ... wherever the row is read it is refused at once, and no new access token is issued.
    assert bearer(pair["access"]).get(ME).status_code == 401
    refreshed = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 401 and refreshed.json()["code"] == "authentication_failed"
    # The same token one lifetime later (re-dated rather than slept on, so a loaded machine cannot race it).
    later = AccessToken(pair["access"])
    later.set_exp(from_time=later.current_time - later.lifetime - timedelta(seconds=1))

    expired = bearer(str(later)).get(STORES)

    assert expired.status_code == 401 and expired.json()["code"] == "invalid_token"


def test_a_deleted_users_refresh_token_is_401(customer):
    pair = sign_in(customer)
    User.objects.filter(pk=customer.pk).delete()

    response = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 401


def test_a_token_without_claims_falls_back_to_the_row(db):
    staff = UserFactory(is_staff=True)
    plain = AccessToken.for_user(staff)  # e.g. issued by a tool that knows nothing of our claims

    assert bearer(str(plain)).post(STORES, {}, format="json").status_code == 400  # staff-only; reached validation


def test_a_token_without_a_user_id_is_401():
    token = AccessToken()

    response = bearer(str(token)).get(STORES)

    assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
