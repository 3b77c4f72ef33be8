"""chat:typing (ephemeral, expiring) and chat:read (watermarks) on /chat."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chat.sockets.conftest import TRANSPORTS, joined, make_room, make_users
from tests.conftest import token_for


async def _pair(connect, transport="websocket"):
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a, b = await connect(alice, transport=transport), await connect(bob, transport=transport)
    await joined(a, room)
    await joined(b, room)
    return alice, bob, room, a, b


def typing(user, room, is_typing):
    return {"userId": str(user.pk), "username": user.username, "roomId": room.pk, "isTyping": is_typing}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_typing_reaches_the_others_only_and_stops_when_told(connect, transport):
    alice, _bob, room, a, b = await _pair(connect, transport)
    assert (await a.call("chat:typing", {"roomId": room.pk, "isTyping": True}))["status"] == "ok"
    assert await b.wait_for("chat:typing") == typing(alice, room, True)
    # a refresh while typing tells nobody anything new
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": False})
    await b.wait_for("chat:typing", lambda e: not e["isTyping"])
    assert b.events["chat:typing"] == [typing(alice, room, True), typing(alice, room, False)]
    await a.assert_no("chat:typing", wait=0.1)


async def test_a_stale_typing_is_cleared_by_the_server_after_5_s(connect):
    # given alice typing and then going quiet
    alice, _bob, room, a, b = await _pair(connect)
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    await b.wait_for("chat:typing")
    started = time.monotonic()
    # then the server itself clears it about 5 s later
    assert await b.wait_for("chat:typing", lambda e: not e["isTyping"], timeout=8) == typing(alice, room, False)
    assert 4.5 <= time.monotonic() - started <= 7


async def test_typing_is_cleared_when_the_typist_disconnects(connect):
    alice, _bob, room, a, b = await _pair(connect)
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    await b.wait_for("chat:typing")
    await a.disconnect()
    assert await b.wait_for("chat:typing", lambda e: not e["isTyping"], timeout=2) == typing(alice, room, False)


async def test_typing_is_cleared_when_the_typist_sends(connect):
    # given alice typing on one socket
    alice, _bob, room, a, b = await _pair(connect)
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    await b.wait_for("chat:typing")
    # when she sends from another socket (another tab)
    other_tab = await connect(alice)
    await joined(other_tab, room)
    ack = await other_tab.call("chat:message", {"roomId": room.pk, "text": "done typing"})
    # then bob sees the indicator go down, and the message
    assert await b.wait_for("chat:typing", lambda e: not e["isTyping"], timeout=2) == typing(alice, room, False)
    await b.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])


async def test_typing_needs_membership_and_a_boolean(connect):
    alice, outsider = await make_users(2)
    room = await make_room(members=[alice])
    client = await connect(outsider)
    ack = await client.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    assert ack["code"] == "forbidden"
    ack = await client.call("chat:typing", {"roomId": room.pk, "isTyping": "yes"})
    assert ack["code"] == "invalid"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_read_moves_a_watermark_that_history_shows_as_read_by(connect, clients, transport):
    # given three messages by alice, and bob and carol in the room
    alice, bob, room, a, b = await _pair(connect, transport)
    acks = [await a.call("chat:message", {"roomId": room.pk, "text": f"m{i}"}) for i in range(3)]
    ids = [ack["messageId"] for ack in acks]

    # when bob reads the second
    assert await b.call("chat:read", {"roomId": room.pk, "messageId": ids[1]}) == {"status": "ok"}

    # then alice hears of it, bob's own socket does not
    read = await a.wait_for("chat:read")
    assert read == {"userId": str(bob.pk), "messageId": ids[1], "roomId": room.pk}
    await b.assert_no("chat:read", wait=0.1)
    # and history derives readBy from the watermark: the first two read by bob
    history = (await joined(await connect(alice), room))["messages"]
    assert [m["readBy"] for m in history] == [[str(alice.pk), str(bob.pk)]] * 2 + [[str(alice.pk)]]


async def test_reading_an_older_message_never_moves_the_watermark_back(connect):
    _alice, bob, room, a, b = await _pair(connect)
    ids = [(await a.call("chat:message", {"roomId": room.pk, "text": f"m{i}"}))["messageId"] for i in range(3)]
    await b.call("chat:read", {"roomId": room.pk, "messageId": ids[2]})
    await a.wait_for("chat:read")
    assert await b.call("chat:read", {"roomId": room.pk, "messageId": ids[0]}) == {"status": "ok"}
    await asyncio.sleep(0.2)
    assert len(a.events["chat:read"]) == 1  # nothing moved, nothing told
    history = (await joined(a, room))["messages"]
    assert all(str(bob.pk) in m["readBy"] for m in history)


async def test_read_errors(connect):
    alice, _bob, room, a, b = await _pair(connect)
    other_room = await make_room(members=[alice])
    elsewhere = await a.call("chat:message", {"roomId": other_room.pk, "text": "x"})
    assert (await b.call("chat:read", {"roomId": room.pk, "messageId": elsewhere["messageId"]}))["code"] == "not_found"
    assert (await b.call("chat:read", {"roomId": room.pk, "messageId": "abc"}))["code"] == "invalid"
    assert (await b.call("chat:read", {"roomId": "no-such-room", "messageId": "1"}))["code"] == "not_found"


async def test_read_reaches_every_socket_in_the_room_but_the_readers_own(connect):
    # (The personal room `user:<id>` is exercised by the bans in
    # test_moderation.py and test_multiprocess.py: `room:banned` goes there.)
    alice, _bob, room, a, b = await _pair(connect)
    a2 = await connect(alice)
    await joined(a2, room)
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "x"})
    await b.call("chat:read", {"roomId": room.pk, "messageId": ack["messageId"]})
    await a.wait_for("chat:read")
    await a2.wait_for("chat:read")
    await b.assert_no("chat:read", wait=0.1)


async def _two_tabs_and_bob(alice_at, bob_at, clients):
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a1 = await clients().connect(alice_at.url, token=token_for(alice))
    a2 = await clients().connect(bob_at.url, token=token_for(alice))
    b = await clients().connect(bob_at.url, token=token_for(bob))
    for client in (a1, a2, b):
        await joined(client, room)
    return alice, bob, room, a1, a2, b


async def _typing_reaches_none_of_the_typists_tabs(alice_at, bob_at, clients):
    # given alice with two tabs and bob, in a room
    alice, _bob, room, a1, a2, b = await _two_tabs_and_bob(alice_at, bob_at, clients)
    # when alice types in one tab and goes quiet, so the server clears it after 5 s
    await a1.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    assert await b.wait_for("chat:typing") == typing(alice, room, True)
    assert await b.wait_for("chat:typing", lambda e: not e["isTyping"], timeout=8) == typing(alice, room, False)
    # then neither of her tabs heard her typing, nor its expiry
    await a1.assert_no("chat:typing", wait=0.2)
    await a2.assert_no("chat:typing", wait=0)


async def test_typing_and_its_expiry_reach_none_of_the_typists_own_tabs(server, clients):
    await _typing_reaches_none_of_the_typists_tabs(server, server, clients)


@pytest.mark.redis
async def test_typing_reaches_none_of_the_typists_tabs_on_any_process(server_factory, clients):
    await _typing_reaches_none_of_the_typists_tabs(server_factory("typing-a"), server_factory("typing-b"), clients)


async def _read_reaches_none_of_the_readers_tabs(alice_at, bob_at, clients):
    # given alice with two tabs and bob, in a room, and a message of bob's
    alice, _bob, room, a1, a2, b = await _two_tabs_and_bob(alice_at, bob_at, clients)
    ack = await b.call("chat:message", {"roomId": room.pk, "text": "read me"})
    # when alice reads it in one tab
    assert await a1.call("chat:read", {"roomId": room.pk, "messageId": ack["messageId"]}) == {"status": "ok"}
    # then bob hears of it, and neither of her tabs does
    assert await b.wait_for("chat:read") == {"userId": str(alice.pk), "messageId": ack["messageId"], "roomId": room.pk}
    await a1.assert_no("chat:read", wait=0.3)
    await a2.assert_no("chat:read", wait=0)


async def test_a_read_receipt_reaches_none_of_the_readers_own_tabs(server, clients):
    await _read_reaches_none_of_the_readers_tabs(server, server, clients)


@pytest.mark.redis
async def test_a_read_receipt_reaches_none_of_the_readers_tabs_on_any_process(server_factory, clients):
    await _read_reaches_none_of_the_readers_tabs(server_factory("read-a"), server_factory("read-b"), clients)


async def test_read_needs_membership(connect):
    # given a public room of alice and bob, and carol who never joined it
    _alice, _bob, room, a, b = await _pair(connect)
    (carol,) = await make_users(1)
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "x"})
    c = await connect(carol)
    # when carol marks it read, she is refused, and nobody hears a receipt
    refused = await c.call("chat:read", {"roomId": room.pk, "messageId": ack["messageId"]})
    assert refused["status"] == "error" and refused["code"] == "forbidden"
    await b.assert_no("chat:read", wait=0.3)
    await a.assert_no("chat:read", wait=0)
