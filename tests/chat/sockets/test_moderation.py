"""Room bans and site bans take effect on live sockets (one process, through
the REST API; across processes: test_multiprocess.py)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat import services
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


async def test_joins_racing_a_ban_never_leave_the_banned_socket_subscribed(server, connect):
    # given bob, a member of a public room, who fires joins while alice bans him
    bob, alice = await make_users(2)
    room = await make_room(members=[bob])
    await make_moderator(alice, room)
    a = await connect(alice)
    await joined(a, room)
    b = await connect(bob)

    # when joins and the ban interleave
    joins = [asyncio.create_task(b.call("room:join", room.pk)) for _ in range(10)]
    status, _ = await rest(server, alice, "POST", f"/api/rooms/{room.pk}/bans/", {"username": bob.username})
    assert status == 201
    joins += [asyncio.create_task(b.call("room:join", room.pk)) for _ in range(5)]
    await asyncio.gather(*joins)

    # then, whatever each join answered, no later message of the room reaches bob
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "after the ban"})
    await a.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    await b.assert_no("chat:message", lambda m: m["id"] == ack["messageId"], wait=0.5)


@pytest.mark.redis
async def test_a_member_removed_by_a_moderator_stops_hearing_the_room(server, connect):
    # given bob, a member of a private room, joined on a live socket
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob], visibility="private")
    a, b = await connect(alice), await connect(bob)
    await joined(a, room)
    await joined(b, room)

    # when a moderator removes his membership (the admin's delete, made here
    # in the test process; the broadcast reaches the server through Redis)
    await sync_to_async(services.membership_remove)(room=room, user=bob)

    # then his socket is told and taken out: the room's next message misses him
    assert await b.wait_for("room:removed") == {"roomId": room.pk}
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "members only"})
    await a.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    await b.assert_no("chat:message", lambda m: m["id"] == ack["messageId"], wait=0.5)
    assert (await b.call("room:join", room.pk))["code"] == "forbidden"
