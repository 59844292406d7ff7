from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from common.errors import Conflict, Invalid


def user_register(*, email: str, password: str, name: str) -> User:
    email = User.objects.normalize_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict("An account with this email already exists.", code="email_taken")
    try:
        validate_password(password, user=User(email=email, name=name))
    except DjangoValidationError as exc:
        raise Invalid(" ".join(exc.messages), code="weak_password", field="password") from exc
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password, name=name)
    except IntegrityError as exc:  # lost a race with a concurrent registration of the same email
        raise Conflict("An account with this email already exists.", code="email_taken") from exc
