"""What a handler does with an unexpected exception, and with a database
connection that died under it."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chat.errors import ChatError, ErrorCode
from chat.sockets.handlers import chat_event
from chat.sockets.server import CHAT_NAMESPACE, sio
from tests.chat.sockets.conftest import joined, make_room, make_users, stored_messages


@pytest.fixture
def registered():
    """Register throwaway /chat events on this process's server; removed after."""
    names: list[str] = []

    def register(name, fn):
        names.append(name)
        chat_event(name)(fn)
        return sio.handlers[CHAT_NAMESPACE][name]

    yield register
    for name in names:
        sio.handlers[CHAT_NAMESPACE].pop(name, None)


async def test_an_unexpected_exception_is_logged_with_context_and_answered_internal_error(registered, caplog):
    # A small in-process test of the decorator: no real handler can be made to
    # fail on purpose any more (the fuzz test found, and schemas.py now refuses,
    # the payloads that did: NUL bytes and lone surrogates in text).
    async def explode(sid, payload):
        raise RuntimeError("database on fire")

    handler = registered("test:explode", explode)
    with caplog.at_level(logging.ERROR, logger="chat.sockets.handlers"):
        ack = await handler("sid-123", {"roomId": "general", "text": "hi"}, "extra arg")
    assert ack == {"status": "error", "error": "Something went wrong on our side", "code": "internal_error"}
    (record,) = caplog.records
    assert "test:explode" in record.getMessage() and "sid-123" in record.getMessage()
    assert "'roomId': 'general'" in record.getMessage()  # the payload, truncated
    assert record.exc_info is not None and "database on fire" in str(record.exc_info[1])
    assert "database on fire" not in repr(ack)  # never leaks to the client


async def test_rule_breaks_become_their_codes_and_results_an_ok_ack(registered):
    async def refuse(sid, payload):
        raise ChatError(ErrorCode.MUTED, "You are muted")

    async def answer(sid, payload):
        return {"echo": payload}

    assert await registered("test:refuse", refuse)("sid") == {
        "status": "error",
        "error": "You are muted",
        "code": "muted",
    }
    assert await registered("test:answer", answer)("sid", 1, 2) == {"status": "ok", "echo": 1}
    assert await registered("test:none", answer)("sid") == {"status": "ok", "echo": None}


@pytest.fixture
def test_process_backend(transactional_db) -> int | None:
    """The PostgreSQL backend of this test process's main thread (which flushes
    the database after the test), so that it survives the massacre below."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no connections to lose")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@sync_to_async
def _kill_server_connections(spare: int) -> int:
    """Terminate the other backends on the test database, the server's pooled
    connections among them: what a PostgreSQL restart does to them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [spare],
        )
        return int(cursor.fetchone()[0])


async def test_connections_that_died_under_the_server_do_not_poison_it(test_process_backend, connect):
    # given a server that has pooled connections from earlier events
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    a, b = await connect(alice), await connect(bob)
    await joined(a, room)
    await joined(b, room)
    assert (await a.call("chat:message", {"roomId": room.pk, "text": "before"}))["status"] == "ok"

    # when every one of its connections is killed
    assert await _kill_server_connections(test_process_backend) >= 1

    # then the next events work: the pool checks a connection before handing it out
    for text in ("after 1", "after 2"):
        ack = await a.call("chat:message", {"roomId": room.pk, "text": text})
        assert ack["status"] == "ok", ack
    assert [m.text for m in await stored_messages(room)] == ["before", "after 1", "after 2"]
    assert (await b.call("chat:read", {"roomId": room.pk, "messageId": ack["messageId"]}))["status"] == "ok"
