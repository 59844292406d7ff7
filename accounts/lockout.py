"""Sign-in guessing is locked out per account and per client address (django-axes), on every sign-in surface.

django-axes sits in front of Django's `authenticate()`, which the API token endpoint, `/accounts/login/` and the
admin login all call: its backend refuses a locked-out attempt before the password is checked, and a failed
sign-in is counted through Django's `user_login_failed` signal. Only failures count, so any number of users may
sign in from one address (an office, a mobile carrier's NAT); guessing is stopped two ways:

- per account: `LOGIN_FAILURES_PER_ACCOUNT` failures (10) lock that email out, whatever addresses they came from
  (a botnet guessing one password);
- per address: `LOGIN_FAILURES_PER_ADDRESS` failures (50) lock that address out, whatever accounts they named
  (one host spraying a password over many accounts). It is higher than the account limit because many honest
  users can share an address and each may mistype.

Both count in a fixed window of `LOGIN_LOCKOUT_MINUTES` (15) from the first failure, in the Django cache (Redis),
and a lockout lasts until its window ends: an honest NAT's occasional typos never pile up for ever. A successful
sign-in clears nothing (a guesser could otherwise reset an address's count with an account of their own). The email
is counted as sign-in looks it up, so a locked-out answer is the same whether the account exists or not.
"""

from axes.backends import AxesStandaloneBackend
from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_cache_timeout, get_client_cache_keys, get_client_username
from axes.signals import user_locked_out
from django.conf import settings
from django.shortcuts import render

from accounts.models import User
from common.problems import Problem

ACCOUNT_PREFIX = "account:"
# For the API schema (the token endpoint's 429).
LOCKOUT_DOC = (
    "too many failed sign-ins for this account (LOGIN_FAILURES_PER_ACCOUNT, 10) or from this client address "
    "(LOGIN_FAILURES_PER_ADDRESS, 50) within LOGIN_LOCKOUT_MINUTES (15); every sign-in, with the right password "
    "too, answers this until `Retry-After` seconds have passed. The same answer whether the account exists or not."
)


class SignInLocked(Problem):
    status_code = 429
    default_code = "sign_in_locked"

    def __init__(self, retry_after: int):
        # One text for both reasons: naming the account as the reason would tell that it exists.
        super().__init__("Too many failed sign-ins for this account or from this address. Try again later.")
        self.wait = retry_after


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' backend, first in AUTHENTICATION_BACKENDS. Every sign-in surface passes its request; only code
    calls `authenticate()` without one (a test client's `login()`, a script), and there is no client to count, so it
    goes on to the password check instead of failing as axes' own backend does."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def lockout_username(request, credentials: dict | None) -> str:
    """The key an attempt counts against: the email as sign-in looks it up (`normalize_email`), whether or not
    such an account exists.

    The prefix keeps an "email" such as "203.0.113.7" from counting against that address."""
    credentials = credentials or {}
    email = credentials.get("email") or credentials.get("username")
    if email is None:
        data = getattr(request, "data", None) or request.POST
        email = data.get("email") or data.get("username") or ""
    return ACCOUNT_PREFIX + User.objects.normalize_email(str(email))


class AccountAndAddressHandler(AxesCacheHandler):
    """Axes' cache handler with a limit for each lockout parameter and fixed counting windows.

    Axes compares the larger of the per-parameter counts with one AXES_FAILURE_LIMIT; here the account's count is
    compared with LOGIN_FAILURES_PER_ACCOUNT and the address's with LOGIN_FAILURES_PER_ADDRESS. The keys follow
    AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"], in that order."""

    def _limits(self) -> tuple[int, int]:
        return settings.LOGIN_FAILURES_PER_ACCOUNT, settings.LOGIN_FAILURES_PER_ADDRESS

    def _locked_keys(self, request, credentials) -> list[str]:
        keys = get_client_cache_keys(request, credentials)
        return [key for key, limit in zip(keys, self._limits(), strict=True) if self.cache.get(key, 0) >= limit]

    def get_failures(self, request, credentials: dict | None = None) -> int:
        # Axes' own checks compare this with AXES_FAILURE_LIMIT (the account limit): scaled so the address's
        # count reaches it exactly when it reaches the address limit.
        by_account, by_address = (self.cache.get(key, 0) for key in get_client_cache_keys(request, credentials))
        per_account, per_address = self._limits()
        return max(by_account, by_address * per_account // per_address)

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return bool(self._locked_keys(request, credentials))

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None or self.is_whitelisted(request, credentials):
            return
        window = get_cache_timeout(request)
        for key in get_client_cache_keys(request, credentials):
            # add() starts a window; incr() keeps its expiry, so the window is fixed from the first failure.
            if not self.cache.add(key, 1, timeout=window):
                self.cache.incr(key)
        locked = self._locked_keys(request, credentials)
        if locked:
            request.axes_locked_out = True
            request.axes_credentials = credentials
            request.axes_retry_after = max(self.cache.ttl(key) or 1 for key in locked)
            user_locked_out.send(
                "axes", request=request, username=get_client_username(request, credentials),
                ip_address=request.axes_ip_address,
            )  # fmt: skip


def lockout_page(request, original_response=None, credentials=None):
    """What the sign-in pages (`/accounts/login/`, the admin) answer while locked out (AXES_LOCKOUT_CALLABLE)."""
    retry_after = getattr(request, "axes_retry_after", None) or int(get_cache_timeout(request) or 60)
    # Rendered now: the middleware that calls this runs after the template responses were rendered.
    response = render(request, "accounts/locked_out.html", {"minutes": max(1, round(retry_after / 60))}, status=429)
    response["Retry-After"] = str(retry_after)
    return response
