"""Fuzzing every /chat event with hypothesis, against a real server process.

A real python-socketio client sends what hypothesis makes of each event the
server handles (room:join, room:leave, chat:message, chat:typing, chat:read,
presence:away, presence:active) and of names it does not handle, the reserved
ones included: payloads of the right shape with wrong values, of the wrong
shape, unicode, NaN and infinities, numbers as strings, ids past a bigint,
binary attachments, no argument or several, no ack at all, and JSON written by
hand (10,000 levels deep, 900 kB strings, broken packets).

After every payload:
- an acked answer is `{"status": "ok", ...}` or an error with a code of
  protocol.md (`internal_error` fails: bad input must get a clear error);
- the socket is still connected and the server process still up;
- the server logged no traceback and no error;
- an error changed nothing (no message, membership or receipt appeared or went).

CI runs FUZZ_EXAMPLES=200 payloads per event (the default); by hand:

    FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/security/test_fuzz_sockets.py

FUZZ_SEED=<n> replays one run (hypothesis prints the failing payload).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from chat import services
from chat.models import Membership, Message, ReadReceipt, Room
from tests.conftest import server_env, token_for
from tests.factories import UserFactory, add_member, post
from tests.security.support import LoopThread, ServerLog, check_ack, raw_call, raw_emit
from tests.support.clients import ChatClient
from tests.support.server import ServerProcess

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
SEED = os.environ.get("FUZZ_SEED")

pytestmark = [pytest.mark.timeout(max(120, EXAMPLES)), pytest.mark.django_db(transaction=True)]

HANDLED = ("room:join", "room:leave", "chat:message", "chat:typing", "chat:read", "presence:away", "presence:active")
# Names the server does not handle, and the names python-socketio reserves for
# its own events: a client must not be able to call those handlers.
UNKNOWN_NAMES = ("connect", "disconnect", "connect_error", "message", "*", "room:joined", "chat:message ", "")

NASTY_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff x",
    "\u202e\u2066",
    "\ufeff",
    "🙂" * 3000,
    "x" * 5000,
    "x" * 5001,
    " " * 6000,
    "NaN",
    "Infinity",
    "-0",
    "1e999",
    "0x10",
    "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, int() agrees, SQL does not
    "²",  # isdigit() but not int()
    "9" * 19,
    "9" * 400,
    "-1",
    "+1",
    " 1 ",
    "1.0",
    "__proto__",
    "constructor",
    "../../etc/passwd",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "%s%s%n",
    "general\n",
    "direct",
)
FIELDS = ("roomId", "text", "since", "messageId", "isTyping", "replyTo", "clientId", "attachmentId", "id", "__proto__")


def scalars(known: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(known),
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63 - 2, max_value=2**80),
        st.integers(min_value=-(2**80), max_value=-(2**63) + 2),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=40),
        st.binary(max_size=40),
        st.sampled_from(NASTY_TEXT),
    )


def json_values(known: list[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(known),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


def payloads(event: str, room_ids: list[Any], message_ids: list[Any]) -> st.SearchStrategy[Any]:
    """Mostly the event's own shape with hostile values, sometimes anything at all."""
    anything = json_values(room_ids + message_ids)
    # Real ids half the time, so that the paths past validation are fuzzed too.
    room = st.one_of(st.sampled_from(room_ids), st.sampled_from(room_ids), scalars(room_ids), anything)
    message = st.one_of(st.sampled_from(message_ids), st.sampled_from(message_ids), scalars(message_ids), anything)
    text = st.one_of(st.text(max_size=300), st.text(max_size=300), st.sampled_from(NASTY_TEXT), anything)
    shaped: dict[str, st.SearchStrategy[Any]] = {
        "room:join": room | st.fixed_dictionaries({"roomId": room}, optional={"since": message}),
        "room:leave": room | st.fixed_dictionaries({"roomId": room}),
        "chat:message": st.fixed_dictionaries(
            {"roomId": room},
            optional={"text": text, "replyTo": message, "clientId": text, "attachmentId": message},
        )
        # and sends that should pass, with hostile but valid text
        | st.fixed_dictionaries(
            {"roomId": st.sampled_from(["general", "mine"]), "text": st.text(min_size=1, max_size=300)},
            optional={"clientId": st.text(max_size=70), "replyTo": st.sampled_from(message_ids)},
        ),
        "chat:typing": st.fixed_dictionaries({"roomId": room}, optional={"isTyping": scalars([True, False])}),
        "chat:read": st.fixed_dictionaries({"roomId": room}, optional={"messageId": message}),
    }
    own = shaped.get(event, anything)
    return st.one_of(own, own, own, anything)


# How a payload travels. "raw" bodies are JSON written by hand.
MODES = ("call", "call", "call", "no_argument", "many_arguments", "binary_attachment", "emit", "raw")
RAW_BODIES = (
    "deep_list",
    "deep_object",
    "nan_literals",
    "huge_string",
    "broken_json",
    "event_not_a_string",
    "empty_array",
    "number_as_event",
)


def raw_body(kind: str, event: str, depth: int) -> str:
    name = json.dumps(event)
    if kind == "deep_list":
        return f"[{name},{'[' * depth}{']' * depth}]"
    if kind == "deep_object":
        return f'[{name},{{"roomId":' * 1 + '{"a":' * depth + "1" + "}" * depth + "}]"
    if kind == "nan_literals":
        return f'[{name},{{"roomId":NaN,"messageId":Infinity,"since":-Infinity,"text":NaN}}]'
    if kind == "huge_string":
        return f'[{name},{{"roomId":"general","text":"{"y" * 900_000}"}}]'
    if kind == "broken_json":
        return f'[{name},{{"roomId":"general",'
    if kind == "event_not_a_string":
        return '[{"roomId":"general"},"general"]'
    if kind == "empty_array":
        return "[]"
    return "[42,{}]"


def _state() -> tuple[Any, ...]:
    return (
        Message.objects.count(),
        tuple(Membership.objects.order_by("pk").values_list("pk", "room_id", "user_id", "role")),
        tuple(ReadReceipt.objects.order_by("pk").values_list("pk", "last_read_message_id")),
        tuple(Room.objects.order_by("pk").values_list("pk", "last_seq")),
    )


def _settled_state() -> tuple[Any, ...]:
    """The state once writes of earlier ack-less events have landed."""
    previous = _state()
    for _ in range(20):
        time.sleep(0.03)
        now = _state()
        if now == previous:
            return now
        previous = now
    return previous


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    """The fuzzer's user in a public room and a private room of their own; a
    private room and a 1:1 room of others; each with messages and receipts."""
    fuzzer, bob, carol = UserFactory(username="fuzzer"), UserFactory(username="bob"), UserFactory(username="carol")
    general = Room.objects.create(id="general", name="General")
    mine = Room.objects.create(id="mine", name="Mine", visibility=Room.Visibility.PRIVATE)
    secret = Room.objects.create(id="secret", name="Secret", visibility=Room.Visibility.PRIVATE)
    for room, members in ((general, (fuzzer, bob)), (mine, (fuzzer,)), (secret, (bob, carol))):
        for member in members:
            add_member(room, member)
    direct, _ = services.room_get_or_create_direct(user=bob, other=carol)
    message_ids: list[Any] = []
    for room in (general, mine, secret, direct):
        for n in range(3):
            message = post(room, bob if room.pk != "mine" else fuzzer, f"{room.pk} {n}")
            message_ids += [message.pk, str(message.pk)]
    return {
        "token": token_for(fuzzer),
        "bob_token": token_for(bob),
        "room_ids": ["general", "mine", "secret", direct.pk, "nowhere"],
        "message_ids": [*message_ids, 0, "0", -1, 2**63, str(2**63)],
    }


@pytest.fixture(scope="module")
def _fuzz_server(django_db_setup: None, django_db_blocker: object) -> Iterator[ServerProcess]:
    """One server process for the module (its own log file): starting one per
    event cost more than fuzzing the event."""
    server = ServerProcess(env=server_env(), name="fuzz").start()
    yield server
    server.stop()


@pytest.fixture
def fuzz_target(_fuzz_server: ServerProcess, world: dict[str, Any]) -> Iterator[Any]:
    server = _fuzz_server
    if server.process is None or server.process.poll() is not None:
        server.start()
    loop = LoopThread()
    client = ChatClient()
    loop.run(client.connect(server.url, token=world["token"]))
    try:
        yield server, loop, client
    finally:
        with contextlib.suppress(Exception):
            loop.run(client.disconnect(), timeout=10)
        loop.close()


def _fuzz_settings(examples: int) -> Callable[[Any], Any]:
    def apply(test: Any) -> Any:
        test = settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )(test)
        return seed(int(SEED))(test) if SEED else test

    return apply


def _send(loop: LoopThread, client: ChatClient, event: str, payload: Any, mode: str, raw: str, depth: int) -> Any:
    """Send one payload; the ack, or None for the ways that ask for none."""
    if mode == "call":
        return loop.run(client.call(event, payload))
    if mode == "no_argument":
        return loop.run(client.sio.call(event, namespace="/chat", timeout=10))
    if mode == "many_arguments":
        return loop.run(client.call(event, (payload, payload, {"roomId": "general"}, b"\x00" * 10)))
    if mode == "binary_attachment":
        data = (
            {"payload": payload, "blob": b"\xff\x00" * 512}
            if not isinstance(payload, dict)
            else {**payload, "blob": b"\x00\xff"}
        )
        return loop.run(client.call(event, data))
    if mode == "emit":
        loop.run(client.emit(event, payload))
        return None
    body = raw_body(raw, event, depth)
    if raw in ("broken_json", "event_not_a_string", "empty_array", "number_as_event"):
        # Not an event at all: there is nothing to acknowledge.
        loop.run(raw_emit(client, body))
        return None
    return loop.run(raw_call(client, body))


def _reserved_emit(loop: LoopThread, client: ChatClient, event: str, payload: Any) -> None:
    """python-socketio's client refuses to emit its reserved names; a hostile
    client is not so polite, so the packet is written by hand."""
    try:
        body = json.dumps([event, payload], default=repr)
    except (ValueError, TypeError):
        body = json.dumps([event, None])
    loop.run(raw_emit(client, body))


def _alive(server: ServerProcess, loop: LoopThread, client: ChatClient, log: ServerLog) -> None:
    assert server.process is not None and server.process.poll() is None, f"the server died:\n{server.log_tail()}"
    assert client.connected, f"the socket was disconnected:\n{log.new_text()[-2000:]}"
    # A round trip behind whatever was sent without an ack: the socket still answers.
    ack = loop.run(client.call("presence:active"))
    check_ack(ack)
    # One event at a time is ever in flight here: a refusal for too many in
    # flight means a refused or dropped event was never counted back.
    assert "in flight" not in str(ack.get("error", "")), ack
    assert client.connected
    log.assert_clean()


@pytest.mark.parametrize("event", HANDLED)
def test_fuzz_a_handled_event(event: str, world: dict[str, Any], fuzz_target: Any) -> None:
    server, loop, client = fuzz_target
    log = ServerLog(server)
    answers: dict[str, int] = {}
    unacked: list[Any] = []  # an ack-less event may still be writing
    spent: dict[str, float] = {}

    @_fuzz_settings(EXAMPLES)
    @given(
        payload=payloads(event, world["room_ids"], world["message_ids"]),
        mode=st.sampled_from(MODES),
        raw=st.sampled_from(RAW_BODIES),
        depth=st.sampled_from([2, 50, 999, 1001, 5000, 10_000]),
    )
    def one(payload: Any, mode: str, raw: str, depth: int) -> None:
        started = time.monotonic()
        before = _settled_state() if unacked else _state()
        unacked.clear()
        ack = _send(loop, client, event, payload, mode, raw, depth)
        spent[mode if mode != "raw" else raw] = (
            spent.get(mode if mode != "raw" else raw, 0.0) + time.monotonic() - started
        )
        if ack is None:
            unacked.append(payload)
            _alive(server, loop, client, log)
            return
        check_ack(ack)
        key = ack["status"] if ack["status"] == "ok" else ack["code"]
        answers[key] = answers.get(key, 0) + 1
        assert client.connected, f"the socket was disconnected after {payload!r:.300}"
        assert server.process.poll() is None, f"the server died:\n{server.log_tail()}"
        log.assert_clean()
        if ack["status"] == "error":
            assert _state() == before, f"a refused {event} changed something: {payload!r:.300} -> {ack!r}"

    one()
    _alive(server, loop, client, log)
    print(f"{event}: {EXAMPLES} examples, answers {answers}, seconds { ({k: round(v, 2) for k, v in spent.items()}) }")


def test_fuzz_unknown_and_reserved_event_names(world: dict[str, Any], fuzz_target: Any) -> None:
    server, loop, client = fuzz_target
    log = ServerLog(server)

    @_fuzz_settings(EXAMPLES)
    @given(
        event=st.sampled_from(UNKNOWN_NAMES) | st.text(max_size=30).filter(lambda name: name not in HANDLED),
        payload=json_values(world["room_ids"] + world["message_ids"]),
    )
    def one(event: str, payload: Any) -> None:
        before = _state()
        _reserved_emit(loop, client, event, payload)
        # _alive's round trip comes back after the server has dealt with the packet.
        _alive(server, loop, client, log)
        assert _state() == before, f"{event!r} changed something"
        ack = loop.run(client.call(event, payload)) if event not in ("connect", "disconnect", "connect_error") else None
        if ack is not None:
            check_ack(ack)
            assert ack["status"] == "error", ack

    one()
    # A forged `disconnect` must not have signed the still-connected fuzzer out:
    # a co-member connecting now is told the fuzzer is online.
    bob = ChatClient()
    loop.run(bob.connect(server.url, token=world["bob_token"]))
    try:
        online = loop.run(bob.wait_for("presence:list"))
        assert "fuzzer" in {entry["username"] for entry in online}, online
    finally:
        loop.run(bob.disconnect())
    log.assert_clean()
