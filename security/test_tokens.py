"""Forged, expired and misused JWTs are refused with 401 on every kind of endpoint (OWASP API2: broken authentication).

Each endpoint is checked because they do not all authenticate alike: most read the token's claims, the GPS ingest
trusts the token alone, and /me reads the user row."""

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from accounts.tokens import access_token_for
from delivery.tests.helpers import make_driver
from orders.models import Order

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/me"),
    ("get", "/api/v1/orders"),
    ("get", "/api/v1/drivers"),  # staff only: a forged is_staff claim must not open it
    ("post", "/api/v1/drivers/me/locations"),  # the token alone says who calls
]


def claims_of(token) -> dict:
    return jwt.decode(str(token), options={"verify_signature": False})


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims: dict) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def forged_tokens(user) -> dict[str, str]:
    claims = {**claims_of(access_token_for(user)), "is_staff": True}
    expired = access_token_for(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    return {
        "alg none": unsigned(claims),
        "alg none, upper case": f"{b64({'alg': 'NONE'})}.{b64(claims)}.",
        "wrong key": jwt.encode(claims, "not-the-secret-key-but-long-enough-for-hs256", algorithm="HS256"),
        "right key, other algorithm": jwt.encode(claims, settings.SECRET_KEY, algorithm="HS512"),
        "signature of another token": _with_signature_of(access_token_for(UserFactory()), claims),
        "expired": str(expired),
        "refresh token as access token": str(RefreshToken.for_user(user)),
    }


def _with_signature_of(token, claims: dict) -> str:
    header, _, signature = str(token).split(".")
    return f"{header}.{b64(claims)}.{signature}"


@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[p for _, p in ENDPOINTS])
@pytest.mark.parametrize(
    "kind",
    ["alg none", "alg none, upper case", "wrong key", "right key, other algorithm", "signature of another token",
     "expired", "refresh token as access token"],
)  # fmt: skip
def test_a_bad_token_is_401_everywhere(kind, method, path):
    driver = make_driver(at=None)
    token = forged_tokens(driver.user)[kind]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = getattr(client, method)(path, {"points": []} if method == "post" else None, format="json")

    assert response.status_code == 401, (kind, response.content)
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {"invalid_token", "authentication_failed"}


def test_a_forged_staff_claim_opens_nothing_and_writes_nothing(store, product):
    customer = UserFactory()
    claims = {**claims_of(access_token_for(customer)), "is_staff": True}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {unsigned(claims)}")

    store_created = client.post("/api/v1/stores", {"name": "x", "address": "y", "lat": 1, "lng": 1}, format="json")
    restocked = client.post(f"/api/v1/products/{product.pk}/restock", {"quantity": 5}, format="json")

    assert store_created.status_code == restocked.status_code == 401
    assert product.__class__.objects.get(pk=product.pk).on_hand == product.on_hand
    assert not Order.objects.exists()
