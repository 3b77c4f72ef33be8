"""Hostile input: 200 seeded random malformed payloads on every client event.

Each payload is a valid one with something broken (a field of the wrong type,
a field missing, junk nested inside), or junk in place of the whole payload,
sent with no argument, with extra arguments, as binary. Every one must be
answered with an error ack, change nothing, and leave the socket connected.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat.models import Membership, Message, ReadReceipt
from tests.chat.sockets.conftest import joined, make_room, make_users

SEED = 20261129
PER_EVENT = 200
EXPECTED_CODES = {"invalid", "not_found", "forbidden"}


class Junk:
    """Values that are wrong for any field of the /chat events."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def scalar(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                None,
                True,
                False,
                0,
                -1,
                2**63,
                -(2**70),
                1.5,
                float("1e308"),
                "",
                " ",
                "\x00",
                "\ud800",
                "🙂" * rng.randint(1, 50),
                "Ω≈ç√∫µ≤≥÷",
                "‮rtl",
                "a" * rng.choice([65, 1000, 100_000]),
                "UPPER-CASE",
                "../../etc/passwd",
                "'; DROP TABLE chat_message; --",
                "{{7*7}}",
                "<script>alert(1)</script>",
                "9" * 40,
                "-5",
                "1e3",
                "0x10",
                bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))),
            ]
        )

    def value(self, depth: int = 0) -> Any:
        kind = self.rng.random()
        if depth < 3 and kind < 0.15:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        if depth < 3 and kind < 0.3:
            return {self.key(): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}
        return self.scalar()

    def key(self) -> str:
        return self.rng.choice(["roomId", "text", "since", "isTyping", "messageId", "clientId", "x", "", "__proto__"])


def _templates(room_id: str, message_id: str) -> dict[str, tuple[Any, list[str]]]:
    """A valid payload per event and the fields that, broken, make it invalid."""
    return {
        "room:join": ({"roomId": room_id, "since": message_id}, ["roomId", "since"]),
        "room:leave": ({"roomId": room_id}, ["roomId"]),
        "chat:message": ({"roomId": room_id, "text": "ok", "clientId": "fuzz"}, ["roomId", "text", "clientId"]),
        "chat:typing": ({"roomId": room_id, "isTyping": True}, ["roomId", "isTyping"]),
        "chat:read": ({"roomId": room_id, "messageId": message_id}, ["roomId", "messageId"]),
    }


def _still_valid(event: str, field: str, value: Any) -> bool:
    """The few junk values that happen to be valid for the field they replace."""
    if field == "clientId":
        return value is None or (isinstance(value, str) and 1 <= len(value) <= 64 and "\x00" not in value)
    if field in ("since", "messageId"):
        return (isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63) or (
            value is None and field == "since"
        )
    if field == "text":
        return (
            isinstance(value, str) and 0 < len(value.strip()) <= 5000 and "\x00" not in value and "\ud800" not in value
        )
    if field == "isTyping":
        return isinstance(value, bool)
    return False


def malformed_calls(rng: random.Random, event: str, room_id: str, message_id: str) -> list[tuple[Any, ...]]:
    """PER_EVENT argument tuples for `event`, each of them invalid."""
    junk = Junk(rng)
    template, fields = _templates(room_id, message_id)[event]
    calls: list[tuple[Any, ...]] = []
    while len(calls) < PER_EVENT:
        shape = rng.random()
        if shape < 0.35:  # one field of the wrong type
            field = rng.choice(fields)
            value = junk.value()
            if _still_valid(event, field, value):
                continue
            calls.append(({**template, field: value},))
        elif shape < 0.5:  # a required field missing
            field = rng.choice([f for f in fields if f not in ("since", "clientId")])
            calls.append(({k: v for k, v in template.items() if k != field},))
        elif shape < 0.65:  # broken, plus junk keys nested inside
            field = rng.choice(fields)
            value = junk.value()
            if _still_valid(event, field, value):
                continue
            calls.append(({**template, field: value, junk.key() + "x": junk.value(), "nested": {"a": [junk.value()]}},))
        elif shape < 0.8:  # junk instead of the payload
            value = junk.value()
            if event in ("room:join", "room:leave") and value == room_id:
                continue
            calls.append((value,))
        elif shape < 0.88:  # no argument at all
            calls.append(())
        elif shape < 0.95:  # a broken payload followed by extra arguments
            calls.append((junk.scalar() or 7, template, junk.value()))
        else:  # binary
            calls.append((bytes(rng.randrange(256) for _ in range(rng.randint(1, 2048))),))
    return calls


@sync_to_async
def _snapshot(room) -> tuple[int, int, int, list[tuple[int, int | None]]]:
    return (
        Message.objects.count(),
        Membership.objects.count(),
        ReadReceipt.objects.count(),
        list(ReadReceipt.objects.values_list("user_id", "last_read_message_id")),
    )


@pytest.mark.parametrize(
    ("transport", "per_event"),
    [pytest.param("websocket", PER_EVENT, id="websocket"), pytest.param("polling", 30, id="polling")],
)
async def test_malformed_payloads_change_nothing_and_keep_the_socket(connect, transport, per_event):
    # given alice in a room with one message, read up to it
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    client = await connect(alice, transport=transport)
    await joined(client, room)
    first = await client.call("chat:message", {"roomId": room.pk, "text": "first", "clientId": "fuzz-first"})
    await client.call("chat:read", {"roomId": room.pk, "messageId": first["messageId"]})
    before = await _snapshot(room)
    rng = random.Random(SEED)

    # when every event gets its malformed payloads
    unexpected = []
    for event in ("room:join", "room:leave", "chat:message", "chat:typing", "chat:read"):
        for args in malformed_calls(rng, event, room.pk, first["messageId"])[:per_event]:
            ack = (
                await client.sio.call(event, args if len(args) != 1 else args[0], namespace="/chat", timeout=10)
                if args
                else await client.sio.call(event, namespace="/chat", timeout=10)
            )
            if not (isinstance(ack, dict) and ack.get("status") == "error" and ack.get("code") in EXPECTED_CODES):
                unexpected.append((event, repr(args)[:200], ack))
            assert "Traceback" not in repr(ack)

    # then every one was refused with a contract code, nothing changed
    assert unexpected == []
    assert await _snapshot(room) == before
    assert client.connected
    # and a normal message still works on the same socket
    ack = await client.call("chat:message", {"roomId": room.pk, "text": "still here"})
    assert ack["status"] == "ok"
    await client.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])


async def test_junk_over_the_frame_limit_closes_only_that_socket(connect):
    # engine.io's own limit (1 MB, MAX_FRAME_BYTES) closes a socket that sends a
    # bigger frame; the server and other sockets carry on.
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    greedy, other = await connect(alice), await connect(bob)
    await joined(other, room)
    await greedy.emit("chat:message", {"roomId": room.pk, "text": "x" * 1_100_000})
    await greedy.wait_for("disconnect", timeout=5)
    ack = await other.call("chat:message", {"roomId": room.pk, "text": "fine"})
    assert ack["status"] == "ok"
