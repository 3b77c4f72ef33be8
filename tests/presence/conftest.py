"""Presence runs against server processes with short timings, so a grace period
or a crashed process's lease plays out in seconds: grace 2 s, heartbeat 1 s,
lease 3 s (a SIGKILLed process's users are offline within about 4 s)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat.models import Room
from tests.conftest import server_env, token_for
from tests.factories import UserFactory, add_member
from tests.support.server import ServerProcess

GRACE = 2.0
PRESENCE_ENV = {
    "PRESENCE_GRACE_SECONDS": str(int(GRACE)),
    "PRESENCE_HEARTBEAT_SECONDS": "1",
    "PRESENCE_EXPIRY_SECONDS": "3",
}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Users are made here by the dozen and never log in with a password; the
    # servers take tokens. PBKDF2 would cost most of this suite's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def _presence_server(django_db_setup: None, django_db_blocker: object) -> Iterator[ServerProcess]:
    process = ServerProcess(env=server_env(**PRESENCE_ENV), name="presence-server").start()
    yield process
    process.stop()


@pytest.fixture
def presence_server(_presence_server: ServerProcess, transactional_db: None) -> ServerProcess:
    """One server process with the short presence timings. Data must be committed."""
    if _presence_server.process is None or _presence_server.process.poll() is not None:
        _presence_server.start()
    return _presence_server


@pytest.fixture
def presence_server_factory(server_factory: Callable[..., ServerProcess]) -> Callable[[str], ServerProcess]:
    """More processes with the short timings, sharing the test Redis (mark tests `redis`)."""

    def start(name: str) -> ServerProcess:
        return server_factory(name, **PRESENCE_ENV)

    return start


def world(rooms: dict[str, list[str]]) -> dict[str, User]:
    """Users by name, and rooms (id -> member names) they belong to."""
    users: dict[str, User] = {}
    for room_id, names in rooms.items():
        room = Room.objects.create(id=room_id, name=room_id)
        for name in names:
            if name not in users:
                users[name] = UserFactory(username=name)
            add_member(room, users[name])
    return users


async def make_world(rooms: dict[str, list[str]]) -> dict[str, User]:
    return await sync_to_async(world)(rooms)


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["userId"] for entry in entries]


def about(user: User) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the presence event is about `user`."""
    return lambda event: event.get("userId") == str(user.pk)


async def get_presence(server: ServerProcess, user: User, query: str = "") -> tuple[int, Any]:
    """`GET /api/presence/{query}` on a server process, as `user` (JWT)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.url}/api/presence/{query}", headers={"Authorization": f"Bearer {token_for(user)}"}
        ) as answer,
    ):
        return answer.status, await answer.json()
