"""One port for both protocols.

HTTP goes to Django's WSGI application through a2wsgi's thread-pool bridge: measured on this machine,
Django's own ASGI handler pays ~2 ms per sync view (every sync hop is a thread switch), the bridge
does not (see BENCHMARKS.md). WebSockets go to Channels.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
get_asgi_application()  # sets Django up before anything imports models

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from config.websocket import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_THREADS),
        "websocket": websocket_application,
    }
)
