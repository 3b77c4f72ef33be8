"""Helpers for the /chat tests: data set up in the test process (committed, so
the server process sees it) and clients connected as a given user."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat.models import Membership, Message, Room
from tests.conftest import token_for
from tests.factories import UserFactory, add_member
from tests.support.clients import ChatClient
from tests.support.server import ServerProcess

TRANSPORTS = ["websocket", "polling"]


def room_id(prefix: str = "r") -> str:
    """A fresh room id: typing keys and rate windows in Redis never collide between tests."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@sync_to_async
def make_users(count: int) -> list[User]:
    # No usable password: sockets authenticate with tokens, and hashing one
    # (PBKDF2, ~0.5 s on a busy CI core) per user would dominate these tests.
    return [UserFactory(password=None) for _ in range(count)]


@sync_to_async
def make_room(*, members: Sequence[User] = (), visibility: str = Room.Visibility.PUBLIC, **fields: Any) -> Room:
    room = Room.objects.create(id=fields.pop("id", None) or room_id(), name="Room", visibility=visibility, **fields)
    for member in members:
        add_member(room, member)
    return room


@sync_to_async
def stored_messages(room: Room) -> list[Message]:
    return list(Message.objects.filter(room=room).order_by("id"))


@sync_to_async
def is_member(user: User, room: Room) -> bool:
    return Membership.objects.filter(user=user, room=room).exists()


Connect = Callable[..., Awaitable[ChatClient]]


@pytest.fixture
def connect(server: ServerProcess, clients: Callable[[], ChatClient]) -> Connect:
    """`await connect(user, transport=..., server=...)`: a ChatClient on /chat with the user's JWT."""

    async def connect_as(user: User, *, transport: str = "websocket", to: ServerProcess | None = None) -> ChatClient:
        return await clients().connect((to or server).url, token=token_for(user), transport=transport)

    return connect_as


async def joined(client: ChatClient, room: Room | str, **extra: Any) -> dict[str, Any]:
    """Join and insist it worked; returns the ack."""
    room_id = room if isinstance(room, str) else room.pk
    ack = await client.call("room:join", {"roomId": room_id, **extra} if extra else room_id)
    assert ack["status"] == "ok", ack
    return ack


async def rest(server: ServerProcess, user: User, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A REST call to a server process with `user`'s JWT: (status, JSON body)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {token_for(user)}"}
        ) as answer,
    ):
        return answer.status, await answer.json(content_type=None)
