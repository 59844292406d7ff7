"""One rule for emails (UserManager.normalize_email), used by registration, sign-in, the admin and lookups."""

import pytest

from accounts.models import User
from accounts.services import user_register
from accounts.tests.factories import PASSWORD


def test_the_rule_lowercases_the_whole_address():
    assert User.objects.normalize_email("Ann.Lee@Example.COM") == "ann.lee@example.com"


@pytest.mark.django_db
def test_registration_stores_it_and_sign_in_finds_it_in_any_case(client):
    user = user_register(email="Ann.Lee@Example.COM", password=PASSWORD, name="Ann")

    assert user.email == "ann.lee@example.com"
    assert User.objects.get_by_natural_key("ANN.LEE@example.com") == user
    assert client.login(username="ann.LEE@EXAMPLE.com", password=PASSWORD)
