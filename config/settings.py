"""Courier settings. Everything that differs between machines comes from the environment.

`.env` is read when present; `.env.example` lists every variable with its default.
"""

from datetime import timedelta
from pathlib import Path

import environ
import xstatic.pkg.leaflet
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError

from common.redis_asyncio import CancellableConnection, channel_layer_prefix

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

# Public, in this file: fine for `make run` and the tests, fatal anywhere else. With DEBUG off the process refuses it.
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdef"
SECRET_KEY = env("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is the built-in development key, which anyone can read in config/settings.py "
        "and use to forge sessions and tokens. Set SECRET_KEY to a long random value (python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))'), or DEBUG=1 on a development machine."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Page origins whose WebSocket handshakes may use the visitor's session cookie, compared exactly (scheme, host,
# port); `null` never matches. Not ALLOWED_HOSTS: `*` there must not switch the check off. Unset: every explicit
# ALLOWED_HOSTS name over http and https, on the default port and on $PORT (what `make run` serves).
WEBSOCKET_ALLOWED_ORIGINS = env.list(
    "WEBSOCKET_ALLOWED_ORIGINS",
    default=[
        f"{scheme}://{host}{port}"
        for host in ALLOWED_HOSTS
        if host != "*" and not host.startswith(".")
        for scheme in ("http", "https")
        for port in ("", f":{env.int('PORT', default=8000)}")
    ],
)
# Sockets one user may hold at once (across web processes), and the largest frame a client may send.
WEBSOCKET_MAX_SOCKETS_PER_USER = env.int("WEBSOCKET_MAX_SOCKETS_PER_USER", default=100)
WEBSOCKET_MAX_MESSAGE_BYTES = env.int("WEBSOCKET_MAX_MESSAGE_BYTES", default=4096)
# A web process renews its claim on the sockets it counts every third of this; once a crashed process's lease runs
# out, its sockets stop counting against their users' cap (delivery/hot.py).
WEBSOCKET_PROCESS_LEASE_SECONDS = env.float("WEBSOCKET_PROCESS_LEASE_SECONDS", default=30.0)
CSRF_FAILURE_VIEW = "common.problems.csrf_failure"

# --- HTTPS behind a TLS-terminating proxy (production; README "Production") ------------------------
# The web process speaks plain HTTP; the proxy in front terminates TLS. HTTPS_ONLY=1 turns on everything that
# follows; each can be set on its own too.
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=False)
# Trust the proxy's X-Forwarded-Proto to tell HTTPS requests apart. Only behind a proxy that sets (overwrites) it:
# otherwise any client could claim HTTPS.
TRUST_X_FORWARDED_PROTO = env.bool("TRUST_X_FORWARDED_PROTO", default=HTTPS_ONLY)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUST_X_FORWARDED_PROTO else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS_ONLY)
# Probes of the load balancer and Prometheus come over plain HTTP from inside; they are never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=HTTPS_ONLY)
# HSTS: browsers refuse plain HTTP for this long. Include subdomains and preload only when every subdomain is HTTPS.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS_ONLY)

INSTALLED_APPS = [
    "daphne",  # serves `runserver` (HTTP + WebSocket) in development
    "tracking.apps.CourierAdminConfig",  # django.contrib.admin with Courier's site (tracking/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: /api/docs/ works offline
    "channels",
    "axes",
    "accounts",
    "inventory",
    "orders",
    "delivery",
    "tracking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.middleware.BodySizeLimitMiddleware",
    "common.middleware.DependencyOutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a sign-in page's lockout into the lockout page (accounts.lockout); last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/courier")}
# Persistent connections: every request would otherwise pay a fresh PostgreSQL handshake (~3 ms here).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
# Before each request's first query a persistent connection is checked, so one broken by a PostgreSQL restart is
# replaced before it fails a request. Django's check is a `SELECT 1` round trip; ours reads the socket's state
# from the kernel instead (common/postgresql/base.py). Off, the first request per connection after a restart
# fails (503) and the connection is replaced after it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "common.postgresql"
# A database that does not answer the handshake fails the request in seconds (503), never hangs a thread.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DB_CONNECT_TIMEOUT_SECONDS", default=3)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Every Redis call is bounded: a hung Redis (SIGSTOP, a full network queue) must cost a request this
# long, never a thread forever.
REDIS_SOCKET_TIMEOUT_SECONDS = env.float("REDIS_SOCKET_TIMEOUT_SECONDS", default=2.0)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env("CACHE_URL", default=REDIS_URL),
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT_SECONDS,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT_SECONDS,
        },
    }
}
# The channel layer that carries live messages to sockets (BENCHMARKS.md, "Live tracking"): "pubsub" publishes a
# group message once and fans it out in each web process's memory; "redis" (channels-redis' default layer) pushes
# a copy per socket into Redis and each socket pops its own back, but buffers a socket's messages for `expiry`.
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="pubsub")
_CHANNEL_LAYER_HOST = {
    "address": REDIS_URL,
    # Above channels-redis' 5 s blocking pop: redis-py 8 defaults to 5 s too, so under load the pop's own empty
    # answer arrived "late", raised TimeoutError and killed the socket (seen in bench-tracking).
    "socket_timeout": 15,
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
    # A closing socket's receive() must end when cancelled (Python 3.11's wait_for loses it).
    "connection_class": CancellableConnection,
    # After a Redis restart a pooled connection's first command fails: reconnect (re-subscribing) and send it
    # once more, instead of dropping that live message or leaving the subscriptions behind.
    "retry_on_error": [RedisConnectionError],
}
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default=channel_layer_prefix(REDIS_URL))
CHANNEL_LAYER_CHOICES = {
    "pubsub": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
               "CONFIG": {"hosts": [_CHANNEL_LAYER_HOST], "prefix": CHANNEL_LAYER_PREFIX}},
    "redis": {"BACKEND": "channels_redis.core.RedisChannelLayer",
              "CONFIG": {"hosts": [_CHANNEL_LAYER_HOST], "prefix": CHANNEL_LAYER_PREFIX, "capacity": 1000,
                         "expiry": 30}},
}  # fmt: skip
CHANNEL_LAYERS = {"default": CHANNEL_LAYER_CHOICES[CHANNEL_LAYER], **CHANNEL_LAYER_CHOICES}

# --- Celery: at-least-once delivery; every task is safe to run twice ---------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the task's database connections before and after every task unless this is set,
# and then only every 2 x this many tasks: 1,507 new PostgreSQL sessions for 2,000 paid orders, ~8 ms of machine
# CPU per order (BENCHMARKS.md). Connections are kept as Django keeps them around requests (config/celery.py).
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacked message of a dead worker comes back after this; the sweeper re-drives sooner.
# Socket timeouts bound a publish to a hung Redis (the worker's blocking pop waits 1 s, well inside them).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS + 3,
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_SOCKET_TIMEOUT_SECONDS
# A publish to an unreachable broker gives up after ~1 s of retries: the outbox keeps the event for the sweeper.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
CELERY_TASK_ALWAYS_EAGER = False
DISPATCH_SWEEP_SECONDS = env.float("DISPATCH_SWEEP_SECONDS", 5.0)
CELERY_BEAT_SCHEDULE = {
    "orders-sweep": {"task": "orders.tasks.orders_sweep_task", "schedule": env.float("SWEEP_INTERVAL_SECONDS", 10.0)},
    "dispatch-sweep": {"task": "delivery.tasks.dispatch_sweep_task", "schedule": DISPATCH_SWEEP_SECONDS},
    "positions-prune": {
        "task": "delivery.tasks.positions_prune_task",
        "schedule": env.float("POSITIONS_PRUNE_INTERVAL_SECONDS", 3600.0),
    },
}

# --- Auth --------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.validators.DistinctCharactersValidator"},
]
PASSWORD_HASHERS = env.list(
    "PASSWORD_HASHERS",
    default=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
)
LOGIN_URL = "/accounts/login/"
# After sign-in without a (safe) `next`: the landing page, which links every place a user may go.
LOGIN_REDIRECT_URL = "/"
# django-axes refuses locked-out sign-ins before the password is checked (accounts.lockout); then Django's own.
AUTHENTICATION_BACKENDS = ["accounts.lockout.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]
# Reverse proxies of ours in front of the web process: decides the client address for every per-address count
# (throttles, sign-in lockout). 0 = clients connect directly and X-Forwarded-For is ignored (common.addresses).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Failed sign-ins before a lockout, counted per account and per client address in a window (accounts.lockout).
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=10)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=50)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AXES_HANDLER = "accounts.lockout.AccountAndAddressHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # this order: accounts.lockout reads the counts so
AXES_FAILURE_LIMIT = LOGIN_FAILURES_PER_ACCOUNT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_CLIENT_IP_CALLABLE = "common.addresses.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_page"
AXES_ENABLE_ADMIN = False  # the counts live in the cache; axes' admin shows database records only
AXES_VERBOSE = False
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # Access tokens carry the claims hot endpoints need (accounts.tokens); refresh re-reads the user.
    "TOKEN_OBTAIN_SERIALIZER": "accounts.tokens.CourierTokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.tokens.CourierTokenRefreshSerializer",
}

# --- API ---------------------------------------------------------------------------------------
THROTTLE_ENABLED = env.bool("THROTTLE_ENABLED", default=True)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # No user-row read per request: the token's claims answer who calls (accounts.authentication).
        "accounts.authentication.ClaimsJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "common.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": (
        ["common.throttling.UserRateThrottle", "common.throttling.AnonRateThrottle"] if THROTTLE_ENABLED else []
    ),
    "DEFAULT_THROTTLE_RATES": {
        "user": env("THROTTLE_USER_RATE", default="1200/min"),
        "anon": env("THROTTLE_ANON_RATE", default="120/min"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Courier API",
    "DESCRIPTION": "Orders that never oversell, a crash-safe payment saga, dispatch and live tracking.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the pinned drf-spectacular-sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Requests larger than this answer 413 before any view runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", default=256 * 1024)

# --- Domain knobs ------------------------------------------------------------------------------
DISPATCH_RADIUS_KM = env.float("DISPATCH_RADIUS_KM", default=15.0)
DISPATCH_TIMEOUT_SECONDS = env.int("DISPATCH_TIMEOUT_SECONDS", default=600)
# A waiting order is retried with exponential backoff from BASE up to MAX seconds between attempts.
DISPATCH_RETRY_BASE_SECONDS = env.float("DISPATCH_RETRY_BASE_SECONDS", default=1.0)
DISPATCH_RETRY_MAX_SECONDS = env.float("DISPATCH_RETRY_MAX_SECONDS", default=15.0)
# ETA speed when a rider's recent speed is unknown (m/s; 5 m/s = 18 km/h, city cycling).
DISPATCH_DEFAULT_SPEED_MPS = env.float("DISPATCH_DEFAULT_SPEED_MPS", default=5.0)
# A live position expires this long after it was recorded; an expired driver is no dispatch candidate.
POSITION_TTL_SECONDS = env.int("POSITION_TTL_SECONDS", default=120)
POSITION_HISTORY_RETENTION_DAYS = env.int("POSITION_HISTORY_RETENTION_DAYS", default=30)
# Approximate cap of the `location_events` Redis stream (entries).
LOCATION_STREAM_MAXLEN = env.int("LOCATION_STREAM_MAXLEN", default=1_000_000)
PAYMENT_GATEWAY = env("PAYMENT_GATEWAY", default="sandbox.gateway.MockGateway")
# The sandbox gateway keeps its books in a table of its own app; on a real gateway neither exists.
if PAYMENT_GATEWAY.startswith("sandbox."):
    INSTALLED_APPS.append("sandbox")
PAYMENT_TIMEOUT_SECONDS = env.float("PAYMENT_TIMEOUT_SECONDS", default=5.0)
PAYMENT_MAX_ATTEMPTS = env.int("PAYMENT_MAX_ATTEMPTS", default=5)
PAYMENT_RETRY_BASE_SECONDS = env.float("PAYMENT_RETRY_BASE_SECONDS", default=1.0)
PAYMENT_BREAKER_FAIL_MAX = env.int("PAYMENT_BREAKER_FAIL_MAX", default=10)
PAYMENT_BREAKER_RESET_SECONDS = env.int("PAYMENT_BREAKER_RESET_SECONDS", default=15)
# A charge the gateway keeps failing is given up this long after its first failure (or after
# PAYMENT_MAX_ATTEMPTS attempts, whichever is first). Waits for an open breaker are not attempts.
PAYMENT_GIVE_UP_SECONDS = env.int("PAYMENT_GIVE_UP_SECONDS", default=45)
SAGA_STUCK_AFTER_SECONDS = env.int("SAGA_STUCK_AFTER_SECONDS", default=60)
OUTBOX_STALE_AFTER_SECONDS = env.int("OUTBOX_STALE_AFTER_SECONDS", default=5)
# The relay process (`manage.py outbox_relay`) looks for new events this often when it has caught up; the
# mean commit -> publish delay is about half of it. Each pass publishes at most OUTBOX_RELAY_BATCH events.
OUTBOX_RELAY_POLL_SECONDS = env.float("OUTBOX_RELAY_POLL_SECONDS", default=0.02)
OUTBOX_RELAY_BATCH = env.int("OUTBOX_RELAY_BATCH", default=200)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)

# --- i18n, static ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps' static folders, so `migrate` is the only step before the processes start.
WHITENOISE_USE_FINDERS = True
# Leaflet (the tracking page's and the staff live map's map library) comes from its XStatic package, not
# copied into the repo: served as static/leaflet/leaflet.js. (django-leaflet would need GDAL for its admin.)
STATICFILES_DIRS = [("leaflet", xstatic.pkg.leaflet.BASE_DIR)]
WHITENOISE_AUTOREFRESH = DEBUG

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Threads per web process that run Django views behind the ASGI server (each holds one DB connection).
WEB_THREADS = env.int("WEB_THREADS", default=8)
