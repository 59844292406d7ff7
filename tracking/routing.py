from django.urls import path, re_path

from tracking import consumers

# `<str:...>` rather than `<uuid:...>`: a malformed id must reach the consumer and get 4404, not a routing error.
websocket_urlpatterns = [
    path("ws/orders/<str:order_id>/", consumers.OrderConsumer.as_asgi()),
    path("ws/fleet/", consumers.FleetConsumer.as_asgi()),
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),  # last: any other path gets 4404, not a 500
]
