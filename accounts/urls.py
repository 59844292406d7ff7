from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/register", api.RegisterApi.as_view(), name="register"),
    path("auth/token", api.TokenApi.as_view(), name="token"),
    path("auth/token/refresh", api.TokenRefreshApi.as_view(), name="token-refresh"),
    path("me", api.MeApi.as_view(), name="me"),
]
