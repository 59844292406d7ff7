import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import PASSWORD, UserFactory, bearer_client

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
ME = "/api/v1/me"
GOOD = {"email": "ada@example.com", "password": "a sturdy passphrase 42", "name": "Ada"}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].startswith("https://") and body["title"] and "detail" in body
    return body


def fields(body) -> set[str]:
    return {e["field"] for e in body["errors"]}


# --- register -------------------------------------------------------------------------------------


def test_register_creates_a_customer_who_can_sign_in():
    response = APIClient().post(REGISTER, {**GOOD, "email": "  Ada@Example.COM "}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == {"id": body["id"], "email": "ada@example.com", "name": "Ada"}
    user = User.objects.get()
    assert (str(user.pk), user.is_staff, user.is_superuser) == (body["id"], False, False)
    token = APIClient().post(TOKEN, {"email": "ada@example.com", "password": GOOD["password"]}, format="json")
    assert token.status_code == 200


@pytest.mark.parametrize(
    "password",
    ["short1", "password123", "12345678901234", "ada@example.com", "adaexample", " " * 8, " \t" * 10, "abab" * 5],
    ids=repr,
)
def test_register_refuses_a_weak_password(password):
    response = APIClient().post(REGISTER, {**GOOD, "password": password}, format="json")

    body = problem(response, 400, "validation_error")
    assert fields(body) == {"password"}
    assert not User.objects.exists()


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@b.com", "a b@c.com", "", "x" * 250 + "@e.com", 123])
def test_register_refuses_a_bad_email(email):
    response = APIClient().post(REGISTER, {**GOOD, "email": email}, format="json")

    body = problem(response, 400, "validation_error")
    assert fields(body) == {"email"}
    assert not User.objects.exists()


@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@example.com", "Taken@Example.Com"])
def test_register_with_a_taken_email_is_409(email):
    UserFactory(email="taken@example.com")

    response = APIClient().post(REGISTER, {**GOOD, "email": email}, format="json")

    problem(response, 409, "email_taken")
    assert User.objects.count() == 1


@pytest.mark.parametrize("missing", ["email", "password", "name"])
def test_register_refuses_missing_fields(missing):
    body = {k: v for k, v in GOOD.items() if k != missing}

    response = APIClient().post(REGISTER, body, format="json")

    errors = problem(response, 400, "validation_error")["errors"]
    assert errors == [{"field": missing, "message": "This field is required.", "code": "required"}]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "change",
    [{"name": {"a": 1}}, {"name": ["Ada"]}, {"password": None}, {"email": True}, {"name": ""}, {"name": "x" * 151}],
    ids=str,
)
def test_register_refuses_wrong_types(change):
    response = APIClient().post(REGISTER, {**GOOD, **change}, format="json")

    body = problem(response, 400, "validation_error")
    assert fields(body) == set(change)
    assert not User.objects.exists()


@pytest.mark.parametrize("raw", ["[]", "null", '"text"', "42", "{", '{"email": "a@b.c",}', ""], ids=repr)
def test_register_refuses_a_body_that_is_not_an_object(raw):
    response = APIClient().post(REGISTER, raw, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {"validation_error", "malformed_request"}
    assert not User.objects.exists()


def test_register_refuses_a_form_encoded_body():
    response = APIClient().post(REGISTER, GOOD)  # multipart: the API speaks JSON only

    problem(response, 415, "unsupported_media_type")


def test_register_refuses_get():
    problem(APIClient().get(REGISTER), 405, "method_not_allowed")


# --- token ----------------------------------------------------------------------------------------


def test_token_pair_for_the_right_password_in_any_case(customer):
    response = APIClient().post(TOKEN, {"email": customer.email.upper(), "password": PASSWORD}, format="json")

    assert response.status_code == 200, response.json()
    assert set(response.json()) == {"access", "refresh"}
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}").get(ME)
    assert me.json()["id"] == str(customer.pk)


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "user-does-not-exist@example.com", "password": PASSWORD},
        {"email": "WRONG", "password": "nope"},
    ],
)
def test_token_with_wrong_credentials_is_401(customer, credentials):
    response = APIClient().post(TOKEN, credentials, format="json")

    problem(response, 401, "authentication_failed")


def test_token_with_a_wrong_password_is_401(customer):
    response = APIClient().post(TOKEN, {"email": customer.email, "password": "wrong password"}, format="json")

    problem(response, 401, "authentication_failed")


def test_token_for_a_deactivated_user_is_401(customer):
    customer.is_active = False
    customer.save(update_fields=["is_active"])

    response = APIClient().post(TOKEN, {"email": customer.email, "password": PASSWORD}, format="json")

    problem(response, 401, "authentication_failed")


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"password": "x"}, {"email": None, "password": 1}])
def test_token_with_missing_fields_is_400(body):
    response = APIClient().post(TOKEN, body, format="json")

    problem(response, 400, "validation_error")


# --- refresh --------------------------------------------------------------------------------------


def test_refresh_gives_a_new_access_token(customer):
    pair = APIClient().post(TOKEN, {"email": customer.email, "password": PASSWORD}, format="json").json()

    response = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"access"}
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}").get(ME).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""], ids=repr)
def test_refresh_with_a_bad_token(token):
    response = APIClient().post(REFRESH, {"refresh": token}, format="json")

    assert response.status_code in (400, 401)
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == ("validation_error" if token == "" else "invalid_token")


def test_refresh_with_an_access_token_is_401(customer):
    pair = APIClient().post(TOKEN, {"email": customer.email, "password": PASSWORD}, format="json").json()

    response = APIClient().post(REFRESH, {"refresh": pair["access"]}, format="json")

    problem(response, 401, "invalid_token")


def test_refresh_without_a_token_is_400():
    body = problem(APIClient().post(REFRESH, {}, format="json"), 400, "validation_error")
    assert fields(body) == {"refresh"}


# --- me -------------------------------------------------------------------------------------------


def test_me_for_a_customer_has_no_driver_id(customer, customer_api):
    response = customer_api.get(ME)

    assert response.status_code == 200
    assert response.json() == {
        "id": str(customer.pk), "email": customer.email, "name": "Cora Customer", "is_staff": False, "driver_id": None,
    }  # fmt: skip


def test_me_for_staff(staff_api):
    assert staff_api.get(ME).json()["is_staff"] is True


def test_me_without_credentials_is_401():
    response = APIClient().get(ME)

    problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer"])
def test_me_with_a_bad_token_is_401(header):
    response = APIClient(HTTP_AUTHORIZATION=header).get(ME)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {"invalid_token", "authentication_failed", "not_authenticated"}


def test_me_with_the_token_of_a_deleted_user_is_401(customer):
    client = bearer_client(customer)
    customer.is_active = False
    customer.save(update_fields=["is_active"])

    response = client.get(ME)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
