"""WebSocket routing: the tracking app owns the consumers and the socket authentication (origin check,
session cookie, bearer JWT)."""

from channels.routing import URLRouter

from tracking.auth import websocket_auth_stack
from tracking.routing import websocket_urlpatterns

websocket_application = websocket_auth_stack(URLRouter(websocket_urlpatterns))
