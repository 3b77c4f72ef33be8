"""room:join, room:history and room:leave on /chat."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Membership, Message, Room, RoomBan
from tests.chat.sockets.conftest import TRANSPORTS, is_member, joined, make_room, make_users, rest, room_id
from tests.factories import post


@sync_to_async
def post_many(room: Room, author, count: int) -> list[Message]:
    """`count` stored messages, seq 1..count, in one statement (no broadcast)."""
    start = room.last_seq
    messages = Message.objects.bulk_create(
        [Message(room=room, author=author, text=f"m{start + i}", seq=start + i) for i in range(1, count + 1)]
    )
    Room.objects.filter(pk=room.pk).update(last_seq=start + count)
    room.last_seq = start + count
    return list(Message.objects.filter(room=room).order_by("id"))[-count:] if messages else []


def texts(messages):
    return [m["text"] for m in messages]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_joining_a_public_room_makes_a_member_and_tells_the_others(connect, transport):
    # given a public room with bob in it, and alice who is not a member
    alice, bob = await make_users(2)
    room = await make_room(members=[bob])
    b = await connect(bob, transport=transport)
    await joined(b, room)
    a = await connect(alice, transport=transport)

    # when alice joins by id (the string form)
    ack = await a.call("room:join", room.pk)

    # then she is a member, bob hears of it, and she does not hear of herself
    assert ack == {"status": "ok", "roomId": room.pk, "messages": [], "hasMore": False, "hasMoreBefore": False}
    assert await is_member(alice, room)
    joined_event = await b.wait_for("room:user-joined")
    assert joined_event == {"userId": str(alice.pk), "username": alice.username, "roomId": room.pk}
    await a.assert_no("room:user-joined", wait=0.2)


async def test_join_accepts_the_object_form(connect):
    (alice,) = await make_users(1)
    room = await make_room()
    ack = await (await connect(alice)).call("room:join", {"roomId": room.pk})
    assert ack["status"] == "ok" and ack["roomId"] == room.pk


async def test_private_rooms_are_for_members_only(connect):
    alice, outsider = await make_users(2)
    room = await make_room(members=[alice], visibility=Room.Visibility.PRIVATE)
    ack = await (await connect(outsider)).call("room:join", room.pk)
    assert ack["status"] == "error" and ack["code"] == "forbidden"
    assert not await is_member(outsider, room)
    assert (await (await connect(alice)).call("room:join", room.pk))["status"] == "ok"


async def test_unknown_room_is_not_found(connect):
    (alice,) = await make_users(1)
    ack = await (await connect(alice)).call("room:join", room_id("nowhere"))
    assert ack["status"] == "error" and ack["code"] == "not_found"
    assert ack.get("error")


@pytest.mark.parametrize("visibility", [Room.Visibility.PUBLIC, Room.Visibility.PRIVATE])
async def test_a_banned_user_cannot_join(connect, visibility):
    (alice,) = await make_users(1)
    room = await make_room(visibility=visibility)
    await sync_to_async(RoomBan.objects.create)(room=room, user=alice)
    ack = await (await connect(alice)).call("room:join", room.pk)
    assert ack["status"] == "error" and ack["code"] == "banned"
    assert not await is_member(alice, room)


async def test_history_on_join_is_the_last_50_oldest_first(connect):
    # given a room with 60 messages
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    await post_many(room, alice, 60)
    client = await connect(alice)

    # when alice joins
    ack = await joined(client, room)

    # then the ack and room:history both carry messages 11..60, oldest first
    assert texts(ack["messages"]) == [f"m{i}" for i in range(11, 61)]
    assert [m["seq"] for m in ack["messages"]] == list(range(11, 61))
    # and say older messages exist, while nothing newer remains
    assert (ack["hasMoreBefore"], ack["hasMore"]) == (True, False)
    history = await client.wait_for("room:history")
    assert history["roomId"] == room.pk
    assert history["messages"] == ack["messages"]


async def test_history_since_is_everything_after_it_up_to_500(connect):
    # given 620 messages, and a client that has seen up to the 100th
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    stored = await post_many(room, alice, 620)
    since = stored[99].pk
    client = await connect(alice)

    # when it joins with since
    ack = await joined(client, room, since=str(since))

    # then it gets 101..600, oldest first, and hasMore says more remain
    assert [m["seq"] for m in ack["messages"]] == list(range(101, 601))
    assert ack["hasMore"] is True
    # and from the last of those, the remaining 20 without hasMore
    rest = await client.call("room:join", {"roomId": room.pk, "since": ack["messages"][-1]["id"]})
    assert [m["seq"] for m in rest["messages"]] == list(range(601, 621))
    assert rest["hasMore"] is False


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reconnect_with_since_returns_exactly_the_missed_messages(connect, transport):
    # given alice and bob in a room, alice having seen bob's first message
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a = await connect(alice, transport=transport)
    b = await connect(bob, transport=transport)
    await joined(a, room)
    await joined(b, room)
    first = await b.call("chat:message", {"roomId": room.pk, "text": "before"})
    seen = await a.wait_for("chat:message", lambda m: m["id"] == first["messageId"])

    # when alice drops off while bob sends five more
    await a.disconnect()
    sent = [(await b.call("chat:message", {"roomId": room.pk, "text": f"missed {i}"}))["messageId"] for i in range(5)]
    # and alice comes back asking for what followed the last message she saw
    again = await connect(alice, transport=transport)
    ack = await joined(again, room, since=seen["id"])

    # then she gets exactly the five, in order, with consecutive seqs
    assert [m["id"] for m in ack["messages"]] == sent
    assert texts(ack["messages"]) == [f"missed {i}" for i in range(5)]
    assert [m["seq"] for m in ack["messages"]] == [seen["seq"] + i for i in range(1, 6)]
    assert ack["hasMore"] is False


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_leave_stops_the_rooms_events_and_tells_the_others(connect, transport):
    # given alice and bob following a room
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a = await connect(alice, transport=transport)
    b = await connect(bob, transport=transport)
    await joined(a, room)
    await joined(b, room)

    # when alice leaves
    assert await a.call("room:leave", room.pk) == {"status": "ok"}

    # then bob is told, and bob's next message does not reach alice
    left = await b.wait_for("room:user-left")
    assert left == {"userId": str(alice.pk), "username": alice.username, "roomId": room.pk}
    ack = await b.call("chat:message", {"roomId": room.pk, "text": "are you there?"})
    await b.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    await a.assert_no("chat:message", wait=0.3)
    # leaving a socket room is not quitting the room
    assert await is_member(alice, room)


async def test_only_a_socket_that_was_in_the_room_announces_a_departure(connect):
    # given bob following a public room, alice a member who never joined it on
    # this socket, and carol who is not a member at all
    alice, bob, carol = await make_users(3)
    room = await make_room(members=[alice, bob])
    b = await connect(bob)
    await joined(b, room)
    a, c = await connect(alice), await connect(carol)

    # when they leave it, then the room hears nothing
    assert await a.call("room:leave", room.pk) == {"status": "ok"}
    assert await c.call("room:leave", room.pk) == {"status": "ok"}
    await b.assert_no("room:user-left", wait=0.3)

    # and a socket that joined announces its leave once, however often it leaves
    await joined(a, room)
    for _ in range(3):
        assert await a.call("room:leave", room.pk) == {"status": "ok"}
    await b.wait_for("room:user-left")
    await b.assert_no("room:user-left", lambda _: len(b.events["room:user-left"]) > 1, wait=0.3)


async def test_leave_of_an_unknown_room_is_not_found(connect):
    (alice,) = await make_users(1)
    ack = await (await connect(alice)).call("room:leave", room_id("nowhere"))
    assert ack["status"] == "error" and ack["code"] == "not_found"


async def test_history_of_a_deleted_message_hides_its_text(connect):
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    message = await sync_to_async(post)(room, alice, "secret")
    await sync_to_async(Message.objects.filter(pk=message.pk).update)(text="secret")
    from django.utils import timezone

    await sync_to_async(Message.objects.filter(pk=message.pk).update)(deleted_at=timezone.now())
    ack = await joined(await connect(alice), room)
    assert ack["messages"][0]["text"] == "" and ack["messages"][0]["deletedAt"]


async def test_membership_rows_for_two_tabs_joining_at_once(connect):
    import asyncio

    (alice,) = await make_users(1)
    room = await make_room()
    a1, a2 = await connect(alice), await connect(alice)
    acks = await asyncio.gather(a1.call("room:join", room.pk), a2.call("room:join", room.pk))
    assert [ack["status"] for ack in acks] == ["ok", "ok"]
    assert await sync_to_async(Membership.objects.filter(user=alice, room=room).count)() == 1


async def test_a_user_made_a_member_by_someone_else_hears_room_added(server, connect):
    # given bob online, and alice who opens a 1:1 chat with him through REST
    alice, bob, carol = await make_users(3)
    b = await connect(bob)
    c = await connect(carol)
    status, room = await rest(server, alice, "POST", "/api/rooms/direct/", {"username": bob.username})
    assert status == 201, room

    # then every socket of bob hears of the new room, and nobody else does
    added = await b.wait_for("room:added")
    assert added == {"roomId": room["id"], "name": room["name"], "visibility": "direct"}
    await c.assert_no("room:added")

    # and opening it again announces nothing new
    await rest(server, alice, "POST", "/api/rooms/direct/", {"username": bob.username})
    await b.assert_no("room:added", lambda event: len(b.events["room:added"]) > 1)
