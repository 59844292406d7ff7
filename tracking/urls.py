from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("track/", views.order_list, name="orders"),
    path("track/<uuid:order_id>/", views.order_track, name="track"),
    # Before the admin's own URLs in config/urls.py: the admin answers 404 for any path it doesn't know.
    path("admin/live-map/", views.live_map, name="live_map"),
]
