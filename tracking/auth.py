"""Who is on the other end of a WebSocket, and whether the page that opened it may use the visitor's cookie.

Three ways in, tried in this order: the subprotocol pair `["bearer", <access JWT>]` (what the apps send: a
browser cannot set headers on a WebSocket), `?token=<access JWT>`, then the session cookie. A bad token
does not fall back to the cookie: the client meant the token, and gets 4401 for it.

Cross-site WebSocket hijacking: a browser sends the visitor's cookies with a handshake started by any
page, so a foreign page could otherwise watch the visitor's orders. Browsers always send `Origin` on a
WebSocket handshake; a handshake with a foreign Origin (or `null`) is refused outright: the Origin must equal
one of WEBSOCKET_ALLOWED_ORIGINS, scheme, host and port (not ALLOWED_HOSTS, whose `*` would switch the check
off), and the cookie is only honoured when an allowed Origin was sent at all. Tokens
need neither: a foreign page cannot read them, and native apps send no Origin.
"""

from urllib.parse import parse_qs, urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

BEARER = "bearer"


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def bearer_token(scope) -> str | None:
    """The JWT from `["bearer", token]` or `?token=`; None when the client sent neither."""
    subprotocols = scope.get("subprotocols") or []
    if BEARER in subprotocols:
        index = subprotocols.index(BEARER)
        return subprotocols[index + 1] if index + 1 < len(subprotocols) else ""
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("token")
    return values[0] if values else None


@database_sync_to_async
def _user_for_token(token: str):
    authentication = JWTAuthentication()
    try:
        return authentication.get_user(authentication.get_validated_token(token))
    except (InvalidToken, TokenError, AuthenticationFailed):
        return AnonymousUser()


class WebSocketAuthMiddleware:
    """Sets `scope["user"]` (AnonymousUser when unauthenticated) and `scope["auth"]` ("bearer", "session", None)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        token = bearer_token(scope)
        if token is not None:
            scope["user"], scope["auth"] = await _user_for_token(token), BEARER
        elif _header(scope, b"origin") is not None:
            # The origin validator in front of us already refused foreign origins.
            scope["user"], scope["auth"] = await get_user(scope), "session"
        else:
            scope["user"], scope["auth"] = AnonymousUser(), None
        return await self.application(scope, receive, send)


class SameSiteOriginValidator:
    """Refuses a handshake whose Origin is not exactly one of WEBSOCKET_ALLOWED_ORIGINS. A handshake without an
    Origin header passes: it cannot come from a browser page, and it is only ever authenticated by a token."""

    def __init__(self, application, allowed: list[str]):
        self.application = application
        self.allowed = {_normalised(origin) for origin in allowed} - {None}

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        if origin is not None and _normalised(origin.decode("latin1")) not in self.allowed:
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalised(origin: str) -> str | None:
    """`scheme://host:port` with the default port spelled out; None for `null` and anything unparsable."""
    try:
        parsed = urlsplit(origin.strip().lower())
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    except ValueError:
        return None
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname or parsed.path not in ("", "/"):
        return None
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{parsed.scheme}://{host}:{port}"


def allowed_origins() -> list[str]:
    return list(settings.WEBSOCKET_ALLOWED_ORIGINS) + list(settings.CSRF_TRUSTED_ORIGINS)


def websocket_auth_stack(application):
    """Origin check, cookies and session, then the user: wrap the WebSocket URL router in this."""
    return SameSiteOriginValidator(
        CookieMiddleware(SessionMiddleware(WebSocketAuthMiddleware(application))), allowed_origins()
    )
