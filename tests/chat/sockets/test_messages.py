"""chat:message on /chat: validation, membership, idempotency, mutes, rate limit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import Message, RoomMute
from tests.chat.sockets.conftest import TRANSPORTS, joined, make_room, make_users, stored_messages
from tests.conftest import token_for
from tests.factories import post


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_message_is_stored_before_the_ack_and_reaches_the_room(connect, transport):
    # given alice and bob in a room, and carol who follows another room
    alice, bob, carol = await make_users(3)
    room = await make_room(members=[alice, bob])
    elsewhere = await make_room(members=[carol])
    a, b, c = [await connect(u, transport=transport) for u in (alice, bob, carol)]
    for client, r in ((a, room), (b, room), (c, elsewhere)):
        await joined(client, r)

    # when alice sends
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "  hi all \n", "clientId": "c-1"})

    # then the ack names a message the database already has
    assert ack["status"] == "ok" and isinstance(ack["messageId"], str)
    (stored,) = await stored_messages(room)
    assert str(stored.pk) == ack["messageId"] and stored.text == "hi all"
    # and every socket of the room gets it, the sender's included, but not carol
    for client in (a, b):
        message = await client.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
        assert message == {
            "id": ack["messageId"],
            "roomId": room.pk,
            "seq": 1,
            "userId": str(alice.pk),
            "username": alice.username,
            "text": "hi all",
            "replyTo": None,
            "reply": None,
            "clientId": "c-1",
            "attachment": None,
            "timestamp": message["timestamp"],
            "editedAt": None,
            "deletedAt": None,
            "readBy": [str(alice.pk)],
            "readCount": 1,
        }
        assert message["timestamp"].endswith("Z")
    await c.assert_no("chat:message", wait=0.2)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n\t  ", id="whitespace-only"),
        pytest.param("x" * 5001, id="5001-chars"),
        pytest.param(" " + "x" * 5001 + " ", id="5001-after-trim"),
        pytest.param(None, id="null"),
        pytest.param(42, id="number"),
        pytest.param(["hi"], id="list"),
        pytest.param({"text": "hi"}, id="object"),
        pytest.param("nul \x00 byte", id="nul-byte"),
        pytest.param("lone \ud800 surrogate", id="lone-surrogate"),
    ],
)
async def test_bad_text_is_invalid_and_stores_nothing(connect, text):
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    client = await connect(alice)
    await joined(client, room)
    ack = await client.call("chat:message", {"roomId": room.pk, "text": text})
    assert ack["status"] == "error" and ack["code"] == "invalid", ack
    assert await stored_messages(room) == []


async def test_5000_characters_after_trimming_are_accepted(connect):
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    client = await connect(alice)
    text = "é" * 5000
    ack = await client.call("chat:message", {"roomId": room.pk, "text": f"  {text}  "})
    assert ack["status"] == "ok"
    assert (await stored_messages(room))[0].text == text


async def test_sending_needs_membership(connect):
    # given a public room alice can see but has not joined
    alice, bob = await make_users(2)
    room = await make_room(members=[bob])
    ack = await (await connect(alice)).call("chat:message", {"roomId": room.pk, "text": "hi"})
    assert ack["status"] == "error" and ack["code"] == "forbidden"
    ack = await (await connect(alice)).call("chat:message", {"roomId": "no-such-room", "text": "hi"})
    assert ack["status"] == "error" and ack["code"] == "not_found"
    assert await stored_messages(room) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_resend_with_the_same_client_id_is_stored_and_broadcast_once(connect, transport):
    # given alice and bob in a room
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a, b = await connect(alice, transport=transport), await connect(bob, transport=transport)
    await joined(a, room)
    await joined(b, room)

    # when alice's app sends the same message three times (two of them at once)
    payload = {"roomId": room.pk, "text": "once", "clientId": "retry-1"}
    first = await a.call("chat:message", payload)
    again = await asyncio.gather(a.call("chat:message", payload), a.call("chat:message", payload))

    # then every ack names the first message, which is stored and broadcast once
    assert {ack["messageId"] for ack in [first, *again]} == {first["messageId"]}
    assert len(await stored_messages(room)) == 1
    await b.wait_for("chat:message", lambda m: m["id"] == first["messageId"])
    await b.assert_no("chat:message", lambda m: m["id"] != first["messageId"], wait=0.3)
    assert len(b.events["chat:message"]) == 1
    # and the same clientId from another user is another message
    other = await b.call("chat:message", payload)
    assert other["status"] == "ok" and other["messageId"] != first["messageId"]


async def test_a_muted_user_gets_muted(connect):
    alice, moderator = await make_users(2)
    room = await make_room(members=[alice])
    await sync_to_async(RoomMute.objects.create)(
        room=room, user=alice, until=timezone.now() + timedelta(minutes=5), created_by=moderator
    )
    ack = await (await connect(alice)).call("chat:message", {"roomId": room.pk, "text": "hi"})
    assert ack["status"] == "error" and ack["code"] == "muted"
    assert await stored_messages(room) == []


async def test_an_expired_mute_no_longer_applies(connect):
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    await sync_to_async(RoomMute.objects.create)(room=room, user=alice, until=timezone.now() - timedelta(seconds=1))
    ack = await (await connect(alice)).call("chat:message", {"roomId": room.pk, "text": "hi"})
    assert ack["status"] == "ok"


async def test_reply_to_names_a_message_of_the_room(connect):
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    other_room = await make_room(members=[alice])
    original = await sync_to_async(post)(room, bob, "question")
    elsewhere = await sync_to_async(post)(other_room, alice, "elsewhere")
    client = await connect(alice)
    await joined(client, room)
    ack = await client.call("chat:message", {"roomId": room.pk, "text": "answer", "replyTo": str(original.pk)})
    message = await client.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    assert message["replyTo"] == str(original.pk)
    assert message["reply"] == {
        "id": str(original.pk),
        "userId": str(bob.pk),
        "username": bob.username,
        "text": "question",
    }
    ack = await client.call("chat:message", {"roomId": room.pk, "text": "x", "replyTo": str(elsewhere.pk)})
    assert ack["code"] == "not_found"


async def test_the_rate_limit_answers_rate_limited(server_factory, clients):
    # given a server allowing 3 messages per 10 s
    limited = server_factory(name="limited", CHAT_RATE_LIMIT_MESSAGES="3")
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    client = await clients().connect(limited.url, token=token_for(alice))

    # when alice sends five
    acks = [
        await client.call("chat:message", {"roomId": room.pk, "text": f"m{i}", "clientId": f"c{i}"}) for i in range(5)
    ]

    # then three are stored and the rest refused, the socket still up
    assert [ack["status"] for ack in acks] == ["ok", "ok", "ok", "error", "error"]
    assert {ack.get("code") for ack in acks[3:]} == {"rate_limited"}
    assert len(await stored_messages(room)) == 3
    assert client.connected
    # and a resend of a stored clientId is not a new send, so it is not limited
    resend = await client.call("chat:message", {"roomId": room.pk, "text": "m0", "clientId": "c0"})
    assert resend == {"status": "ok", "messageId": acks[0]["messageId"], "seq": 1}
    assert await sync_to_async(Message.objects.filter(room=room).count)() == 3
