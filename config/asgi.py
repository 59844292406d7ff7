"""One port for both protocols.

HTTP goes to Django's WSGI application through a2wsgi's thread-pool bridge: measured on this machine,
Django's own ASGI handler pays ~2 ms per sync view (every sync hop is a thread switch), the bridge
does not (see BENCHMARKS.md). WebSockets go to Channels.
"""

import os
import sys

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

# uvicorn restarts a worker that dies, forever, but stops the whole web process when one exits with its
# startup-failure code: a misconfiguration (e.g. the development SECRET_KEY with DEBUG off) fails the same way on
# every restart, so the process refuses to start with the message instead of looping.
UVICORN_STARTUP_FAILURE = 3

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
try:
    get_asgi_application()  # sets Django up before anything imports models
except ImproperlyConfigured as exc:
    print(f"Refusing to start: {exc}", file=sys.stderr, flush=True)
    sys.exit(UVICORN_STARTUP_FAILURE)

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from common.wsgi import ChunkedBodyMiddleware  # noqa: E402
from config.websocket import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(ChunkedBodyMiddleware(get_wsgi_application()), workers=settings.WEB_THREADS),
        "websocket": websocket_application,
    }
)
