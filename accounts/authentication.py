"""Bearer-JWT authentication without a user-row read per request.

`ClaimsJWTAuthentication` checks the token's signature and expiry and trusts its claims (`accounts.tokens`):
`request.user` is a `TokenClaimsUser` that answers `pk`/`id`, `is_staff` and `driver_id` from the token and
reads the user row only when a view asks for anything else (`email`, `name`, a reverse relation, ...), once per
request. Hot endpoints (placing an order, GPS points, reading an order) therefore cost no user query.

Losing access: tokens are only issued to active users (sign-in and refresh both check), and an access token
lives `JWT_ACCESS_MINUTES` (15). A deactivated user keeps a token already in hand until it expires, then cannot
get another: access ends within one access-token lifetime. Wherever the row is read anyway (e.g. `/api/v1/me`),
an inactive or deleted user is refused at once with 401.

The object passes for a `User` (`isinstance`, ORM filters and foreign-key assignment take it as one, by its
pk) so views written for session users keep working; `TokenClaimsUser.row` is the real model instance.
"""

from functools import cached_property

from django.db import DEFAULT_DB_ALIAS
from django.db.models.base import ModelState
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings

from accounts.models import User
from accounts.tokens import DRIVER_CLAIM, STAFF_CLAIM

_MISSING = object()


class TokenClaimsUser:
    """The signed-in user as the access token describes it; the row is read lazily (see the module docstring)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True  # only active users get tokens; `row` re-checks whenever it is read
    _meta = User._meta

    def __init__(self, token):
        self.token = token
        self.pk = self.id = User._meta.pk.to_python(token[api_settings.USER_ID_CLAIM])
        # Foreign-key assignment and ORM lookups look at the instance's state, never at the row.
        self._state = ModelState()
        self._state.db, self._state.adding = DEFAULT_DB_ALIAS, False

    @property
    def __class__(self):  # isinstance(user, User) holds, as for a session user
        return User

    @cached_property
    def row(self) -> User:
        user = User.objects.filter(pk=self.pk, is_active=True).first()
        if user is None:
            raise AuthenticationFailed("The user of this token is inactive or deleted.", code="user_inactive")
        return user

    @property
    def is_staff(self) -> bool:
        claim = self.token.get(STAFF_CLAIM, _MISSING)
        return self.row.is_staff if claim is _MISSING else bool(claim)

    @property
    def driver_id(self) -> str | None:
        """The caller's driver id as of the token's issue (null: not a driver then); tokens without the claim
        (issued by another tool) fall back to the row."""
        claim = self.token.get(DRIVER_CLAIM, _MISSING)
        return self.row.driver_id if claim is _MISSING else claim

    def __getattr__(self, name):  # anything the claims do not answer comes from the row
        if name.startswith("__") or name in ("row", "token"):
            raise AttributeError(name)
        return getattr(self.row, name)

    def __eq__(self, other):
        return isinstance(other, User) and other.pk == self.pk

    def __hash__(self):
        return hash(self.pk)

    def __str__(self):
        return f"user {self.pk}"


class ClaimsJWTAuthentication(JWTAuthentication):
    """simplejwt's bearer authentication, with the user taken from the token's claims instead of the database."""

    def get_user(self, validated_token):
        if api_settings.USER_ID_CLAIM not in validated_token:
            raise AuthenticationFailed("Token contained no recognizable user identification.", code="token_not_valid")
        return TokenClaimsUser(validated_token)


class ClaimsJWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme: the same bearer JWT as simplejwt's."""

    target_class = ClaimsJWTAuthentication
    name = "jwtAuth"
