"""Shared fixtures: users and rooms, tokens, and real server processes.

Tests that talk to a server process use `transactional_db` (through `server`),
because the server reads committed data from the same test database.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import UserFactory
from tests.support.clients import ChatClient
from tests.support.server import ServerProcess, database_url

REDIS = bool(os.environ.get("REDIS_URL"))
# Every test session writes its Redis keys and channel-layer groups under its own
# prefix, so runs that share a Redis never see each other.
SESSION_PREFIX = f"test-{uuid.uuid4().hex[:8]}"


def pytest_configure(config: pytest.Config) -> None:
    settings.CHAT_REDIS_PREFIX = SESSION_PREFIX
    # The server processes build their channel layer from CHAT_REDIS_PREFIX (see
    # server_env); the test process must publish under the same prefix, or a
    # broadcast made here (a service called by a test) reaches no server.
    for layer in settings.CHANNEL_LAYERS.values():
        if "prefix" in layer.get("CONFIG", {}):
            layer["CONFIG"]["prefix"] = SESSION_PREFIX
    # Django's cache (DRF's throttle counters) too: a new test database hands
    # out user ids from 1 again, which must not inherit an old run's counts.
    for cache in settings.CACHES.values():
        if "KEY_PREFIX" in cache:
            cache["KEY_PREFIX"] = SESSION_PREFIX


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REDIS:
        return
    skip = pytest.mark.skip(reason="needs REDIS_URL: several server processes must share one Redis")
    for item in items:
        if "redis" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_in_process_redis() -> None:
    """Without REDIS_URL the test process's Redis is an in-process fakeredis,
    and Django's cache is in memory. SQLite hands out the ids of rolled-back
    users again, so a new user would inherit an old one's rate-limit window:
    start every test empty."""
    if not REDIS:
        from django.core.cache import cache

        from chatsite.redis import sync_redis

        sync_redis().flushall()
        cache.clear()  # the local-memory cache: DRF's throttle counters


# --- users and tokens -----------------------------------------------------------


@pytest.fixture
def user(db: None) -> User:
    return UserFactory()


@pytest.fixture
def other_user(db: None) -> User:
    return UserFactory()


def token_for(user: User) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_as(api: APIClient) -> Callable[[User | None], APIClient]:
    """An API client authenticated with a real JWT of `user` (None: anonymous)."""

    def login(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return client

    return login


# --- server processes -----------------------------------------------------------


def server_env(**overrides: str) -> dict[str, str]:
    from django.db import connection

    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "CHAT_REDIS_PREFIX": SESSION_PREFIX,
        "DEBUG": "false",
        "HTTPS": "false",  # plain HTTP on 127.0.0.1
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_RATE_LIMIT_MESSAGES": "100000",
        # Tests send events far faster than a person (the fuzz: hundreds per
        # event); the limits have their own tests, on servers of their own
        # (tests/chat/sockets/test_limits.py).
        "CHAT_RATE_LIMIT_JOINS": "100000",
        "CHAT_RATE_LIMIT_LEAVES": "100000",
        "CHAT_RATE_LIMIT_TYPING": "100000",
        "CHAT_RATE_LIMIT_READS": "100000",
        "CHAT_RATE_LIMIT_PRESENCE": "100000",
        # Every test client connects from 127.0.0.1.
        "CHAT_MAX_SOCKETS_PER_ADDRESS": "100000",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def _session_server(django_db_setup: None, django_db_blocker: object) -> Iterator[ServerProcess]:
    process = ServerProcess(env=server_env(), name="session-server").start()
    yield process
    process.stop()


@pytest.fixture
def server(_session_server: ServerProcess, transactional_db: None) -> ServerProcess:
    """The shared server process (rate limit raised). Data must be committed."""
    if _session_server.process is None or _session_server.process.poll() is not None:
        _session_server.start()
    return _session_server


@pytest.fixture
def server_factory(django_db_setup: None, transactional_db: None) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra server processes with their own settings; stopped after the test."""
    started: list[ServerProcess] = []

    def start(name: str = "server", **overrides: str) -> ServerProcess:
        process = ServerProcess(env=server_env(**overrides), name=name).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[], ChatClient]]:
    """Make ChatClients; every one is disconnected after the test."""
    made: list[ChatClient] = []

    def make() -> ChatClient:
        client = ChatClient()
        made.append(client)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            await client.disconnect()
