"""Django settings. Every knob is an environment variable (see README)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url

from chatsite.env import ConfigError, env_bool, env_int, env_list, env_optional, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ConfigError(
        "SECRET_KEY is the development key while DEBUG is off: "
        "set SECRET_KEY to a long random value before running in production."
    )

HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000, minimum=1)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CSRF_TRUSTED_ORIGINS = list(CORS_ALLOWED_ORIGINS)

INSTALLED_APPS = [
    "daphne",  # makes `manage.py runserver` serve the ASGI app
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served locally, not from a CDN
    "chat",
    "presence",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
except Exception as exc:  # dj_database_url raises several types on bad input
    raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes concurrent writers queue instead of failing with
    # "database is locked" when two transactions upgrade read locks at once.
    _database["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    # A file, not :memory:, so a test server process sees the test database.
    _database["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
elif _database["ENGINE"] == "django.db.backends.postgresql":
    # psycopg's pool, not a connection per socket event: database_sync_to_async
    # closes the connection before and after every call (CONN_MAX_AGE must stay
    # 0 with a pool), and with a pool "close" returns it for the next call
    # instead of paying a new PostgreSQL connection (a few ms) per event.
    # CONN_HEALTH_CHECKS makes the pool check a connection on checkout, so one
    # that died with a PostgreSQL restart is replaced, never handed to a query.
    _database["CONN_HEALTH_CHECKS"] = True
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"]["pool"] = {
        # Thread-sensitive ORM calls of a process share one thread, so one or
        # two connections are busy at a time; the rest absorbs sync views and
        # thread_sensitive=False calls.
        "min_size": env_int("DATABASE_POOL_MIN", 2, minimum=0),
        "max_size": env_int("DATABASE_POOL_MAX", 10, minimum=1),
        "timeout": 10,  # seconds a caller waits for a free connection
        "max_idle": 300,
    }
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the Channels layer ---------------------------------------------
REDIS_URL = env_optional("REDIS_URL")
CHAT_REDIS_PREFIX = env_str("CHAT_REDIS_PREFIX", "chat")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer, not the core one: the core layer's per-channel
            # queues drop messages silently past their capacity (docs/realtime.md).
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # A bounded connect, so a Redis that is down fails a publish fast
            # (the manager counts it and retries) instead of hanging a sender.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_connect_timeout": 2}],
                "prefix": CHAT_REDIS_PREFIX,
            },
        }
    }
else:
    # One process only. A roomy capacity, because the in-memory layer drops
    # (silently, in group_send) whatever exceeds it.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}}

# --- Chat rules ---------------------------------------------------------------
CHAT_RATE_LIMIT_MESSAGES = env_int("CHAT_RATE_LIMIT_MESSAGES", 10, minimum=1)
CHAT_RATE_LIMIT_WINDOW = env_int("CHAT_RATE_LIMIT_WINDOW", 10, minimum=1)
CHAT_EDIT_WINDOW_SECONDS = env_int("CHAT_EDIT_WINDOW_SECONDS", 15 * 60, minimum=0)
CHAT_TYPING_TIMEOUT_SECONDS = 5
PRESENCE_GRACE_SECONDS = env_int("PRESENCE_GRACE_SECONDS", 5, minimum=0)
# Each process renews a lease on its sockets every HEARTBEAT seconds; a lease
# lasts EXPIRY seconds. The sockets of a process that dies without cleaning up
# go offline within EXPIRY + HEARTBEAT (20 s by default; the promise is 30 s).
PRESENCE_HEARTBEAT_SECONDS = env_int("PRESENCE_HEARTBEAT_SECONDS", 5, minimum=1)
PRESENCE_EXPIRY_SECONDS = env_int("PRESENCE_EXPIRY_SECONDS", 15, minimum=2)
if PRESENCE_EXPIRY_SECONDS < 2 * PRESENCE_HEARTBEAT_SECONDS:
    raise ConfigError(
        "PRESENCE_EXPIRY_SECONDS must be at least twice PRESENCE_HEARTBEAT_SECONDS, "
        "or a live process that misses one beat is declared dead"
    )

# --- Auth ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chat.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7, minimum=1)),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chat API",
    "DESCRIPTION": "REST half of the chat server. The real-time half is Socket.IO: see docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # PATCH bodies as declared: an edit needs its `text`, not an all-optional copy.
    "COMPONENT_SPLIT_PATCH": False,
    # (issue 9, attack) The document must not lie (tests/security/test_openapi.py):
    # a field that refuses "" says minLength 1, and every route lists the errors
    # any route can answer (chat/api/schema.py).
    "ENFORCE_NON_BLANK_FIELDS": True,
    "POSTPROCESSING_HOOKS": ["chat.api.schema.add_common_errors"],
}

# --- i18n, static -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/socket.io-client", BASE_DIR / "node_modules/socket.io-client/dist")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the finders too, so a fresh checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "socketio": {"level": "WARNING"},
        "engineio": {"level": "WARNING"},
    },
}
