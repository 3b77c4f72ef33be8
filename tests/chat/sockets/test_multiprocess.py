"""Two server processes sharing Redis behave as one server.

Marked `redis`: skipped on the embedded default, where each process has its
own in-memory layer and rate limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.models import Membership
from tests.chat.sockets.conftest import joined, make_room, make_users, rest, stored_messages
from tests.conftest import server_env, token_for
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

RATE_LIMIT = 3


@pytest.fixture(scope="module")
def pair(django_db_setup: None) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two processes on the same database and Redis, allowing 3 messages per 10 s per user."""
    env = server_env(CHAT_RATE_LIMIT_MESSAGES=str(RATE_LIMIT))
    first = ServerProcess(env=env, name="pair-a").start()
    second = ServerProcess(env=env, name="pair-b").start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def on(pair, transactional_db, clients):
    async def connect(user, process, transport="websocket"):
        return await clients().connect(process.url, token=token_for(user), transport=transport)

    return connect


async def test_a_message_sent_on_one_process_reaches_the_other(pair, on):
    # given alice on process A (WebSocket) and bob on process B (long-polling)
    a_server, b_server = pair
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a = await on(alice, a_server)
    b = await on(bob, b_server, "polling")
    await joined(a, room)
    await joined(b, room)
    # when alice sends, then bob gets it once, and so does alice
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "across"})
    assert (await b.wait_for("chat:message"))["id"] == ack["messageId"]
    await a.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    # and so does room:user-joined of a newcomer joining on B
    (carol,) = await make_users(1)
    await joined(await on(carol, b_server), room)
    assert (await a.wait_for("room:user-joined"))["userId"] == str(carol.pk)
    await asyncio.sleep(0.2)
    assert len(b.events["chat:message"]) == 1 and len(a.events["chat:message"]) == 1


async def test_a_rest_post_on_one_process_reaches_sockets_on_the_other(pair, on):
    a_server, b_server = pair
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    b = await on(bob, b_server)
    await joined(b, room)
    # when alice posts through the REST API of process A
    status, posted = await rest(
        a_server, alice, "POST", f"/api/rooms/{room.pk}/messages/", {"text": "from REST", "clientId": "rest-1"}
    )
    assert status == 201, posted
    # then bob's socket on process B gets the same message object
    received = await b.wait_for("chat:message")
    assert received["id"] == posted["id"] and received["text"] == "from REST" and received["seq"] == 1


async def test_the_rate_limit_is_shared_by_the_processes(pair, on):
    a_server, b_server = pair
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    a, b = await on(alice, a_server), await on(alice, b_server)
    acks = []
    for i in range(RATE_LIMIT + 1):  # alternating processes
        client = a if i % 2 == 0 else b
        acks.append(await client.call("chat:message", {"roomId": room.pk, "text": f"m{i}"}))
    assert [ack["status"] for ack in acks] == ["ok"] * RATE_LIMIT + ["error"]
    assert acks[-1]["code"] == "rate_limited"
    assert len(await stored_messages(room)) == RATE_LIMIT


async def test_typing_crosses_processes_and_a_send_elsewhere_clears_it(pair, on):
    # given alice typing on process A, bob watching on process B
    a_server, b_server = pair
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a, b = await on(alice, a_server), await on(bob, b_server)
    await joined(a, room)
    await joined(b, room)
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    assert (await b.wait_for("chat:typing"))["isTyping"] is True
    # when alice sends from another tab connected to process B
    tab = await on(alice, b_server)
    await joined(tab, room)
    await tab.call("chat:message", {"roomId": room.pk, "text": "sent"})
    # then bob sees the indicator go down at once (not 5 s later)
    event = await b.wait_for("chat:typing", lambda e: not e["isTyping"], timeout=2)
    assert event["userId"] == str(alice.pk)


async def test_typing_set_on_one_process_expires_once(pair, on):
    a_server, b_server = pair
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a, b = await on(alice, a_server), await on(bob, b_server)
    await joined(a, room)
    await joined(b, room)
    await a.call("chat:typing", {"roomId": room.pk, "isTyping": True})
    await b.wait_for("chat:typing")
    # the timer of process A clears it, and nobody else does a second time
    await b.wait_for("chat:typing", lambda e: not e["isTyping"], timeout=8)
    await asyncio.sleep(0.3)
    assert [e["isTyping"] for e in b.events["chat:typing"]] == [True, False]


@sync_to_async
def _ban(moderator, room, user):
    services.ban_create(moderator=moderator, room=room, user=user)


@sync_to_async
def _site_ban(moderator, user):
    services.site_ban_create(moderator=moderator, user=user)


async def test_a_room_ban_made_elsewhere_reaches_sockets_on_every_process(pair, on):
    # given alice in a room on both processes and bob on A
    a_server, b_server = pair
    alice, bob, moderator = await make_users(3)
    room = await make_room(members=[alice, bob])
    await sync_to_async(Membership.objects.create)(user=moderator, room=room, role=Membership.Role.MODERATOR)
    a1, a2, b = await on(alice, a_server), await on(alice, b_server), await on(bob, a_server)
    for client in (a1, a2, b):
        await joined(client, room)

    # when the ban is made by a third process (this test process: a sync
    # service call, as an admin action or a management command would)
    await _ban(moderator, room, alice)

    # then both of alice's sockets leave the room, and messages stop reaching them
    await a1.wait_for("room:banned")
    await a2.wait_for("room:banned")
    await b.wait_for("room:user-left")
    ack = await b.call("chat:message", {"roomId": room.pk, "text": "after"})
    await b.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    await a1.assert_no("chat:message", wait=0.3)
    await a2.assert_no("chat:message", wait=0)


async def test_a_site_ban_closes_the_users_sockets_on_every_process(pair, on):
    a_server, b_server = pair
    alice, moderator = await make_users(2)
    a1, a2 = await on(alice, a_server), await on(alice, b_server, "polling")
    await _site_ban(moderator, alice)
    await a1.wait_for("disconnect")
    await a2.wait_for("disconnect")


async def test_concurrent_batches_of_two_processes_into_the_same_rooms(pair, on):
    # given two rooms, twenty senders on each process, all in both rooms, and
    # a listener on each process following both rooms
    a_server, b_server = pair
    users = await make_users(42)
    rooms = [await make_room(members=users), await make_room(members=users)]
    listeners = [await on(users[0], a_server), await on(users[1], b_server)]
    for listener in listeners:
        for room in rooms:
            await joined(listener, room)
    senders = [(await on(u, a_server if n % 2 else b_server), "a" if n % 2 else "b") for n, u in enumerate(users[2:])]

    # when every sender sends its quota at once, alternating rooms, so each
    # process stores batches that touch both rooms while the other does too
    async def burst(client, process, n):
        return [
            await client.call("chat:message", {"roomId": rooms[(n + i) % 2].pk, "text": f"{process}:{n}:{i}"})
            for i in range(RATE_LIMIT)
        ]

    acks = [ack for acks in await asyncio.gather(*(burst(c, p, n) for n, (c, p) in enumerate(senders))) for ack in acks]

    # then every send was stored (no deadlock, nothing lost), with seqs 1..N per room
    assert [ack["status"] for ack in acks] == ["ok"] * len(acks), acks
    per_room = []
    for room in rooms:
        seqs = [m.seq for m in await stored_messages(room)]
        assert seqs == list(range(1, len(seqs) + 1))
        per_room.append(len(seqs))
    assert sum(per_room) == len(acks)
    # and each listener got every message once; those sent through one
    # process reach it in seq order
    for listener in listeners:
        for room, total in zip(rooms, per_room, strict=True):

            def of_room(listener=listener, room=room):
                return [m for m in listener.events["chat:message"] if m["roomId"] == room.pk]

            for _ in range(100):
                if len(of_room()) >= total:
                    break
                await asyncio.sleep(0.1)
            got = of_room()
            assert sorted(m["seq"] for m in got) == list(range(1, total + 1))
            for process in "ab":
                seqs = [m["seq"] for m in got if m["text"].startswith(f"{process}:")]
                assert seqs == sorted(seqs), (process, seqs)
