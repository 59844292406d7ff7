"""The JWTs Courier issues, and the claims in them that spare hot endpoints a user-row read.

An access token carries, besides simplejwt's `user_id`, what the hot views ask of a user: `is_staff` and
`driver_id` (the caller's driver profile, or null). They are true when the token is issued: at sign-in, and
again at every refresh, which reads the user row and refuses an inactive user. So a change to a user (deactivated,
demoted, made a driver) reaches the tokens within one access-token lifetime (`JWT_ACCESS_MINUTES`, 15 by default).
"""

from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User

STAFF_CLAIM = "is_staff"
DRIVER_CLAIM = "driver_id"


def user_claims(user: User) -> dict:
    return {STAFF_CLAIM: user.is_staff, DRIVER_CLAIM: user.driver_id}


def with_claims(token: AccessToken, user: User) -> AccessToken:
    for claim, value in user_claims(user).items():
        token[claim] = value
    return token


def access_token_for(user: User) -> AccessToken:
    """An access token for `user` with the current claims (tests and tools; the API issues them below)."""
    return with_claims(AccessToken.for_user(user), user)


class CourierTokenObtainPairSerializer(TokenObtainPairSerializer):
    """Sign-in: the refresh token identifies the user; the access token made from it carries the claims."""

    @classmethod
    def get_token(cls, user):
        return RefreshToken.for_user(user)

    def validate(self, attrs):
        data = super().validate(attrs)
        data["access"] = str(with_claims(RefreshToken(data["refresh"]).access_token, self.user))
        return data


class CourierTokenRefreshSerializer(TokenRefreshSerializer):
    """Refresh re-reads the user: an inactive or deleted user gets no new access token (401), and the claims of
    the new one are the user's current ones, never copies of what was true at sign-in."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user = User.objects.filter(pk=refresh.payload.get(api_settings.USER_ID_CLAIM)).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        return {"access": str(with_claims(refresh.access_token, user))}
