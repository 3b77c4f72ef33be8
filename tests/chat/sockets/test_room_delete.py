"""Deleting a room moves its live sockets out first, on every process, then the
room is `not_found` on every path; its messages stay. A deleted user's
messages stay in history with the placeholder author."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from chat import services
from chat.models import Message, Room
from tests.chat.sockets.conftest import joined, make_room, make_users, rest, stored_messages
from tests.conftest import token_for
from tests.support.clients import ChatClient
from tests.support.server import ServerProcess

# Any 32 letters: Django compares the form's token with the cookie's secret.
CSRF = "softdeletesoftdeletesoftdelete00"


@sync_to_async
def make_superuser() -> User:
    user = User.objects.create_user(f"root-{User.objects.count()}", is_staff=True, is_superuser=True)
    return user


@sync_to_async
def _session_cookie(user: User) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.cookies[settings.SESSION_COOKIE_NAME].value


async def admin_post(server: ServerProcess, admin: User, path: str, data: dict[str, Any]) -> int:
    """A form POST to the admin of a server process, as `admin` (a real session).

    Use a process of the test's own (server_factory): the admin logs every
    change with the content type's id, which a process caches, and the test
    database's flush between tests gives content types new ids."""
    cookies = f"{settings.SESSION_COOKIE_NAME}={await _session_cookie(admin)}; {settings.CSRF_COOKIE_NAME}={CSRF}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}{path}",
            data={**data, "csrfmiddlewaretoken": CSRF},
            headers={"Cookie": cookies},
            allow_redirects=False,
        ) as answer,
    ):
        return answer.status


async def admin_delete_room(server: ServerProcess, admin: User, room: Room) -> None:
    assert await admin_post(server, admin, f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"}) == 302


async def admin_soft_delete(server: ServerProcess, admin: User, message_id: str) -> None:
    """The admin's soft delete: it broadcasts `chat:message-deleted` to the
    room's sockets, the one event that still goes to a deleted room."""
    data = {"action": "soft_delete", "_selected_action": message_id}
    assert await admin_post(server, admin, "/admin/chat/message/", data) == 302


@sync_to_async
def room_is_deleted(room: Room) -> bool:
    return Room.all_objects.get(pk=room.pk).deleted_at is not None and not Room.objects.filter(pk=room.pk).exists()


async def test_deleting_a_room_moves_its_sockets_out_and_every_path_is_not_found(server_factory, clients):
    server = await asyncio.to_thread(server_factory, "delete-one")

    async def connect(user: User, transport: str = "websocket") -> ChatClient:
        return await clients().connect(server.url, token=token_for(user), transport=transport)

    # given alice (two sockets, one joined) and bob joined to a room with messages
    alice, bob = await make_users(2)
    admin = await make_superuser()
    room = await make_room(members=[alice, bob])
    a, a_elsewhere, b = await connect(alice), await connect(alice), await connect(bob, transport="polling")
    await joined(a, room)
    await joined(b, room)
    first = await a.call("chat:message", {"roomId": room.pk, "text": "first"})
    second = await a.call("chat:message", {"roomId": room.pk, "text": "second"})
    # (the soft delete reaches the joined sockets while the room lives)
    await admin_soft_delete(server, admin, first["messageId"])
    for client in (a, b):
        await client.wait_for("chat:message-deleted", lambda e: e["messageId"] == first["messageId"])

    # when an admin deletes the room
    await admin_delete_room(server, admin, room)

    # then every socket of the members is told, and the joined ones are out:
    # the room's next event reaches none of them
    for client in (a, a_elsewhere, b):
        assert await client.wait_for("room:deleted") == {"roomId": room.pk}
    await admin_soft_delete(server, admin, second["messageId"])
    for client in (a, b):
        await client.assert_no("chat:message-deleted", lambda e: e["messageId"] == second["messageId"], wait=0.5)

    # and every socket path answers not_found
    answers = {
        "room:join": await a.call("room:join", room.pk),
        "room:join since": await b.call("room:join", {"roomId": room.pk, "since": first["messageId"]}),
        "chat:message": await a.call("chat:message", {"roomId": room.pk, "text": "hello?"}),
        "chat:message reply": await b.call(
            "chat:message", {"roomId": room.pk, "text": "hello?", "replyTo": first["messageId"]}
        ),
        "chat:typing": await a.call("chat:typing", {"roomId": room.pk, "isTyping": True}),
        "chat:read": await b.call("chat:read", {"roomId": room.pk, "messageId": second["messageId"]}),
    }
    assert {name: answer.get("code") for name, answer in answers.items()} == dict.fromkeys(answers, "not_found")
    # and every REST route too
    for method, path, body in [
        ("GET", f"/api/rooms/{room.pk}/", None),
        ("GET", f"/api/rooms/{room.pk}/messages/", None),
        ("POST", f"/api/rooms/{room.pk}/messages/", {"text": "hello?"}),
    ]:
        status, body = await rest(server, alice, method, path, body)
        assert (status, body["code"]) == (404, "not_found"), (method, path)
    status, rooms = await rest(server, alice, "GET", "/api/rooms/")
    assert status == 200
    assert room.pk not in [r["id"] for r in (rooms["results"] if isinstance(rooms, dict) else rooms)]
    # while its messages are all still stored, and nothing was added
    assert await room_is_deleted(room)
    assert [m.text for m in await stored_messages(room)] == ["first", "second"]
    assert a.connected and b.connected


@pytest.mark.redis
async def test_deleting_a_room_moves_its_sockets_out_on_every_process(server_factory, clients):
    # given alice on process A and bob on process B, both joined
    first_server = await asyncio.to_thread(server_factory, "delete-a")
    second_server = await asyncio.to_thread(server_factory, "delete-b")
    alice, bob = await make_users(2)
    admin = await make_superuser()
    room = await make_room(members=[alice, bob])
    a = await clients().connect(first_server.url, token=token_for(alice))
    b = await clients().connect(second_server.url, token=token_for(bob), transport="polling")
    await joined(a, room)
    await joined(b, room)
    first = await b.call("chat:message", {"roomId": room.pk, "text": "first"})
    second = await b.call("chat:message", {"roomId": room.pk, "text": "second"})
    # (a soft delete made in this process reaches both through Redis)
    await sync_to_async(services.messages_soft_delete)(messages=[await _message(first["messageId"])])
    for client in (a, b):
        await client.wait_for("chat:message-deleted", lambda e: e["messageId"] == first["messageId"])

    # when the admin of process A deletes the room
    await admin_delete_room(first_server, admin, room)

    # then both are told, and neither hears the room again, on either process
    for client in (a, b):
        assert await client.wait_for("room:deleted") == {"roomId": room.pk}
    await sync_to_async(services.messages_soft_delete)(messages=[await _message(second["messageId"])])
    for client in (a, b):
        await client.assert_no("chat:message-deleted", lambda e: e["messageId"] == second["messageId"], wait=0.5)
    assert (await b.call("chat:message", {"roomId": room.pk, "text": "hello?"}))["code"] == "not_found"
    assert (await a.call("room:join", room.pk))["code"] == "not_found"
    assert [m.text for m in await stored_messages(room)] == ["first", "second"]


@sync_to_async
def _message(message_id: str) -> Message:
    return Message.objects.get(pk=int(message_id))


@sync_to_async
def delete_user(user: User) -> None:
    User.objects.get(pk=user.pk).delete()


async def test_a_deleted_users_messages_stay_in_history_with_a_placeholder(server, connect):
    # given alice's messages in a room, then her account deleted
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a = await connect(alice)
    await joined(a, room)
    sent = await a.call("chat:message", {"roomId": room.pk, "text": "from alice"})
    await a.disconnect()
    await delete_user(alice)

    # when bob joins, the history carries her message with the placeholder author
    b = await connect(bob)
    history = (await joined(b, room))["messages"]
    assert [(m["id"], m["userId"], m["username"], m["text"]) for m in history] == [
        (sent["messageId"], "", "Deleted user", "from alice")
    ]
    assert history[0]["readBy"][0] == ""

    # and a reply to it quotes the placeholder (the batch writer's reply preview)
    ack = await b.call("chat:message", {"roomId": room.pk, "text": "to alice", "replyTo": sent["messageId"]})
    assert ack["status"] == "ok", ack
    reply = await b.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    assert reply["reply"] == {"id": sent["messageId"], "userId": "", "username": "Deleted user", "text": "from alice"}
