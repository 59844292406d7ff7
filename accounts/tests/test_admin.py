import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
NEW_PASSWORD = "a sturdy passphrase 42"


def test_user_changelist_with_search_and_filters(admin_client, customer):
    for query in ["", f"?q={customer.email}", "?q=Cora", "?is_staff__exact=1", "?is_active__exact=0", "?o=1"]:
        assert admin_client.get(USERS + query).status_code == 200, query
    assert customer.email in admin_client.get(f"{USERS}?q=cora").content.decode()


def test_add_user_with_email_and_password(admin_client):
    assert admin_client.get(f"{USERS}add/").status_code == 200

    response = admin_client.post(
        f"{USERS}add/",
        {"email": "New.Rider@Example.COM", "name": "New Rider", "usable_password": "true",
         "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )  # fmt: skip

    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(name="New Rider")
    assert user.email == "new.rider@example.com"  # stored lowercased, like a registration
    assert not user.is_staff
    token = APIClient().post(
        "/api/v1/auth/token", {"email": "new.rider@example.com", "password": NEW_PASSWORD}, format="json"
    )
    assert token.status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"email": "CORA@example.com"},  # taken, in another case
        {"email": "not-an-email"},
        {"name": ""},
        {"password2": "something else entirely"},
        {"password1": "123", "password2": "123"},
    ],
    ids=str,
)
def test_add_user_refuses_bad_input(admin_client, change):
    UserFactory(email="cora@example.com")
    data = {"email": "fresh@example.com", "name": "Fresh", "usable_password": "true", "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD, **change}  # fmt: skip

    response = admin_client.post(f"{USERS}add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert User.objects.count() == 2  # the admin and cora


def test_change_user_makes_staff_and_normalizes_email(admin_client, customer):
    assert admin_client.get(f"{USERS}{customer.pk}/change/").status_code == 200

    response = admin_client.post(
        f"{USERS}{customer.pk}/change/",
        {"email": "Cora.New@Example.com", "name": "Cora", "is_active": "on", "is_staff": "on",
         "last_login_0": "", "last_login_1": "", "date_joined_0": "2026-01-01", "date_joined_1": "10:00:00"},
    )  # fmt: skip

    assert response.status_code == 302, response.context["adminform"].form.errors
    customer.refresh_from_db()
    assert (customer.email, customer.name, customer.is_staff) == ("cora.new@example.com", "Cora", True)


def test_change_password_page(admin_client, customer):
    url = f"{USERS}{customer.pk}/password/"
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.check_password(NEW_PASSWORD)


def test_staff_sign_in_to_the_admin_with_their_email():
    UserFactory(email="ops@example.com", is_staff=True, is_superuser=True, password=NEW_PASSWORD)
    client = Client()

    response = client.post("/admin/login/?next=/admin/", {"username": "OPS@example.com", "password": NEW_PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_customers_cannot_sign_in_to_the_admin(customer):
    client = Client()

    response = client.post("/admin/login/", {"username": customer.email, "password": "correct horse battery staple"})

    assert response.status_code == 200  # the login form again
    assert client.get("/admin/").status_code == 302
