"""Fifty concurrent senders into one room: seq has neither holes nor twins."""

from __future__ import annotations

import asyncio

from tests.chat.sockets.conftest import joined, make_room, make_users, stored_messages

SENDERS = 50
PER_SENDER = 4


async def test_fifty_concurrent_senders_get_seq_1_to_n(connect):
    # given fifty members of one room, each on its own socket, and a listener
    # (only the listener follows the room's events: sending needs membership,
    # not a joined socket, and 50 x 200 deliveries would only load the clients)
    users = await make_users(SENDERS + 1)
    room = await make_room(members=users)
    sockets = await asyncio.gather(*(connect(u) for u in users))
    listener, senders = sockets[0], sockets[1:]
    await joined(listener, room)

    # when all of them send at once, several messages each
    async def burst(client, n):
        return [
            await client.call("chat:message", {"roomId": room.pk, "text": f"{n}-{i}", "clientId": f"{n}-{i}"})
            for i in range(PER_SENDER)
        ]

    acks = [ack for acks in await asyncio.gather(*(burst(s, n) for n, s in enumerate(senders))) for ack in acks]

    # then every send was accepted and the seqs are exactly 1..N
    total = SENDERS * PER_SENDER
    assert [ack["status"] for ack in acks] == ["ok"] * total
    assert sorted(ack["seq"] for ack in acks) == list(range(1, total + 1))
    stored = await stored_messages(room)
    assert [m.seq for m in stored] == list(range(1, total + 1))  # id order is seq order
    # and the listener received all of them, once each, in seq order (the
    # process hands its broadcasts to one FIFO in commit order)
    await listener.wait_for("chat:message", lambda m: m["seq"] == total, timeout=10)
    await asyncio.sleep(0.2)
    assert [m["seq"] for m in listener.events["chat:message"]] == list(range(1, total + 1))
