"""Django settings. Every knob is an environment variable (see README)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF

from chatsite.env import ConfigError, env_bool, env_int, env_list, env_optional, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"

# Off unless asked for: a server started with no settings is a production
# server, and refuses the development key below. `make run` turns it on.
DEBUG = env_bool("DEBUG", False)
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
# Origins whose pages may POST forms and cookie-authenticated requests here
# (CSRF). Its own list: a site allowed to read the API with tokens (CORS, a
# support widget's host) is not thereby trusted to act with a visitor's cookie.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
    "rest_framework_simplejwt.token_blacklist",  # refresh tokens revoked by logout
    "axes",  # failed sign-ins counted per username and per address
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served locally, not from a CDN
    "chat",
    "presence",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a lockout flagged during authentication into
    # the 429 page (the login page and the admin's; the API answers its own).
    "axes.middleware.AxesMiddleware",
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

# --- Issue 9 (sockets): every client event bounded ------------------------------
# Per-user sliding windows shared by every process (chat/ratelimit.py), one per
# event kind, all over CHAT_RATE_LIMIT_EVENT_WINDOW seconds. Sized for the page:
# on (re)connect it joins every followed room at once, from every open tab.
CHAT_RATE_LIMIT_EVENT_WINDOW = env_int("CHAT_RATE_LIMIT_EVENT_WINDOW", 10, minimum=1)
CHAT_RATE_LIMIT_JOINS = env_int("CHAT_RATE_LIMIT_JOINS", 100, minimum=1)
CHAT_RATE_LIMIT_LEAVES = env_int("CHAT_RATE_LIMIT_LEAVES", 100, minimum=1)
CHAT_RATE_LIMIT_TYPING = env_int("CHAT_RATE_LIMIT_TYPING", 30, minimum=1)
CHAT_RATE_LIMIT_READS = env_int("CHAT_RATE_LIMIT_READS", 60, minimum=1)
CHAT_RATE_LIMIT_PRESENCE = env_int("CHAT_RATE_LIMIT_PRESENCE", 20, minimum=1)
# Events of one socket whose handlers are still running: past this, an event is
# answered `rate_limited` at once (a client may send thousands of frames at once).
CHAT_MAX_EVENTS_IN_FLIGHT = env_int("CHAT_MAX_EVENTS_IN_FLIGHT", 100, minimum=1)
# Open /chat sockets, counted over every process, per user and per client address.
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20, minimum=1)
CHAT_MAX_SOCKETS_PER_ADDRESS = env_int("CHAT_MAX_SOCKETS_PER_ADDRESS", 100, minimum=1)
# A process's claim on its sockets in those counts lasts this long unless renewed
# (every third of it): the sockets of a process that died stop counting after it.
CHAT_SOCKET_LEASE_SECONDS = env_int("CHAT_SOCKET_LEASE_SECONDS", 30, minimum=3)
# The client address is the peer's as uvicorn reports it: X-Forwarded-For is
# believed only from TRUSTED_PROXY_IPS (below; chatsite/serve.py).

# --- Bounded work per request (issue 9, point 4) -----------------------------
# Django's cache holds DRF's throttle counters, so with REDIS_URL it lives in
# Redis (under CHAT_REDIS_PREFIX) and every process counts the same requests;
# without, it is the process's memory, like the rest of the embedded defaults.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHAT_REDIS_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Rooms (POST /api/rooms/, and new 1:1 rooms) one user may create: "<n>/<second|minute|hour|day>".
CHAT_ROOM_CREATE_RATE = env_str("CHAT_ROOM_CREATE_RATE", "30/hour")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", CHAT_ROOM_CREATE_RATE):
    raise ConfigError(f"CHAT_ROOM_CREATE_RATE must look like 30/hour, not {CHAT_ROOM_CREATE_RATE!r}")
# Pages and caps are told in headers (the bodies keep protocol.md's lists), so
# clients on other origins must be allowed to read them.
CORS_EXPOSE_HEADERS = ["Link", "Retry-After", "X-Presence-Truncated"]
# presence:list and GET /api/presence/ list at most this many co-members.
PRESENCE_LIST_MAX = env_int("PRESENCE_LIST_MAX", 200, minimum=1)

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
        # simplejwt's, plus: tokens issued before the user's last logout or
        # password change are refused (chat/accounts.py).
        "chat.api.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chat.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {"room_create": CHAT_ROOM_CREATE_RATE},
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7, minimum=1)),
}
# --- Accounts and sessions (issue 9.5) ------------------------------------------
# Password guessing: django-axes counts failed sign-ins on every surface that
# calls authenticate() (POST /api/auth/token/, the login page, the admin's) in
# the database, so every process shares the count on any deployment. After
# LOGIN_FAILURE_LIMIT failures for one username, or from one client address,
# further attempts (a correct password included) are answered 429 until
# LOGIN_LOCKOUT_MINUTES have passed since the last counted failure.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out attempts before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Either one trips the lock: a username guessed from many addresses, or many
# usernames tried from one address (password spraying).
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Attempts refused by the lock are not counted again: the lock lasts the
# cool-off from the last real failure, and a locked-out flood writes nothing.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The peer address only. Which proxies may rewrite it from X-Forwarded-For is
# uvicorn's decision (TRUSTED_PROXY_IPS, chatsite/serve.py), so Django never
# believes that header from a client.
AXES_CLIENT_IP_CALLABLE = "chat.accounts.client_address"
AXES_LOCKOUT_CALLABLE = "chat.accounts.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

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

# --- Issue 9, writer: the socket send path ------------------------------------
# "auto": socket sends on PostgreSQL go through the batch statement of
# chat/message_writer.py, the rest through the ORM service. "orm": every send
# through services.message_send (tests/chat/test_send_paths.py runs one table
# of cases through both; also a way out should the statement misbehave).
CHAT_SEND_PATH = env_str("CHAT_SEND_PATH", "auto").strip().lower()
if CHAT_SEND_PATH not in {"auto", "orm"}:
    raise ConfigError(f"CHAT_SEND_PATH must be auto or orm, got {CHAT_SEND_PATH!r}")

# --- Production defaults (issue 9.6) --------------------------------------------
# HTTPS: the site is reached over HTTPS (a TLS proxy in front of uvicorn, which
# speaks plain HTTP). On by default in production: the cookies are sent over
# HTTPS only, browsers are told to use nothing else (HSTS), and plain HTTP is
# redirected. HTTPS=false only for a trial over plain HTTP (and the tests).
HTTPS = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# A year, subdomains included; browsers ignore the header over plain HTTP.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading is a promise to browser vendors that outlives this deployment:
# the operator's call (SECURE_HSTS_PRELOAD=true), hence the silenced warning.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# The addresses of the proxies in front (comma-separated, "*" for any). Only a
# connection from one of them has its X-Forwarded-For and X-Forwarded-Proto
# believed: uvicorn rewrites the client address and scheme from them
# (--forwarded-allow-ips, chatsite/serve.py). Unset: nobody is believed and
# the peer is the client. Django reads the scheme header too, for servers
# other than uvicorn (runserver); a trusted proxy must overwrite it, and the
# app's port must be reachable only through the proxy.
TRUSTED_PROXY_IPS = env_list("TRUSTED_PROXY_IPS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_IPS else None
# Content-Security-Policy on every page Django serves (development included,
# so a violation shows up before production): scripts and styles from this
# origin only, the page's one inline script (its import map) by nonce, no
# plugins, no framing, forms posted here only. The API docs relax styles
# (chat/api/docs.py); the chat page needs nothing more.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        # 'self' covers the page's own ws:/wss: origin for the Socket.IO upgrade.
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
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
