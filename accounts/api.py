from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.authentication import TokenClaimsUser
from accounts.lockout import LOCKOUT_DOC, SignInLocked
from accounts.services import user_register
from accounts.tokens import CourierTokenObtainPairSerializer


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=128, trim_whitespace=False)
        name = serializers.CharField(max_length=150)

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        email = serializers.EmailField()
        name = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, 400: OpenApiResponse(description="Weak password, bad email, missing field"),
                   409: OpenApiResponse(description="`email_taken`")},
    )  # fmt: skip
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenApi(TokenObtainPairView):
    """Sign-in. Guessing is stopped by the lockout (accounts.lockout), which counts failures only; the throttles are
    the API's usual ones (anonymous requests per address), so THROTTLE_ENABLED=false turns them all off."""

    class OutputSerializer(serializers.Serializer):
        access = serializers.CharField()
        refresh = serializers.CharField()

    @extend_schema(
        request=CourierTokenObtainPairSerializer,
        responses={
            200: OutputSerializer,
            401: OpenApiResponse(description="`authentication_failed`: wrong email or password, or an inactive "
                                 "account. One answer for all, so it never tells whether an account exists."),
            429: OpenApiResponse(description=f"`sign_in_locked`: {LOCKOUT_DOC} `throttled`: too many requests "
                                 "from this address."),
        },
    )  # fmt: skip
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            # django-axes marks the request it was given: simplejwt hands it this DRF request.
            if getattr(request, "axes_locked_out", False):
                raise SignInLocked(retry_after=request.axes_retry_after)
            raise


class TokenRefreshApi(TokenRefreshView):
    pass


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        email = serializers.EmailField()
        name = serializers.CharField()
        is_staff = serializers.BooleanField()
        driver_id = serializers.SerializerMethodField()

        def get_driver_id(self, user) -> str | None:
            # The driver profile lives in an upper app; reading the reverse relation imports nothing of it.
            driver = getattr(user, "driver", None)
            return str(driver.pk) if driver else None

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        # The row, not the token's claims: /me tells what is true now, and refuses a deactivated user at once.
        user = request.user.row if isinstance(request.user, TokenClaimsUser) else request.user
        return Response(self.OutputSerializer(user).data)
