"""WebSocket routing: the tracking app owns the consumers."""

from channels.routing import URLRouter

websocket_urlpatterns = []
websocket_application = URLRouter(websocket_urlpatterns)
