"""Who is on the other end of a WebSocket, and whether the page that opened it may use the visitor's cookie.

Three ways in, tried in this order: the subprotocol pair `["bearer", <access JWT>]` (what the apps send: a
browser cannot set headers on a WebSocket), `?token=<access JWT>`, then the session cookie. A bad token
does not fall back to the cookie: the client meant the token, and gets 4401 for it.

Cross-site WebSocket hijacking: a browser sends the visitor's cookies with a handshake started by any
page, so a foreign page could otherwise watch the visitor's orders. Browsers always send `Origin` on a
WebSocket handshake; a handshake with a foreign Origin is refused outright (Channels' origin validator
against ALLOWED_HOSTS), and the cookie is only honoured when an allowed Origin was sent at all. Tokens
need neither: a foreign page cannot read them, and native apps send no Origin.
"""

from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
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


class SameSiteOriginValidator(OriginValidator):
    """Channels' origin check against ALLOWED_HOSTS, except that a handshake without an Origin header passes:
    it cannot come from a browser page, and it is only ever authenticated by a token (see above)."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or self.validate_origin(parsed_origin)


def allowed_origins() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts + list(settings.CSRF_TRUSTED_ORIGINS)


def websocket_auth_stack(application):
    """Origin check, cookies and session, then the user: wrap the WebSocket URL router in this."""
    return SameSiteOriginValidator(
        CookieMiddleware(SessionMiddleware(WebSocketAuthMiddleware(application))), allowed_origins()
    )
