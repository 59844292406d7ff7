from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.services import user_register
from common.throttling import LoginRateThrottle


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

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenApi(TokenObtainPairView):
    throttle_classes = [LoginRateThrottle]


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
        return Response(self.OutputSerializer(request.user).data)
