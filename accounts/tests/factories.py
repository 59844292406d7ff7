"""Users for tests, and an API client signed in as one. Test code only: production never imports it."""

import factory
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tokens import access_token_for

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    # Hashed before the insert, so the stored user can sign in (and session logins stay valid).
    password = factory.django.Password(PASSWORD)


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")  # as sign-in issues it
    return client
