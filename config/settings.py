"""Courier settings. Everything that differs between machines comes from the environment.

`.env` is read when present; `.env.example` lists every variable with its default.
"""

from datetime import timedelta
from pathlib import Path

import environ
import xstatic.pkg.leaflet

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me-0123456789abcdef")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # serves `runserver` (HTTP + WebSocket) in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
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
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env("CACHE_URL", default=REDIS_URL),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # socket_timeout above channels-redis' 5 s blocking pop: redis-py 8 defaults to 5 s too, so under load the
        # pop's own empty answer arrived "late", raised TimeoutError and killed the socket (seen in bench-tracking).
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 1000, "expiry": 30},
    }
}

# --- Celery: at-least-once delivery; every task is safe to run twice ---------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacked message of a dead worker comes back after this; the sweeper re-drives sooner.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = {
    "orders-sweep": {"task": "orders.tasks.orders_sweep_task", "schedule": env.float("SWEEP_INTERVAL_SECONDS", 10.0)},
    "dispatch-sweep": {
        "task": "delivery.tasks.dispatch_sweep_task",
        "schedule": env.float("DISPATCH_SWEEP_SECONDS", 15.0),
    },
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
]
PASSWORD_HASHERS = env.list(
    "PASSWORD_HASHERS",
    default=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
)
LOGIN_URL = "/accounts/login/"
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}

# --- API ---------------------------------------------------------------------------------------
THROTTLE_ENABLED = env.bool("THROTTLE_ENABLED", default=True)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "common.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": (
        ["common.throttling.UserRateThrottle", "common.throttling.AnonRateThrottle"] if THROTTLE_ENABLED else []
    ),
    "DEFAULT_THROTTLE_RATES": {
        "user": env("THROTTLE_USER_RATE", default="1200/min"),
        "anon": env("THROTTLE_ANON_RATE", default="120/min"),
        "login": env("THROTTLE_LOGIN_RATE", default="20/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Courier API",
    "DESCRIPTION": "Orders that never oversell, a crash-safe payment saga, dispatch and live tracking.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
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
PAYMENT_GATEWAY = env("PAYMENT_GATEWAY", default="orders.gateways.MockGateway")
PAYMENT_TIMEOUT_SECONDS = env.float("PAYMENT_TIMEOUT_SECONDS", default=5.0)
PAYMENT_MAX_ATTEMPTS = env.int("PAYMENT_MAX_ATTEMPTS", default=5)
PAYMENT_RETRY_BASE_SECONDS = env.float("PAYMENT_RETRY_BASE_SECONDS", default=1.0)
PAYMENT_BREAKER_FAIL_MAX = env.int("PAYMENT_BREAKER_FAIL_MAX", default=10)
PAYMENT_BREAKER_RESET_SECONDS = env.int("PAYMENT_BREAKER_RESET_SECONDS", default=15)
SAGA_STUCK_AFTER_SECONDS = env.int("SAGA_STUCK_AFTER_SECONDS", default=60)
OUTBOX_STALE_AFTER_SECONDS = env.int("OUTBOX_STALE_AFTER_SECONDS", default=5)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)
# A claim on a key older than this whose request never finished (its process died) may be taken over.
IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS = env.int("IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS", default=60)

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
