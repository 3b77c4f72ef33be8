"""A refused `room:join` never hears the room (issue 9, point 2).

Attackers keep many joins of a private room in flight while its members talk:
an outsider, and a member who was banned. The per-user join limit and the cap
on events in flight would throttle the attack, and so hide a leak; they are
raised here so that the check-first order itself is what is tested (the limits
have their own tests in test_limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async

from chat.models import Room, RoomBan
from tests.chat.sockets.conftest import joined, make_room, make_users
from tests.conftest import token_for

UNTHROTTLED = {
    "CHAT_RATE_LIMIT_JOINS": "1000000",
    "CHAT_RATE_LIMIT_LEAVES": "1000000",
    "CHAT_RATE_LIMIT_TYPING": "1000000",
    "CHAT_RATE_LIMIT_READS": "1000000",
    "CHAT_MAX_EVENTS_IN_FLIGHT": "1000",
}
SOCKETS_PER_ATTACKER = 3
JOINS_IN_FLIGHT = 25
# The members talk for at least this long and at least this many messages
# (under the attack, the database is busy answering refusals).
TALK_SECONDS = 4.0
TALK_MESSAGES = 5


async def _keep_joining(client, room_id: str, stop: asyncio.Event, answers: list[str]) -> None:
    """One of JOINS_IN_FLIGHT loops of a socket: a new join as soon as the last is answered."""
    while not stop.is_set():
        try:
            ack = await client.call("room:join", room_id, timeout=20)
        except Exception as error:  # a timeout under load is not what this test is about
            answers.append(f"error {error!r}")
            continue
        answers.append(ack.get("code") or ack["status"])


async def _talk(room: Room, alice, bob, carol, enough: asyncio.Event, stop: asyncio.Event) -> int:
    """Members send, type, read, leave and rejoin until stopped; returns how many messages were sent."""
    sent = 0
    while not stop.is_set():
        await bob.call("chat:typing", {"roomId": room.pk, "isTyping": True})
        ack = await alice.call("chat:message", {"roomId": room.pk, "text": f"secret {sent}"})
        assert ack["status"] == "ok", ack
        sent += 1
        if sent >= TALK_MESSAGES:
            enough.set()
        await bob.call("chat:read", {"roomId": room.pk, "messageId": ack["messageId"]})
        await bob.call("chat:typing", {"roomId": room.pk, "isTyping": False})
        await carol.call("room:leave", room.pk)
        await joined(carol, room)
        await asyncio.sleep(0.02)
    return sent


def _heard(client, room: Room) -> list[tuple[str, object]]:
    """Everything a client received that mentions the room."""
    return [
        (name, item)
        for name, items in client.events.items()
        for item in items
        if room.pk in json.dumps(item, default=str)
    ]


async def _attack(*, members_at, attackers_at, clients) -> None:
    # given a private room of alice, bob and carol, an outsider, and eve who was banned from it
    alice, bob, carol, outsider, eve = await make_users(5)
    room = await make_room(members=[alice, bob, carol], visibility=Room.Visibility.PRIVATE)
    await sync_to_async(RoomBan.objects.create)(room=room, user=eve)

    async def connect(user, server):
        return await clients().connect(server.url, token=token_for(user))

    a, b, c = [await connect(user, members_at) for user in (alice, bob, carol)]
    for member in (a, b, c):
        await joined(member, room)
    attackers = [await connect(user, attackers_at) for user in (outsider, eve) for _ in range(SOCKETS_PER_ATTACKER)]

    # when every attacking socket keeps 25 joins in flight while the members talk
    stop = asyncio.Event()
    answers: list[str] = []
    loops = [
        asyncio.ensure_future(_keep_joining(attacker, room.pk, stop, answers))
        for attacker in attackers
        for _ in range(JOINS_IN_FLIGHT)
    ]
    enough = asyncio.Event()
    talk = asyncio.ensure_future(_talk(room, a, b, c, enough, stop))
    await asyncio.sleep(TALK_SECONDS)
    await asyncio.wait_for(enough.wait(), 120)
    stop.set()
    sent = await talk
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*loops), 30)
    await asyncio.sleep(0.5)  # whatever was on its way has arrived

    # then the attack and the talk both happened
    assert sent >= TALK_MESSAGES
    assert set(answers) <= {"forbidden", "banned"} | {x for x in answers if x.startswith("error")}
    assert answers.count("forbidden") >= JOINS_IN_FLIGHT and answers.count("banned") >= JOINS_IN_FLIGHT, set(answers)
    # and the members heard the talk, while no attacking socket heard anything of the room
    await b.wait_for("chat:message", lambda m: m["text"] == f"secret {sent - 1}")
    for attacker in attackers:
        assert _heard(attacker, room) == []


async def test_refused_joins_in_flight_never_hear_a_private_room(server_factory, clients):
    process = server_factory("leak", **UNTHROTTLED)
    await _attack(members_at=process, attackers_at=process, clients=clients)


@pytest.mark.redis
async def test_refused_joins_in_flight_never_hear_a_private_room_across_processes(server_factory, clients):
    first = server_factory("leak-a", **UNTHROTTLED)
    second = server_factory("leak-b", **UNTHROTTLED)
    await _attack(members_at=first, attackers_at=second, clients=clients)
