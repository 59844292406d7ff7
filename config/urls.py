from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import ops

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("inventory.urls")),
    path("", include("orders.urls")),
    path("", include("delivery.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", ops.healthz),
    path("readyz", ops.readyz),
    path("metrics", ops.metrics),
    # Pages (tracking, customer login) and the admin's live map: before the admin, which 404s unknown paths.
    path("", include("tracking.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "common.problems.handler400"
handler403 = "common.problems.handler403"
handler404 = "common.problems.handler404"
handler500 = "common.problems.handler500"
