"""The private-data leak matrix: who must learn nothing of a private room.

Rows: an outsider, a banned member, a removed member, a deactivated user (its
token minted while it was active) and an anonymous client. Rooms: a private
room and a 1:1 room, each with messages, whose members type, read and are
online. Columns: every way in: the socket events (room:join, with `since`,
chat:message, chat:read, chat:typing, joins kept in flight while members talk,
presence), every REST route that takes a room id or lists rooms, messages or
presence, the page and the admin. Each cell is one test id:
`test_<transport>_cell[<who>-<room>-<probe>]`.

A cell passes when the probe is refused (or cannot even connect) and nothing
of the room reaches the prober: no message text, no room name, no member,
no typing or receipt event, and nothing changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import socketio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from chat import services
from chat.models import Membership, Message, ReadReceipt, Room
from tests.conftest import token_for
from tests.factories import add_member, post
from tests.support.clients import ChatClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(60)

SECRET = "SECRET-7f3a"
WHO = ("outsider", "banned", "removed", "deactivated", "anonymous")
ROOMS = ("private", "direct")
REST_PROBES = (
    "rest_rooms_list",
    "rest_room_detail",
    "rest_room_update",
    "rest_messages_list",
    "rest_messages_after",
    "rest_message_send",
    "rest_message_edit",
    "rest_message_delete",
    "rest_mute",
    "rest_ban",
    "rest_presence",
    "page",
    "admin",
)
SOCKET_PROBES = (
    "socket_connect",
    "socket_join",
    "socket_join_since",
    "socket_send",
    "socket_read",
    "socket_typing",
    "socket_eavesdrop",
    "socket_presence",
)
LEAK_EVENTS = ("chat:message", "chat:typing", "chat:read", "room:history", "room:user-joined", "room:user-left")


def _cells(probes: tuple[str, ...]) -> list[Any]:
    return [
        pytest.param(who, room, probe, id=f"{who}-{room}-{probe}") for who in WHO for room in ROOMS for probe in probes
    ]


def _user(username: str) -> User:
    # No password: hashing one per user would cost more than the cell.
    return User.objects.create(username=username)


def _world() -> dict[str, Any]:
    """olivia owns the private room `vault` (mia is a member); olivia and mia
    share a 1:1 room. banned, removed and deactivated were members of vault."""
    olivia, mia = _user("olivia"), _user("mia")
    vault = Room.objects.create(id="vault", name="Vault of SECRET-7f3a", visibility=Room.Visibility.PRIVATE)
    add_member(vault, olivia, Membership.Role.OWNER)
    add_member(vault, mia)
    direct, _ = services.room_get_or_create_direct(user=olivia, other=mia)
    people: dict[str, User | None] = {"anonymous": None, "outsider": _user("outsider")}
    for name in ("banned", "removed", "deactivated"):
        people[name] = _user(name)
        add_member(vault, people[name])
    for room, author in ((vault, olivia), (direct, mia)):
        for n in range(3):
            post(room, author, f"{room.pk} {SECRET} {n}")
    services.ban_create(moderator=olivia, room=vault, user=people["banned"])
    services.membership_remove(room=vault, user=people["removed"])
    tokens = {name: token_for(user) for name, user in people.items() if user is not None}
    deactivated = people["deactivated"]
    assert deactivated is not None
    deactivated.is_active = False
    deactivated.save(update_fields=["is_active"])
    return {
        "olivia": olivia,
        "mia": mia,
        "people": people,
        "tokens": tokens,
        "rooms": {"private": vault, "direct": direct},
    }


def _state(room: Room) -> tuple[Any, ...]:
    return (
        tuple(Message.objects.filter(room=room).order_by("pk").values_list("pk", "text", "edited_at", "deleted_at")),
        tuple(Membership.objects.filter(room=room).order_by("pk").values_list("user_id", "role")),
        tuple(ReadReceipt.objects.filter(room=room).order_by("pk").values_list("user_id", "last_read_message_id")),
        Room.objects.filter(pk=room.pk).values_list("name", "topic").get(),
    )


def _no_secret(body: Any, who: str, probe: str) -> None:
    text = body.decode(errors="replace") if isinstance(body, bytes) else repr(body)
    assert SECRET not in text, f"{who} learnt the room's secret through {probe}: {text[:500]}"


# --- REST, the page, the admin ----------------------------------------------------


@pytest.mark.parametrize(("who", "room_kind", "probe"), _cells(REST_PROBES))
def test_rest_cell(who: str, room_kind: str, probe: str, transactional_db: None) -> None:
    world = _world()
    room: Room = world["rooms"][room_kind]
    user: User | None = world["people"][who]
    last = Message.objects.filter(room=room).order_by("-pk").first()
    assert last is not None
    before = _state(room)
    api = APIClient()
    if user is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][who]}")
    base = f"/api/rooms/{room.pk}"
    soon = (timezone.now() + timedelta(hours=1)).isoformat()

    if probe in ("page", "admin"):
        browser = Client()
        if user is not None:
            browser.force_login(user)
        paths = ["/"] if probe == "page" else ["/admin/", "/admin/chat/message/", "/admin/chat/room/"]
        for path in paths:
            answer = browser.get(path)
            _no_secret(answer.content, who, f"GET {path}")
            if probe == "admin":
                assert answer.status_code in (302, 403), f"{who} reached {path}: {answer.status_code}"
        return

    requests: dict[str, tuple[str, str, Any]] = {
        "rest_rooms_list": ("get", "/api/rooms/", None),
        "rest_room_detail": ("get", f"{base}/", None),
        "rest_room_update": ("patch", f"{base}/", {"name": "renamed by a stranger"}),
        "rest_messages_list": ("get", f"{base}/messages/", None),
        "rest_messages_after": ("get", f"{base}/messages/?after=1&limit=200", None),
        "rest_message_send": ("post", f"{base}/messages/", {"text": "hello from outside"}),
        "rest_message_edit": ("patch", f"{base}/messages/{last.pk}/", {"text": "edited from outside"}),
        "rest_message_delete": ("delete", f"{base}/messages/{last.pk}/", None),
        "rest_mute": ("post", f"{base}/mutes/", {"username": "mia", "until": soon}),
        "rest_ban": ("post", f"{base}/bans/", {"username": "mia"}),
        "rest_presence": ("get", "/api/presence/?include=offline", None),
    }
    method, path, body = requests[probe]
    answer = getattr(api, method)(path, body, format="json") if body is not None else getattr(api, method)(path)
    _no_secret(answer.content, who, f"{method.upper()} {path}")
    if probe == "rest_rooms_list":
        assert answer.status_code in (200, 401), answer.status_code
        listed = answer.json() if answer.status_code == 200 else []
        rows = listed.get("results", listed) if isinstance(listed, dict) else listed
        assert room.pk not in {row.get("id") for row in rows}, f"{who} sees {room.pk} in the rooms list"
    elif probe == "rest_presence":
        assert answer.status_code in (200, 401), answer.status_code
        rows = answer.json() if answer.status_code == 200 else []
        members = {str(world["olivia"].pk), str(world["mia"].pk)}
        assert not members & {row["userId"] for row in rows}, f"{who} sees the room's members: {rows}"
    else:
        assert answer.status_code in (401, 403, 404), f"{who}: {method.upper()} {path} -> {answer.status_code}"
    assert _state(room) == before, f"{who} changed the room through {probe}"


# --- sockets --------------------------------------------------------------------


async def _connect(server: ServerProcess, world: dict[str, Any], who: str, clients: Callable[[], ChatClient]) -> Any:
    """A connected client of `who`, or None when the server refuses them."""
    token = world["tokens"].get(who)
    try:
        return await clients().connect(server.url, auth={"token": token} if token else {})
    except socketio.exceptions.ConnectionError:
        return None


async def _member(server: ServerProcess, world: dict[str, Any], name: str, room: Room, clients: Any) -> ChatClient:
    client = await clients().connect(server.url, token=await sync_to_async(token_for)(world[name]))
    ack = await client.call("room:join", room.pk)
    assert ack["status"] == "ok", ack
    return client


def _heard(client: ChatClient, room: Room) -> list[Any]:
    """Every recorded event that concerns `room`."""
    heard = []
    for event in LEAK_EVENTS:
        for item in client.events.get(event, []):
            if room.pk in repr(item) or SECRET in repr(item):
                heard.append((event, item))
    return heard


@pytest.mark.parametrize(("who", "room_kind", "probe"), _cells(SOCKET_PROBES))
async def test_socket_cell(who: str, room_kind: str, probe: str, server: ServerProcess, clients: Any) -> None:
    world = await sync_to_async(_world)()
    room: Room = world["rooms"][room_kind]
    last = await sync_to_async(lambda: Message.objects.filter(room=room).order_by("-pk").first())()
    assert last is not None
    before = await sync_to_async(_state)(room)
    if probe == "socket_presence":
        # the members are online before the prober arrives
        await _member(server, world, "olivia", room, clients)
    prober = await _connect(server, world, who, clients)
    if probe == "socket_connect":
        if who in ("anonymous", "deactivated"):
            assert prober is None, f"{who} could open a socket"
        return
    if prober is None:
        return  # refused at the door: nothing to learn
    mia = await _member(server, world, "mia", room, clients)

    if probe in ("socket_join", "socket_join_since"):
        payload = room.pk if probe == "socket_join" else {"roomId": room.pk, "since": "1"}
        ack = await prober.call("room:join", payload)
        assert ack["status"] == "error", f"{who} joined {room.pk}: {str(ack)[:300]}"
        _no_secret(ack, who, probe)
    elif probe == "socket_send":
        ack = await prober.call("chat:message", {"roomId": room.pk, "text": "hello from outside"})
        assert ack["status"] == "error", ack
        await mia.assert_no("chat:message", lambda m: m.get("text") == "hello from outside", wait=0.3)
    elif probe == "socket_read":
        ack = await prober.call("chat:read", {"roomId": room.pk, "messageId": str(last.pk)})
        assert ack["status"] == "error", f"{who} marked {room.pk} read: {ack}"
        await mia.assert_no("chat:read", wait=0.3)
    elif probe == "socket_typing":
        ack = await prober.call("chat:typing", {"roomId": room.pk, "isTyping": True})
        assert ack["status"] == "error", f"{who} typed in {room.pk}: {ack}"
        await mia.assert_no("chat:typing", wait=0.3)
    elif probe == "socket_eavesdrop":
        await _eavesdrop(prober, server, world, room, mia, clients)
    elif probe == "socket_presence":
        listed = prober.events.get("presence:list") or [await prober.wait_for("presence:list")]
        names = {entry["username"] for entry in listed[0]}
        assert not {"olivia", "mia"} & names, f"{who} is told who is online in {room.pk}: {names}"
        for event in ("presence:online", "presence:offline", "presence:status"):
            seen = [e for e in prober.events.get(event, []) if e.get("username") in ("olivia", "mia")]
            assert not seen, f"{who} hears {event} of the room's members: {seen}"
    heard = _heard(prober, room)
    assert not heard, f"{who} heard the room {room.pk}: {heard[:5]}"
    assert await sync_to_async(_state)(room) == before, f"{who} changed the room through {probe}"


async def _eavesdrop(
    prober: ChatClient, server: ServerProcess, world: dict[str, Any], room: Room, mia: ChatClient, clients: Any
) -> None:
    """The prober keeps joins in flight while the members send, type and read."""
    olivia = await _member(server, world, "olivia", room, clients)
    stop = asyncio.Event()

    async def keep_joining() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await asyncio.gather(*(prober.call("room:join", room.pk, timeout=5) for _ in range(10)))

    joiner = asyncio.create_task(keep_joining())
    try:
        for n in range(3):
            await olivia.call("chat:typing", {"roomId": room.pk, "isTyping": True})
            ack = await olivia.call("chat:message", {"roomId": room.pk, "text": f"live {SECRET} {n}"})
            assert ack["status"] == "ok", ack
            await mia.call("chat:read", {"roomId": room.pk, "messageId": ack["messageId"]})
            await asyncio.sleep(0.2)
        await mia.wait_for("chat:message", lambda m: m.get("text") == f"live {SECRET} 2")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(joiner, 15)
    # The members' own writes are the only changes this probe may see.
    await sync_to_async(Message.objects.filter(room=room, text__startswith="live ").delete)()
    await sync_to_async(ReadReceipt.objects.filter(room=room).delete)()
