"""Room bans and site bans take effect on live sockets (one process, through
the REST API; across processes: test_multiprocess.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat.models import Membership
from tests.chat.sockets.conftest import is_member, joined, make_room, make_users, rest
from tests.conftest import token_for


@sync_to_async
def make_moderator(user: User, room=None, *, staff: bool = False) -> None:
    if room is not None:
        Membership.objects.update_or_create(user=user, room=room, defaults={"role": Membership.Role.MODERATOR})
    if staff:
        User.objects.filter(pk=user.pk).update(is_staff=True)


async def test_a_room_ban_takes_the_users_live_sockets_out_of_the_room(server, connect):
    # given alice in a room on two sockets, bob, and a moderator
    alice, bob, moderator = await make_users(3)
    room = await make_room(members=[alice, bob])
    await make_moderator(moderator, room)
    a1, a2, b = await connect(alice), await connect(alice, transport="polling"), await connect(bob)
    for client in (a1, a2, b):
        await joined(client, room)
    bystander_room = await make_room(members=[alice])
    await joined(a1, bystander_room)

    # when the moderator bans alice from the room
    status, _ = await rest(server, moderator, "POST", f"/api/rooms/{room.pk}/bans/", {"username": alice.username})
    assert status == 201

    # then both of alice's sockets are told and leave the room, bob is told she left
    for client in (a1, a2):
        assert await client.wait_for("room:banned") == {"roomId": room.pk}
    left = await b.wait_for("room:user-left", lambda e: e["userId"] == str(alice.pk))
    assert left["roomId"] == room.pk
    # and bob's next message does not reach her, while her other room still works
    ack = await b.call("chat:message", {"roomId": room.pk, "text": "after the ban"})
    await b.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    await a1.assert_no("chat:message", lambda m: m["roomId"] == room.pk, wait=0.3)
    await a2.assert_no("chat:message", lambda m: m["roomId"] == room.pk, wait=0)
    assert (await a1.call("chat:message", {"roomId": bystander_room.pk, "text": "still ok"}))["status"] == "ok"
    # and she can neither rejoin nor send there
    assert (await a1.call("room:join", room.pk))["code"] == "banned"
    assert (await a1.call("chat:message", {"roomId": room.pk, "text": "x"}))["code"] == "banned"
    assert not await is_member(alice, room)
    assert a1.connected and a2.connected


async def test_a_site_ban_closes_every_socket_of_the_user(server, connect, clients):
    # given alice on two sockets and a staff moderator
    alice, bob, moderator = await make_users(3)
    room = await make_room(members=[alice, bob])
    await make_moderator(moderator, staff=True)
    a1, a2, b = await connect(alice), await connect(alice, transport="polling"), await connect(bob)
    await joined(b, room)

    # when she is banned site-wide
    status, _ = await rest(server, moderator, "POST", "/api/moderation/site-bans/", {"username": alice.username})
    assert status == 201

    # then both sockets are closed by the server, bob's is not
    await a1.wait_for("disconnect")
    await a2.wait_for("disconnect")
    assert b.connected
    # and her token no longer opens a socket
    with pytest.raises(Exception):  # noqa: B017 (socketio.exceptions.ConnectionError)
        await clients().connect(server.url, token=token_for(alice))
