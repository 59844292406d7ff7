from rest_framework import throttling


class UserRateThrottle(throttling.UserRateThrottle):
    """Per signed-in user; anonymous callers fall through to AnonRateThrottle."""

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)


class AnonRateThrottle(throttling.AnonRateThrottle):
    pass


class LoginRateThrottle(throttling.SimpleRateThrottle):
    """Guess-proofing for the token endpoint: per client address, signed in or not."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
