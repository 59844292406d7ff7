"""The client's real address: one setting (TRUSTED_PROXY_COUNT) decides it for everything that counts per address.

`TRUSTED_PROXY_COUNT` is how many reverse proxies of ours stand in front of the web process. At 0 (the default)
clients connect directly and X-Forwarded-For is ignored, because anyone can send it. At N, each of our proxies
appends the address it saw, so the client is the N-th entry from the right (the last proxy is the TCP peer).
The same count drives DRF's throttles (REST_FRAMEWORK["NUM_PROXIES"]) and the sign-in lockout (this function,
through AXES_CLIENT_IP_CALLABLE); the web process runs uvicorn with --no-proxy-headers so that REMOTE_ADDR is
always the TCP peer and nothing else rewrites it.
"""

from django.conf import settings
from ipware import get_client_ip


def client_address(request) -> str:
    remote = request.META.get("REMOTE_ADDR") or ""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies == 0:
        return remote
    # ipware counts the proxies listed inside X-Forwarded-For; the last of ours is REMOTE_ADDR, not listed there.
    # Not strict: entries a client wrote before our first proxy may come first, and are never chosen.
    address, _ = get_client_ip(
        request, proxy_order="left-most", proxy_count=proxies - 1,
        request_header_order=["HTTP_X_FORWARDED_FOR"], strict=False,
    )  # fmt: skip
    return address or remote
